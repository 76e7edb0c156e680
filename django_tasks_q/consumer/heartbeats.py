"""What a running consumer reports about itself: heartbeats and queue depth samples (for the admin).

:func:`start_monitoring` is called by :class:`~django_tasks_q.consumer.Consumer` when it starts: it starts a
:class:`~django_tasks_q.history.recorder.HistoryRecorder` for this process, attaches it to the consumer's queues and
gives its thread two jobs, every health-check interval: upsert this consumer's
:class:`~django_tasks_q.history.models.ConsumerHeartbeat` row, and sample each queue's depths (pending,
scheduled, in flight, dead letters, read through the hub) into the current
:class:`~django_tasks_q.history.models.QueueMinute`.
Worker processes call :func:`start_worker_recording` so the tasks they run are recorded too.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..history.models import ConsumerHeartbeat
from ..history.recorder import HistoryRecorder
from ..history.writers import add_minute

logger = logging.getLogger("django_tasks_q.history")


class Heartbeat:
    """Upserts one consumer's heartbeat row; ``stop()`` marks it stopped."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.started_at = timezone.now()
        options = list(consumer.options.values())
        self.interval = min(option.health_check_interval for option in options)
        self.workers = sum(consumer.options[queue.name].workers for queue in consumer.queues)
        self.worker_type = ",".join(sorted({option.worker_type for option in options}))

    def beat(self, stopped: bool = False) -> None:
        """Write ``last_heartbeat = now`` (and everything else this consumer is)."""
        now = timezone.now()
        fields = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": ", ".join(queue.name for queue in self.consumer.queues),
            "workers": self.workers,
            "worker_type": self.worker_type,
            "started_at": self.started_at,
            "last_heartbeat": now,
            "stopped_at": now if stopped else None,
            "interval": self.interval,
        }
        # A plain UPDATE first: update_or_create reads, then writes in one transaction, which SQLite cannot
        # upgrade to a write while another consumer writes ("database is locked" at once, no busy wait).
        if ConsumerHeartbeat.objects.filter(identity=self.consumer.identity).update(**fields):
            return
        try:
            with transaction.atomic():
                ConsumerHeartbeat.objects.create(identity=self.consumer.identity, **fields)
        except IntegrityError:  # created meanwhile by this consumer's other process: update it
            ConsumerHeartbeat.objects.filter(identity=self.consumer.identity).update(**fields)

    def sample_depths(self) -> None:
        """Record each queue's current depths in this minute's row."""
        minute = timezone.now().replace(second=0, microsecond=0)
        for queue in self.consumer.queues:
            add_minute(
                queue.name,
                minute,
                pending=queue.pending_count(),
                scheduled=queue.scheduled_count(),
                in_flight=queue.in_flight_count(),
                dead=queue.dead_letter_count(),
            )


class Monitoring:
    """The recorder and heartbeat of one consumer process."""

    def __init__(self, recorder: HistoryRecorder, heartbeat: Heartbeat) -> None:
        self.recorder = recorder
        self.heartbeat = heartbeat

    def stop(self) -> None:
        """Write what is buffered and mark the consumer stopped."""
        self.recorder.stop()
        try:
            self.heartbeat.beat(stopped=True)
        except Exception as exc:
            logger.warning("could not record that consumer %s stopped: %s", self.heartbeat.consumer.identity, exc)


def start_monitoring(consumer: Any) -> Monitoring:
    """Start recording history, heartbeats and depth samples for ``consumer`` (a Consumer)."""
    recorder = HistoryRecorder(consumer_identity=consumer.identity)
    heartbeat = Heartbeat(consumer)
    for queue in consumer.queues:
        recorder.attach(queue)
    recorder.every(heartbeat.interval, heartbeat.beat)
    recorder.every(heartbeat.interval, heartbeat.sample_depths)
    recorder.start()
    return Monitoring(recorder, heartbeat)


def start_worker_recording(queue: Any, consumer_identity: str | None) -> HistoryRecorder:
    """Record the tasks a worker process runs (history, counters, the consumer's task count)."""
    recorder = HistoryRecorder(consumer_identity=consumer_identity)
    recorder.attach(queue)
    return recorder.start()
