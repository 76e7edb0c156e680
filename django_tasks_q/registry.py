"""Task registry: the only way a stored task name becomes code (RELIABILITY R23).

Names are never imported from a payload; a message naming a task this process
has not registered is rejected.
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
    """Registered tasks of one queue, by name, and the queue's other state (:class:`QueueState`)."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._tasks: dict[str, TaskWrapper] = {}
        self._lock = threading.Lock()
        self.state = QueueState()

    def register(self, wrapper: TaskWrapper) -> None:
        """Add a task under its name.

        Registering the same function again (a re-imported or reloaded module)
        replaces the entry; a *different* function under a name already taken is
        a :class:`ConfigurationError` naming both.
        """
        with self._lock:
            existing = self._tasks.get(wrapper.name)
            if existing is not None and existing.origin != wrapper.origin:
                raise ConfigurationError(
                    f"task name {wrapper.name!r} on queue {self.queue_name!r} is already used by "
                    f"{existing.origin}; {wrapper.origin} needs another name (pass name=...)"
                )
            self._tasks[wrapper.name] = wrapper

    def unregister(self, name: str) -> bool:
        """Remove a task; True when it was registered."""
        with self._lock:
            return self._tasks.pop(name, None) is not None

    def get(self, name: str) -> TaskWrapper:
        """The task registered under ``name``; :class:`TaskNotRegistered` when there is none."""
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotRegistered(
                f"no task named {name!r} is registered on queue {self.queue_name!r}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskWrapper]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """Sorted names of all registered tasks."""
        return sorted(self._tasks)

    def periodic(self) -> list[TaskWrapper]:
        """The registered periodic tasks."""
        return [wrapper for wrapper in self._tasks.values() if wrapper.validate_datetime is not None]
