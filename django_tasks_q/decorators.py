"""Module-level decorators for app code: ``@task(queue="emails")`` and ``@periodic_task(crontab(...))``.

Tasks declared here belong to a queue *name* from ``TASKS_Q``; the queue's hub
is looked up at each use, so ``override_settings(TASKS_Q=...)`` in tests, or
a rebuilt queue, is picked up without re-importing the task.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .conf import DEFAULT_QUEUE, queues, registry_for
from .task import TaskWrapper


class QueueTaskWrapper(TaskWrapper):
    """A task bound to a queue by name (see :func:`task`)."""

    def __init__(self, queue_name: str, func: Callable[..., Any], **options: Any) -> None:
        self.queue_name = queue_name
        super().__init__(None, func, **options)  # type: ignore[arg-type]

    @property
    def queue(self) -> Any:
        """The hub of this task's queue, as currently configured."""
        return queues[self.queue_name]

    def __repr__(self) -> str:
        kind = "periodic task" if self.validate_datetime is not None else "task"
        return f"<{kind} {self.name!r} on queue {self.queue_name!r}>"


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

    Takes the options of :meth:`TaskQueue.task <django_tasks_q.queue.TaskQueue.task>`.
    """

    def decorator(func: Callable[..., Any]) -> QueueTaskWrapper:
        wrapper = QueueTaskWrapper(
            queue,
            func,
            name=name,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            priority=priority,
            context=context,
            expires=expires,
            timeout=timeout,
            **extra,
        )
        registry_for(queue).register(wrapper)
        return wrapper

    return decorator


def periodic_task(
    validate_datetime: Callable[[dt.datetime], bool],
    queue: str = DEFAULT_QUEUE,
    **options: Any,
) -> Callable[[Callable[..., Any]], QueueTaskWrapper]:
    """Decorator: a periodic task of queue ``queue``, enqueued whenever ``validate_datetime(now)`` is true."""
    if not callable(validate_datetime):
        from .exceptions import ConfigurationError

        raise ConfigurationError("periodic_task() needs a callable such as crontab(...) as its first argument")
    return task(queue, validate_datetime=validate_datetime, **options)
