"""Module-level decorators for app code: ``@task(queue="emails")`` and ``@periodic_task(crontab(...))``.

Tasks declared here belong to a queue *name* from ``TASKS_Q``; the queue's hub
is looked up at each use, so ``override_settings(TASKS_Q=...)`` in tests, or
a rebuilt queue, is picked up without re-importing the task.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from .conf import DEFAULT_QUEUE, queues, registry_for
from .locks import _DecoratorContext
from .registry import refuse_unimportable_task
from .task import TaskWrapper
from .task_options import require_schedule


class QueueTaskWrapper(TaskWrapper):
    """A task bound to a queue by name (see :func:`task`)."""

    django_task: Any
    """The ``django.tasks`` task this wrapper runs, when the ``django.tasks`` backend registered it."""

    def __init__(self, queue_name: str, func: Callable[..., Any], **options: Any) -> None:
        self.queue_name = queue_name
        super().__init__(None, func, **options)  # type: ignore[arg-type]  # the queue is found by name (queue)

    @property
    def queue(self) -> Any:
        """The hub of this task's queue, as currently configured."""
        return queues[self.queue_name]

    def __repr__(self) -> str:
        kind = "periodic task" if self.validate_datetime is not None else "task"
        return f"<{kind} {self.path!r} on queue {self.queue_name!r}>"


def task(
    queue: str = DEFAULT_QUEUE,
    *,
    retries: int = 0,
    retry_delay: float = 0,
    retry_backoff: float = 1.0,
    priority: int | None = None,
    context: bool = False,
    name: str | None = None,
    expires: dt.datetime | dt.timedelta | float | None = None,
    timeout: float | None = None,
    **extra: Any,
) -> Callable[[Callable[..., Any]], QueueTaskWrapper]:
    """Decorator: register a function as a task of the configured queue ``queue``.

    Takes the options of :meth:`TaskQueue.task <django_tasks_q.hub.queue.TaskQueue.task>`.
    """

    options = {"name": name, "retries": retries, "retry_delay": retry_delay, "retry_backoff": retry_backoff,
               "priority": priority, "context": context, "expires": expires, "timeout": timeout, **extra}

    def decorator(func: Callable[..., Any]) -> QueueTaskWrapper:
        if name is None:
            refuse_unimportable_task(func, queue)
        wrapper = QueueTaskWrapper(queue, func, **options)
        registry_for(queue).register(wrapper)
        return wrapper

    return decorator


def periodic_task(
    validate_datetime: Callable[[dt.datetime], bool],
    queue: str = DEFAULT_QUEUE,
    **options: Any,
) -> Callable[[Callable[..., Any]], QueueTaskWrapper]:
    """Decorator: a periodic task of queue ``queue``, enqueued whenever ``validate_datetime(now)`` is true."""
    require_schedule(validate_datetime)
    return task(queue, validate_datetime=validate_datetime, **options)


class _QueueBound(_DecoratorContext):
    """A lock or rate limit of a configured queue, looked up when it is used (settings may change)."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._held = threading.local()

    def _build(self) -> Any:
        """The queue's own lock or rate limit (subclasses say which)."""
        raise TypeError(f"{type(self).__name__} must define _build()")

    def __enter__(self) -> Any:
        inner = self._build()
        stack = self._held.__dict__.setdefault("stack", [])
        stack.append(inner)
        try:
            return inner.__enter__()
        except BaseException:
            stack.pop()
            raise

    def __exit__(self, *exc_info: Any) -> None:
        self._held.stack.pop().__exit__(*exc_info)


class QueueLock(_QueueBound):
    """``lock_task(name, queue=...)`` for app code: see :meth:`TaskQueue.lock_task`."""

    def __init__(self, name: str, queue_name: str, ttl: float | None) -> None:
        super().__init__(queue_name)
        self.name = name
        self.ttl = ttl

    def _build(self) -> Any:
        return queues[self.queue_name].lock_task(self.name, ttl=self.ttl)

    def is_locked(self) -> bool:
        """Whether the lock is held now."""
        return queues[self.queue_name].is_locked(self.name)


class QueueRateLimit(_QueueBound):
    """``rate_limit(name, limit, per, queue=...)`` for app code: see :meth:`TaskQueue.rate_limit`."""

    def __init__(self, name: str, limit: int, per: float, queue_name: str) -> None:
        super().__init__(queue_name)
        self.name, self.limit, self.per = name, limit, per

    def _build(self) -> Any:
        return queues[self.queue_name].rate_limit(self.name, self.limit, self.per)


def lock_task(name: str, queue: str = DEFAULT_QUEUE, ttl: float | None = None) -> QueueLock:
    """A named lock in queue ``queue``'s storage, as decorator or context manager (raises TaskLockedException)."""
    return QueueLock(name, queue, ttl)


def rate_limit(name: str, limit: int, per: float, queue: str = DEFAULT_QUEUE) -> QueueRateLimit:
    """At most ``limit`` entries per ``per`` seconds, counted in queue ``queue``'s storage."""
    return QueueRateLimit(name, limit, per, queue)
