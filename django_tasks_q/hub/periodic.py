"""Time-driven work of a hub: due scheduled calls, periodic tasks, and the markers that let one consumer of
many act on each moment."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from ..task import Task
from ..timeutils import epoch, now_utc
from . import keyspace

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")

PERIODIC_MARKER_TTL = 3 * 3600
SCHEDULE_MARKER_TTL = 2 * 86400


class Periodic:
    """Moves a hub's due calls to its queue and enqueues its periodic tasks, each once per minute."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def enqueue_due(self, timestamp: dt.datetime | None = None) -> int:
        """Move every scheduled message that is due into the queue; returns how many moved."""
        hub = self.hub
        moved = hub.storage.enqueue_due(epoch(now_utc() if timestamp is None else hub.as_utc(timestamp)))
        if hub.immediate:
            while (data := hub.storage.dequeue()) is not None:
                hub.execute(hub._decode_task(data), timestamp=timestamp)
        return moved

    def read_periodic(self, timestamp: dt.datetime | None = None) -> list[Task]:
        """Calls of the periodic tasks whose schedule matches ``timestamp`` (not enqueued)."""
        hub = self.hub
        moment = self._moment(timestamp)
        due = []
        for wrapper in hub.registry.periodic():
            assert wrapper.validate_datetime is not None
            try:
                matches = wrapper.validate_datetime(moment)
            except Exception:
                logger.exception("schedule of periodic task %r failed for %s", wrapper.path, moment)
                continue
            if matches:
                due.append(hub.build_task(wrapper, (), {}))
        return due

    def enqueue_periodic(self, timestamp: dt.datetime | None = None) -> list[Task]:
        """Enqueue the periodic tasks due at ``timestamp``'s minute, each at most once per minute.

        Any number of consumers may call this for the same minute: a marker in
        the storage lets exactly one enqueue each task.
        """
        hub = self.hub
        moment = self._moment(timestamp)
        minute = moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M")
        enqueued = []
        for task in hub.read_periodic(moment):
            marker = keyspace.periodic_marker(task.path, minute)
            if hub.storage.put_if_empty(marker, b"1", ttl=PERIODIC_MARKER_TTL):
                hub.enqueue(task)
                enqueued.append(task)
        return enqueued

    def claim_schedule_tick(self, schedule_id: Any, tick: dt.datetime) -> bool:
        """Claim one tick of a database schedule; True for the one consumer that should enqueue it."""
        marker = keyspace.schedule_marker(schedule_id, tick)
        return self.hub.storage.put_if_empty(marker, b"1", ttl=SCHEDULE_MARKER_TTL)

    def _moment(self, timestamp: dt.datetime | None) -> dt.datetime:
        hub = self.hub
        moment = hub.as_utc(timestamp) if timestamp else now_utc()
        moment = moment.replace(second=0, microsecond=0)
        return moment if hub.utc else moment.astimezone()
