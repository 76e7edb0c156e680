"""Helpers for testing code that enqueues tasks.

.. code-block:: python

    from django_tasks_q.testing import capture_tasks, drain, immediate_queues, memory_queues

    @immediate_queues()                  # every queue runs tasks at once, in memory
    def test_signup_sends_mail(): ...

    def test_report_is_queued():
        with memory_queues(), capture_tasks() as captured:
            build_report(7)
            captured.assert_enqueued(make_report, args=(7,))
            drain()                      # run what is pending and due, synchronously

The pytest fixtures ``tasks_q_immediate``, ``tasks_q_memory`` and
``tasks_q_captured`` wrap the same helpers (installed as a pytest plugin).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.test import override_settings

from .conf import configured_queues, queues
from .signals import SIGNAL_ENQUEUED, task_event
from .task import Task, TaskWrapper
from .timeutils import now_utc

_KEEP = (
    "RESULTS",
    "STORE_NONE",
    "UTC",
    "SERIALIZER",
    "SIGNING",
    "COMPRESSION",
    "MAX_MESSAGE_SIZE",
    "RESULT_TTL",
    "LEASE",
    "MAX_ATTEMPTS",
    "MAX_RECLAIMS",
    "CONSUMER",
)


def _memory_settings(names: tuple[str, ...], immediate: bool) -> dict[str, dict[str, Any]]:
    current = configured_queues()
    chosen = names or tuple(current)
    settings = {}
    for name, conf in current.items():
        if name not in chosen:
            settings[name] = conf
            continue
        kept = {key: value for key, value in conf.items() if key in _KEEP}
        settings[name] = kept | {"BACKEND": "memory", "IMMEDIATE": immediate, "OPTIONS": {"block_timeout": 0}}
    for name in chosen:
        settings.setdefault(name, {"BACKEND": "memory", "IMMEDIATE": immediate, "OPTIONS": {"block_timeout": 0}})
    return settings


def immediate_queues(*names: str) -> override_settings:
    """Decorator or context manager: run the named queues (default: all) immediately, in memory."""
    return override_settings(TASKS_Q=_memory_settings(names, immediate=True))


def memory_queues(*names: str) -> override_settings:
    """Decorator or context manager: keep the named queues' tasks in memory until :func:`drain`."""
    return override_settings(TASKS_Q=_memory_settings(names, immediate=False))


def drain(*names: str, limit: int = 10_000) -> int:
    """Run every pending and due task of the named queues (default: all) in this thread; returns how many ran.

    Follow-ups (retries without delay, pipelines, chord callbacks) enqueued by
    those tasks run too; a call whose eta is ahead is moved to the schedule, as a worker does, and is not
    counted (it did not run). Like a consumer's worker, each
    acknowledgement claims the next message in the same storage step; an empty queue is not reserved from, so
    a blocking storage (Redis) never waits its ``block_timeout`` here.
    """
    ran = 0
    progress = True
    while progress:
        progress = False
        for name in names or tuple(configured_queues()):
            hub = queues[name]
            hub.enqueue_due(now_utc())
            reservation = None
            while reservation is not None or (hub.pending_count() and (reservation := hub.reserve()) is not None):
                if ran >= limit:
                    hub.release(reservation)
                    raise RuntimeError(f"drain() ran {limit} tasks and the queues are still not empty")
                claimed = hub.inspect_message(reservation.data).task
                early = claimed is not None and claimed.eta is not None and claimed.eta > now_utc()
                reservation = hub.process(reservation, reserve_next=True)
                if not early:
                    ran += 1
                    progress = True
    return ran


class CapturedTasks(list):
    """The task calls enqueued while capturing, in order (a list of :class:`~django_tasks_q.task.Task`)."""

    def names(self) -> list[str]:
        """Names of the captured calls (``name=`` or the function's name), in order."""
        return [task.name for task in self]

    def of(self, task: TaskWrapper | str) -> list[Task]:
        """The captured calls of one task: a decorated function, its path, or a name (which matches the calls
        of every task so named)."""
        if not isinstance(task, str):
            return [captured for captured in self if captured.path == task.path]
        return [captured for captured in self if task in (captured.path, captured.name)]

    def assert_enqueued(
        self,
        task: TaskWrapper | str,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        count: int | None = None,
    ) -> list[Task]:
        """Assert ``task`` was enqueued (with these arguments, ``count`` times when given); returns the calls."""
        calls = self.of(task)
        if args is not None:
            calls = [call for call in calls if call.args == tuple(args)]
        if kwargs is not None:
            calls = [call for call in calls if call.kwargs == kwargs]
        name = task if isinstance(task, str) else task.path
        wanted = f"{name}(args={args!r}, kwargs={kwargs!r})"
        if count is None and not calls:
            raise AssertionError(f"{wanted} was not enqueued; enqueued: {self._describe()}")
        if count is not None and len(calls) != count:
            raise AssertionError(f"{wanted} was enqueued {len(calls)} time(s), expected {count}; {self._describe()}")
        return calls

    def assert_not_enqueued(self, task: TaskWrapper | str) -> None:
        """Assert ``task`` was not enqueued at all."""
        if self.of(task):
            raise AssertionError(f"{task} was enqueued: {self._describe()}")

    def _describe(self) -> str:
        return ", ".join(f"{t.path}{t.args!r}" for t in self) or "nothing"


@contextlib.contextmanager
def capture_tasks(*names: str) -> Iterator[CapturedTasks]:
    """Record the calls enqueued on the named queues (default: all) while the block runs."""
    captured = CapturedTasks()

    def receiver(sender: Any, event: str, task: Any, **kwargs: Any) -> None:
        if event == SIGNAL_ENQUEUED and (not names or sender.name in names):
            captured.append(task)

    task_event.connect(receiver, weak=False)
    try:
        yield captured
    finally:
        task_event.disconnect(receiver)
