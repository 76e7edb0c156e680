"""A hub's hooks (pre- and post-execute, worker start-up and shut-down) and its signal receivers.

They live with the task registry's state, so a queue rebuilt from settings (``override_settings``, a new
``SECRET_KEY``) keeps them, like its tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..registry import QueueState

logger = logging.getLogger("django_tasks_q")

Hook = Callable[..., Any]


def _hook_decorator(hooks: dict[str, Hook], name: str | None) -> Callable[[Hook], Hook]:
    def decorator(func: Hook) -> Hook:
        hooks[name or func.__name__] = func
        return func

    return decorator


def _unregister(hooks: dict[str, Hook], name_or_fn: str | Hook) -> bool:
    key = name_or_fn if isinstance(name_or_fn, str) else name_or_fn.__name__
    return hooks.pop(key, None) is not None


class Hooks:
    """Registers a hub's hooks and signal receivers, and runs its start-up and shut-down hooks."""

    def __init__(self, queue_name: str, state: QueueState) -> None:
        self.queue_name = queue_name
        self.signals = state.signals
        self.before = state.pre_execute
        """Pre-execute hooks by name, run before each call."""
        self.after = state.post_execute
        """Post-execute hooks by name, run after each call."""
        self.startup = state.startup
        self.shutdown = state.shutdown

    def pre_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook(task)`` runs before each task; raising CancelExecution cancels the task."""
        return _hook_decorator(self.before, name)

    def post_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook(task, task_value, exc)`` runs after each task."""
        return _hook_decorator(self.after, name)

    def on_startup(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook()`` runs when each consumer worker starts."""
        return _hook_decorator(self.startup, name)

    def on_shutdown(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook()`` runs when each consumer worker stops."""
        return _hook_decorator(self.shutdown, name)

    def unregister_pre_execute(self, name_or_fn: str | Hook) -> bool:
        """Remove a pre-execute hook by name or function."""
        return _unregister(self.before, name_or_fn)

    def unregister_post_execute(self, name_or_fn: str | Hook) -> bool:
        """Remove a post-execute hook by name or function."""
        return _unregister(self.after, name_or_fn)

    def unregister_on_startup(self, name_or_fn: str | Hook) -> bool:
        """Remove a startup hook by name or function."""
        return _unregister(self.startup, name_or_fn)

    def unregister_on_shutdown(self, name_or_fn: str | Hook) -> bool:
        """Remove a shutdown hook by name or function."""
        return _unregister(self.shutdown, name_or_fn)

    def run_startup_hooks(self) -> None:
        """Run every startup hook; one that raises is logged and the others still run."""
        self._run_lifecycle_hooks(self.startup, "startup")

    def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook; one that raises is logged and the others still run."""
        self._run_lifecycle_hooks(self.shutdown, "shutdown")

    def _run_lifecycle_hooks(self, hooks: dict[str, Hook], kind: str) -> None:
        for hook_name, hook in list(hooks.items()):
            try:
                hook()
            except Exception:
                logger.exception("%s hook %r of queue %r failed", kind, hook_name, self.queue_name)

    def signal(self, *signals: str) -> Callable[[Hook], Hook]:
        """Decorator: call ``receiver(signal, task, *extra)`` for the named signals (all when none)."""

        def decorator(receiver: Hook) -> Hook:
            self.signals.connect(receiver, *signals)
            return receiver

        return decorator

    def disconnect_signal(self, receiver: Hook, *signals: str) -> bool:
        """Stop sending the named signals (all when none) to ``receiver``."""
        return self.signals.disconnect(receiver, *signals)
