"""Helpers for the hub tests (``tests/hub/test_hub_*.py``): a fresh queue, a signal recorder, and a fake consumer.

The consumer does not exist yet; these helpers do what it will do, by driving the hub directly:
``queue.reserve()`` + ``queue.process(reservation)`` is a worker, ``queue.enqueue_due(now)`` is the scheduler,
``queue.enqueue_periodic(now)`` is the periodic scheduler and ``queue.reclaim_expired(now)`` is the reaper.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from django_tasks_q import MemoryHuey, TaskQueue
from django_tasks_q.messages.codec import FLAG_COMPRESSED, FLAG_SIGNED, FRAME_VERSION, MAGIC
from django_tasks_q.timeutils import now_utc

UTC = dt.UTC


def new_queue(prefix: str = "hub", **kwargs: Any) -> MemoryHuey:
    """A ``MemoryHuey`` with a unique name whose ``reserve()`` never blocks (``block_timeout=0``)."""
    kwargs.setdefault("block_timeout", 0)
    return MemoryHuey(f"{prefix}-{uuid.uuid4().hex[:12]}", **kwargs)


def later(seconds: float, base: dt.datetime | None = None) -> dt.datetime:
    """``seconds`` after ``base`` (now, by default), as an aware UTC datetime."""
    return (base or now_utc()) + dt.timedelta(seconds=seconds)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """An aware moment as a queue built in code (``new_queue()``, ``utc=True``) shows it: a naive UTC datetime."""
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Event:
    """One signal as a receiver saw it."""

    signal: str
    task: Any
    args: tuple[Any, ...]

    @property
    def task_id(self) -> str | None:
        return None if self.task is None else self.task.id

    @property
    def short(self) -> str | None:
        """The last part of the task's path (``None`` for events that carry no task)."""
        return None if self.task is None else self.task.path.rsplit(".", 1)[-1]


class Recorder:
    """Connected to every signal of a queue; keeps the events in the order they were sent."""

    def __init__(self, queue: TaskQueue, *signals: str) -> None:
        self.events: list[Event] = []
        queue.signal(*signals)(self)

    def __call__(self, signal: str, task: Any, *args: Any) -> None:
        self.events.append(Event(signal, task, args))

    def signals(self) -> list[str]:
        """The signal names, in order."""
        return [event.signal for event in self.events]

    def pairs(self) -> list[tuple[str, str | None]]:
        """``(signal, short task name)`` pairs, in order."""
        return [(event.signal, event.short) for event in self.events]

    def for_task(self, task_id: str) -> list[str]:
        """The signal names sent for one task id, in order."""
        return [event.signal for event in self.events if event.task_id == task_id]

    def clear(self) -> None:
        self.events.clear()


def run_next(queue: TaskQueue, now: dt.datetime | None = None) -> bool:
    """Reserve and process one ready message (a worker's step); False when nothing was ready."""
    reservation = queue.reserve()
    if reservation is None:
        return False
    queue.process(reservation, timestamp=now)
    return True


def drain(queue: TaskQueue, now: dt.datetime | None = None, *, max_steps: int = 200) -> int:
    """Run the scheduler and the workers until nothing is ready at ``now``; return how many messages ran.

    ``now`` (default: the real time) is both the scheduler's clock and the time the hub executes with, so
    ``drain(queue, later(3600))`` runs everything scheduled within the next hour. Gives up with an
    AssertionError after ``max_steps`` messages (a task that requeues itself forever).
    """
    steps = 0
    while True:
        queue.enqueue_due(now)
        if not run_next(queue, now):
            return steps
        steps += 1
        if steps >= max_steps:
            raise AssertionError(f"queue {queue.name!r} did not drain within {max_steps} messages")


def sign_frame(queue: TaskQueue, body: bytes, *, compressed: bool = False) -> bytes:
    """A frame holding ``body`` as a *task message*, signed with ``queue``'s key (for hand-made poison)."""
    key = queue.codec.signing_key
    assert key is not None, "the queue does not sign"
    flags = FLAG_SIGNED | (FLAG_COMPRESSED if compressed else 0)
    header = MAGIC + bytes((FRAME_VERSION, flags))
    signature = hmac.new(key, header + body, hashlib.sha256).digest()
    return header + signature + body
