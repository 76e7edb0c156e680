"""huey's API for driving a queue by hand: ``dequeue`` / ``ready_to_run`` / ``read_schedule``, task
(de)serialization, the raw key/value helpers, ``notify_interrupted_tasks`` and ``create_consumer``."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from typing import TYPE_CHECKING, Any

from ..backends.base import EmptyData
from ..exceptions import InvalidMessage, TaskNotRegistered
from ..signals import SIGNAL_INTERRUPTED
from ..task import Task
from ..timeutils import epoch, now_utc

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")


class ManualDrive:
    """What a hub offers code that runs calls itself (tests, scripts, huey code):
    ``task = queue.dequeue(); queue.execute(task)``."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def dequeue(self) -> Task | None:
        """Take the next ready call, or ``None`` when the queue is empty (huey's ``dequeue``).

        For code that drives a queue by hand: ``task = queue.dequeue(); queue.execute(task)``. On a storage
        with reliable delivery the message is claimed under the queue's lease, not removed: the call carries
        its claim (``task.reservation``) and :meth:`execute` acknowledges it with the outcome, so a process
        that dies in between loses nothing (the claim expires and the message is delivered again). A call
        that is never executed comes back after the lease. A storage without reliable delivery removes the
        message at once, as huey does. A message that does not verify or names an unknown task is
        dead-lettered and the next one is taken.
        """
        while True:
            reservation = self.hub.reserve()
            if reservation is None:
                return None
            task = self.hub.delivery.claimed_task(reservation)
            if task is not None:
                task.reservation = reservation
                return task

    def ready_to_run(self, task: Task, timestamp: dt.datetime | None = None) -> bool:
        """Whether ``task`` is due at ``timestamp`` (now when None); a naive ``task.eta`` or ``timestamp`` is read
        as ``utc`` says."""
        if task.eta is None:
            return True
        now = now_utc() if timestamp is None else self.hub.as_utc(timestamp)
        return self.hub.as_utc(task.eta) <= now

    def read_schedule(self, timestamp: dt.datetime | None = None) -> list[Task]:
        """Remove the scheduled calls due at ``timestamp`` (now when None) and return them, earliest first.

        Not what the consumer does (it moves due calls to the queue in one storage step); for code that
        drives the schedule by hand. A message that does not decode is logged and dropped.
        """
        now = now_utc() if timestamp is None else self.hub.as_utc(timestamp)
        tasks = []
        for data in self.hub.storage.read_schedule(epoch(now)):
            try:
                tasks.append(self.hub.deserialize_task(data))
            except (InvalidMessage, TaskNotRegistered) as exc:
                logger.error("queue %r: dropped a scheduled message that cannot be read: %s", self.hub.name, exc)
        return tasks

    def serialize_task(self, task: Task) -> bytes:
        """The signed, encoded message of ``task`` (what the storage holds)."""
        return self.hub.codec.encode(task.to_message(self.hub.as_utc))

    def deserialize_task(self, data: bytes) -> Task:
        """The call a message holds, bound to its registered task (the signature is verified first)."""
        return self.hub._decode_task(data)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (serialized and signed) under ``key`` in the queue's key/value area."""
        self.hub.storage.put_data(key, self.hub.codec.encode_value(value))

    def put_if_empty(self, key: str, value: Any) -> bool:
        """Store ``value`` under ``key`` only when nothing is stored there; True when it was stored."""
        return self.hub.storage.put_if_empty(key, self.hub.codec.encode_value(value))

    def get(self, key: str, peek: bool = False) -> Any:
        """The value stored under ``key`` (removed unless ``peek``), or None."""
        raw = self.hub.storage.peek_data(key) if peek else self.hub.storage.pop_data(key)
        return None if raw is EmptyData else self.hub.codec.decode_value(raw)

    def delete(self, key: str) -> bool:
        """Remove ``key`` from the key/value area; True when it was there."""
        return self.hub.storage.delete_data(key)

    def notify_interrupted_tasks(self) -> None:
        """Send ``interrupted`` for every call this process is running (a consumer shutting down calls it)."""
        with self.hub._lock:
            running = list(self.hub.executor.running.values())
        for task in running:
            self.hub._emit(SIGNAL_INTERRUPTED, task)

    def create_consumer(self, **options: Any) -> Any:
        """A consumer of this queue alone, configured with huey's consumer options (``workers``,
        ``worker_type``, ``periodic``, ``initial_delay``, ``backoff``, ``max_delay``, ``scheduler_interval``,
        ``check_worker_health``, ``health_check_interval``, ...) and the consumer's own (``flush_locks``,
        ``burst``, ...). Call its ``run()`` (blocks) or ``start()`` / ``stop()``."""
        module = importlib.import_module(self.hub.consumer_module)
        fields = set(module.ConsumerOptions.__dataclass_fields__)
        settings = module.ConsumerOptions(**{k: v for k, v in options.items() if k in fields})
        return module.Consumer([self.hub], settings, **{k: v for k, v in options.items() if k not in fields})
