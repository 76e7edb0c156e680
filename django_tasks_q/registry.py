"""Task registry: the only way a stored task path becomes code.

Tasks are registered under their :attr:`~django_tasks_q.task.TaskWrapper.path` (``name=`` if given, else the
function's ``module.qualname``), the name messages carry. Paths are never imported from a payload; a message
naming a task this process has not registered is rejected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError, TaskNotRegistered
from .signals import SignalRegistry

if TYPE_CHECKING:
    from .task import TaskWrapper


UNIMPORTABLE_MODULES = {
    "__main__": "a script run directly (its module is __main__)",
    "__mp_main__": "a script run directly (its module is __main__)",
    "django.core.management.commands.shell": "`manage.py shell`",
}
"""Modules whose functions no consumer process can have: a task defined there is never registered in run_tasks."""


def refuse_unimportable_task(func: Callable[..., Any], queue_name: str) -> None:
    """Raise ConfigurationError when ``func`` is defined where ``run_tasks`` cannot import it.

    The consumer knows the tasks of the modules it imports (every installed app's ``tasks`` module); a task
    defined in the shell or in a script run as ``__main__`` gets a name no consumer registers, so each call
    would be dead-lettered as an unknown task. Passing ``name=`` opts out: the caller then promises that the
    consumer registers a task under that name.
    """
    module = getattr(func, "__module__", None)
    where = UNIMPORTABLE_MODULES.get(module or "")
    if where is None:
        return
    function = getattr(func, "__qualname__", repr(func))
    raise ConfigurationError(
        f"task {function!r} is defined in {where}, so the consumer (run_tasks) can never import it: every call "
        f"would be dead-lettered as an unknown task of queue {queue_name!r}. Define it in the tasks.py module of "
        f"an app listed in INSTALLED_APPS and import it from there (from myapp.tasks import {function}); or, if "
        f"the consumer registers this function under a name of its own, pass that name: @task(name=...)."
    )


@dataclass
class QueueState:
    """What a queue accumulates besides tasks: hooks, signal receivers, known locks and rate limits."""

    signals: SignalRegistry = field(default_factory=SignalRegistry)
    pre_execute: dict[str, Callable[..., Any]] = field(default_factory=dict)
    post_execute: dict[str, Callable[..., Any]] = field(default_factory=dict)
    startup: dict[str, Callable[..., Any]] = field(default_factory=dict)
    shutdown: dict[str, Callable[..., Any]] = field(default_factory=dict)
    known_locks: set[str] = field(default_factory=set)
    known_rate_limits: set[str] = field(default_factory=set)
    rate_limit_specs: dict[str, tuple[int, float]] = field(default_factory=dict)


class TaskRegistry:
    """Registered tasks of one queue, by path, and the queue's other state (:class:`QueueState`)."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._tasks: dict[str, TaskWrapper] = {}
        self._lock = threading.Lock()
        self.state = QueueState()

    def register(self, wrapper: TaskWrapper) -> None:
        """Add a task under its path.

        Registering the same function again (a re-imported or reloaded module)
        replaces the entry; a *different* function under a path already taken is
        a :class:`ConfigurationError` naming both.
        """
        with self._lock:
            existing = self._tasks.get(wrapper.path)
            if existing is not None and existing.origin != wrapper.origin:
                raise ConfigurationError(
                    f"task name {wrapper.path!r} on queue {self.queue_name!r} is already used by "
                    f"{existing.origin}; {wrapper.origin} needs another name (pass name=...)"
                )
            self._tasks[wrapper.path] = wrapper

    def unregister(self, path: str) -> bool:
        """Remove the task registered under ``path``; True when it was registered."""
        with self._lock:
            return self._tasks.pop(path, None) is not None

    def get(self, path: str) -> TaskWrapper:
        """The task registered under ``path``; :class:`TaskNotRegistered` when there is none."""
        try:
            return self._tasks[path]
        except KeyError:
            raise TaskNotRegistered(
                f"no task named {path!r} is registered on queue {self.queue_name!r}"
            ) from None

    def find(self, path: str) -> TaskWrapper | None:
        """The task registered under ``path``, or None when there is none."""
        return self._tasks.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._tasks

    def __iter__(self) -> Iterator[TaskWrapper]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """Sorted paths of all registered tasks (the names they are registered under)."""
        return sorted(self._tasks)

    def periodic(self) -> list[TaskWrapper]:
        """The registered periodic tasks."""
        return [wrapper for wrapper in self._tasks.values() if wrapper.validate_datetime is not None]
