"""What the admin, health checks and tests read of a hub, and the clean-up actions they take.

Thin methods over the storage so that nothing above the hub touches a storage itself. Stored bytes are shown only
after the codec verified them (:class:`MessageView`); anything else is described by
:func:`~django_tasks_q.messages.codec.peek_raw`, never deserialized.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends.base import DeadLetter, EmptyData, Feature, Reservation
from ..exceptions import InvalidMessage
from ..messages.codec import peek_raw
from ..result import Result
from ..task import Task
from ..timeutils import epoch, now_utc
from . import keyspace

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")


@dataclass(frozen=True, slots=True)
class MessageView:
    """Stored message bytes as the admin may show them: a decoded call when the codec verified it, else a preview.

    ``task`` is set only when the signature (if the queue signs) verified and the envelope decoded; otherwise
    ``preview`` holds :func:`~django_tasks_q.messages.codec.peek_raw` of the first bytes and ``reason`` / ``error`` say
    why it was refused. Nothing unverified is ever deserialized.
    """

    task: Task | None
    size: int
    preview: str = ""
    reason: str = ""
    error: str = ""


class Inspection:
    """Reads a hub's queue, schedule, in-flight messages and dead letters, and clears them on request."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def _decode_items(self, items: list[bytes]) -> list[Task]:
        hub = self.hub
        tasks = []
        for data in items:
            try:
                tasks.append(hub._bound_if_registered(hub.codec.decode(data), hub.present))
            except InvalidMessage as exc:
                logger.warning("queue %r: skipping a stored message that does not decode: %s", hub.name, exc)
        return tasks

    def pending(self, limit: int | None = None) -> list[Task]:
        """Calls waiting in the queue, in the order they will run."""
        return self._decode_items(self.hub.storage.enqueued_items(limit))

    def pending_count(self) -> int:
        """How many messages wait in the queue."""
        return self.hub.storage.queue_size()

    def scheduled(self, limit: int | None = None) -> list[Task]:
        """Calls waiting for their eta, soonest first."""
        return self._decode_items(self.hub.storage.scheduled_items(limit))

    def scheduled_count(self) -> int:
        """How many messages wait in the schedule."""
        return self.hub.storage.schedule_size()

    def inspect_message(self, data: bytes) -> MessageView:
        """Verify and decode stored message bytes for display; bytes that fail are previewed, never decoded.

        The call's datetimes are those of the message, aware UTC, whatever this hub's convention (the admin
        shows them in Django's)."""
        try:
            task = self.hub._bound_if_registered(self.hub.codec.decode(data), None)
        except InvalidMessage as exc:
            return MessageView(None, len(data), peek_raw(data, 200), exc.reason, str(exc))
        return MessageView(task, len(data))

    def pending_entries(self, limit: int | None = None) -> list[MessageView]:
        """Messages waiting in the queue, in run order, each verified and decoded or previewed."""
        return [self.hub.inspect_message(data) for data in self.hub.storage.enqueued_items(limit)]

    def scheduled_entries(self, limit: int | None = None) -> list[MessageView]:
        """Messages waiting for their eta, soonest first, each verified and decoded or previewed."""
        return [self.hub.inspect_message(data) for data in self.hub.storage.scheduled_items(limit)]

    def in_flight(self, limit: int | None = None) -> list[Reservation]:
        """Current reservations (messages a worker holds under a lease), earliest deadline first."""
        return self.hub.storage.in_flight_items(limit)

    def in_flight_count(self) -> int:
        """How many messages are reserved by workers now."""
        return self.hub.storage.in_flight_size()

    def startup_warnings(self) -> list[str]:
        """What the storage wants said when a consumer starts (a setting that loses messages, ...)."""
        return list(self.hub.storage.startup_warnings())

    def supports(self, feature: Feature | str) -> bool:
        """Whether the storage in use declares ``feature`` (a :class:`~django_tasks_q.backends.features.Feature`
        or its name): what the hub, the command and the admin ask before using an optional ability."""
        return feature in self.hub.storage.features

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first (empty when the storage keeps none)."""
        return self.hub.storage.dead_letters(limit) if self.hub.supports_dead_letters else []

    def dead_letter_count(self) -> int:
        """How many dead letters are kept."""
        return self.hub.storage.dead_letter_count() if self.hub.supports_dead_letters else 0

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter back to the queue (attempts reset); False when there is no such id."""
        return self.hub.supports_dead_letters and self.hub.storage.requeue_dead_letter(dead_letter_id)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: dt.datetime | None = None) -> int:
        """Delete dead letters (these ids, those older than a time, or all); returns how many."""
        hub = self.hub
        if not hub.supports_dead_letters:
            return 0
        return hub.storage.purge_dead_letters(
            None if ids is None else list(ids), None if older_than is None else epoch(hub.as_utc(older_than))
        )

    def flush(self) -> None:
        """Remove everything this queue stores: queue, schedule, results, locks, in-flight, dead letters."""
        self.hub.storage.flush_all()

    def flush_queue(self) -> None:
        """Remove every message waiting in the queue (in flight, schedule and results stay)."""
        self.hub.storage.flush_queue()

    def flush_schedule(self) -> None:
        """Remove every scheduled message."""
        self.hub.storage.flush_schedule()

    def find_scheduled(self, id: str, limit: int | None = None) -> Task | None:
        """The scheduled call with this task id (among the first ``limit`` scheduled), or None."""
        for entry in self.hub.scheduled_entries(limit):
            if entry.task is not None and entry.task.id == id:
                return entry.task
        return None

    def run_now(self, id: str, limit: int | None = None) -> Result | None:
        """Run a scheduled call now: revoke it and enqueue a copy (new id) at once; None if not scheduled."""
        hub = self.hub
        task = hub.find_scheduled(id, limit)
        if task is None or task.path not in hub.registry:
            return None
        task.wrapper = hub.registry.get(task.path)
        return hub.reschedule(task)

    def oldest_pending_age(self, sample: int = 200) -> float | None:
        """Seconds since the oldest of the next ``sample`` waiting messages was enqueued (queue latency)."""
        times = [
            entry.task.enqueued_at
            for entry in self.hub.pending_entries(sample)
            if entry.task is not None and entry.task.enqueued_at is not None
        ]
        return (now_utc() - min(times)).total_seconds() if times else None

    def unique_keys_held(self, limit: int | None = None) -> list[dict[str, Any]] | None:
        """Held unique-task keys: ``key``, the ``task`` path (None when no registered task matches) and the
        ``holder`` (the id of the call holding it); None when the storage cannot list its keys."""
        hub = self.hub
        storage = hub.storage
        if Feature.KEY_LISTING not in storage.features:
            return None
        keys = storage.data_keys(keyspace.UNIQUE_PREFIX, limit)
        paths = sorted(hub.registry.names(), key=len, reverse=True)
        held = []
        for key, holder in zip(keys, storage.peek_many(keys), strict=True):
            if holder is EmptyData:  # released between the two reads
                continue
            rest = key[len(keyspace.UNIQUE_PREFIX) :]
            task_path = next((path for path in paths if rest.startswith(f"{path}.")), None)
            held.append({"key": key, "task": task_path, "holder": holder.decode("utf-8", "replace")})
        return held
