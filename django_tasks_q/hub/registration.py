"""Declaring tasks on a hub: ``@queue.task()``, ``@queue.periodic_task(crontab(...))``, ``@queue.context_task(obj)``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..task import TaskWrapper
from ..task_options import require_schedule

if TYPE_CHECKING:
    from .queue import TaskQueue


class Declarations:
    """Turns functions into tasks of a hub and registers them in its registry."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def task(
        self,
        retries: int = 0,
        retry_delay: float = 0,
        priority: int | None = None,
        context: bool = False,
        name: str | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        timeout: float | None = None,
        retry_backoff: float = 1.0,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Decorator: register a function as a task of this queue."""
        hub = self.hub
        options = {"name": name, "retries": retries, "retry_delay": retry_delay, "retry_backoff": retry_backoff,
                   "priority": priority, "context": context, "expires": expires, "timeout": timeout, **kwargs}

        def decorator(func: Callable[..., Any]) -> TaskWrapper:
            if isinstance(func, TaskWrapper):
                func = func.func  # a task of another queue: this queue gets its own task of the same function
            wrapper = TaskWrapper(hub, func, **options)
            hub.registry.register(wrapper)
            return wrapper

        return decorator

    def periodic_task(
        self,
        validate_datetime: Callable[[dt.datetime], bool],
        retries: int = 0,
        retry_delay: float = 0,
        priority: int | None = None,
        context: bool = False,
        name: str | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Decorator: a task enqueued by the consumer's scheduler whenever ``validate_datetime(now)`` is true.

        ``validate_datetime`` is usually a :func:`~django_tasks_q.crontab.crontab`;
        it is checked once a minute. Periodic tasks take no arguments.
        """
        require_schedule(validate_datetime)
        return self.hub.task(retries=retries, retry_delay=retry_delay, priority=priority, context=context, name=name,
                             expires=expires, timeout=timeout, validate_datetime=validate_datetime, **kwargs)  # fmt: skip

    def context_task(self, obj: Any, as_argument: bool = False, **kwargs: Any) -> Callable[..., TaskWrapper]:
        """Decorator: a task that runs inside ``with obj:`` (``as_argument`` passes what it yields first)."""
        return self.hub.task(context_manager=obj, as_argument=as_argument, **kwargs)
