"""``huey.contrib.djhuey``'s names on django-tasks-q.

A djhuey project changes ``from huey.contrib.djhuey import ...`` into
``from django_tasks_q.contrib.djhuey import ...`` and keeps its code. Every name here works on one queue, *the
djhuey queue* (:func:`queue_name`): the ``HUEY`` setting's queue when the project has ``HUEY`` and no
``TASKS_Q`` (see :mod:`django_tasks_q.huey_settings`), otherwise the ``default`` queue of ``TASKS_Q`` (or its
first queue when none is called ``default``).

Unlike djhuey, nothing is built at import time: ``HUEY`` stands for the djhuey queue as currently configured
(``override_settings`` rebuilds it), and the functions look the queue up at each call. Tasks and hooks belong to
the queue name and survive such rebuilds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from .. import decorators
from ..conf import DEFAULT_QUEUE, configured_queues, queues, registry_for
from ..huey_settings import huey_translation
from ..task import Task, TaskWrapper
from ..task_options import require_schedule

__all__ = [
    "HUEY",
    "close_db",
    "db_periodic_task",
    "db_task",
    "disconnect_signal",
    "enqueue",
    "is_revoked",
    "lock_task",
    "on_commit_task",
    "on_shutdown",
    "on_startup",
    "periodic_task",
    "post_execute",
    "pre_execute",
    "queue_name",
    "restore",
    "restore_all",
    "restore_by_id",
    "result",
    "revoke",
    "revoke_all",
    "revoke_by_id",
    "scheduled",
    "signal",
    "task",
]

Hook = Callable[..., Any]


def queue_name() -> str:
    """The name of the djhuey queue in the current settings."""
    if getattr(settings, "TASKS_Q", None) is None:
        translation = huey_translation()
        return translation.name if translation is not None else DEFAULT_QUEUE
    names = list(configured_queues())
    return DEFAULT_QUEUE if DEFAULT_QUEUE in names else names[0]


def _hub() -> Any:
    return queues[queue_name()]


class _CurrentQueue:
    """``HUEY``: the djhuey queue's :class:`~django_tasks_q.hub.queue.TaskQueue`, looked up at each use.

    Attribute reads and writes go to the queue as currently configured, so ``HUEY.immediate = True``,
    ``HUEY.pending()`` or ``HUEY.storage`` behave as on djhuey's ``HUEY``.
    """

    def __getattr__(self, attr: str) -> Any:
        return getattr(_hub(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(_hub(), attr, value)

    def __len__(self) -> int:
        return len(_hub())

    def __repr__(self) -> str:
        return f"<djhuey HUEY: {_hub()!r}>"


HUEY: Any = _CurrentQueue()


# ---------------------------------------------------------------------------- decorators


def task(
    retries: int = 0,
    retry_delay: float = 0,
    priority: int | None = None,
    context: bool = False,
    name: str | None = None,
    expires: dt.datetime | dt.timedelta | float | None = None,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Decorator: a task of the djhuey queue (huey's ``task()`` options, plus ours such as ``timeout``)."""
    return decorators.task(queue_name(), retries=retries, retry_delay=retry_delay, priority=priority,
                           context=context, name=name, expires=expires, **kwargs)  # fmt: skip


def periodic_task(
    validate_datetime: Callable[[dt.datetime], bool],
    retries: int = 0,
    retry_delay: float = 0,
    priority: int | None = None,
    context: bool = False,
    name: str | None = None,
    expires: dt.datetime | dt.timedelta | float | None = None,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Decorator: a periodic task of the djhuey queue, enqueued whenever ``validate_datetime(now)`` is true."""
    require_schedule(validate_datetime)
    return task(retries=retries, retry_delay=retry_delay, priority=priority, context=context, name=name,
                expires=expires, validate_datetime=validate_datetime, **kwargs)  # fmt: skip


def close_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so that Django's unusable or expired database connections are closed before and after it.

    As in djhuey, nothing is closed while the djhuey queue is immediate: the call then runs inside the caller's
    request or test, whose connection (and transaction) must stay open.
    """

    @wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        immediate = _hub().immediate
        if not immediate:
            close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            if not immediate:
                close_old_connections()

    return inner


def _closing_db(
    make_decorator: Callable[..., Callable[[Callable[..., Any]], TaskWrapper]],
) -> Callable[..., Callable[[Callable[..., Any]], TaskWrapper]]:
    """``make_decorator`` (task or periodic_task) applied to :func:`close_db` of the function; its
    ``call_local`` runs the undecorated function."""

    def with_arguments(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
        def decorator(fn: Callable[..., Any]) -> TaskWrapper:
            wrapper = make_decorator(*args, **kwargs)(close_db(fn))
            wrapper.call_local = fn  # type: ignore[method-assign]  # djhuey runs the undecorated function
            return wrapper

        return decorator

    return with_arguments


def db_task(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Decorator: :func:`task` around :func:`close_db`; ``call_local`` runs the undecorated function."""
    return _closing_db(task)(*args, **kwargs)


def db_periodic_task(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Decorator: :func:`periodic_task` around :func:`close_db`; ``call_local`` runs the undecorated function."""
    return _closing_db(periodic_task)(*args, **kwargs)


def on_commit_task(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: calling the function enqueues its task when the current transaction commits (never on rollback).

    The call is validated at once and its :class:`~django_tasks_q.result.Result` returned at once. The returned
    function is not a task wrapper (as in djhuey); decorate the function a second time with :func:`task` for
    ``.s()``, ``.schedule()`` and the rest.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = task(*args, **kwargs)(close_db(fn))

        @wraps(fn)
        def inner(*call_args: Any, **call_kwargs: Any) -> Any:
            return wrapper.queue.enqueue(wrapper.s(*call_args, **call_kwargs), on_commit=True)

        inner.call_local = fn  # type: ignore[attr-defined]  # djhuey runs the undecorated function
        return inner

    return decorator


class DjhueyLock(decorators.QueueLock):
    """``lock_task(name)``: a lock of the djhuey queue, as decorator or context manager.

    The name is known to the queue from the moment the lock is declared, so ``run_huey -f`` releases it even
    if no task has entered it in the consumer's process yet.
    """

    def __init__(self, name: str, queue_name: str) -> None:
        super().__init__(name, queue_name, None)
        registry_for(queue_name).state.known_locks.add(name)

    def clear(self) -> bool:
        """Remove the lock whoever holds it; True when it was held."""
        return queues[self.queue_name].release_lock(self.name)


def lock_task(lock_name: str) -> DjhueyLock:
    """A named lock in the djhuey queue's storage; entering a held lock raises TaskLockedException."""
    return DjhueyLock(lock_name, queue_name())


# ---------------------------------------------------------------------------- managing calls


def enqueue(task: Task) -> Any:
    """Enqueue a call made with ``my_task.s(...)``; returns its Result (or ResultGroup for a pipeline)."""
    return _hub().enqueue(task)


def revoke(task: Task, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
    """Revoke one call."""
    _hub().revoke(task, revoke_until, revoke_once)


def revoke_all(task: TaskWrapper, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
    """Revoke every call of a task."""
    _hub().revoke_all(task, revoke_until, revoke_once)


def revoke_by_id(id: str, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
    """Revoke one call by task id."""
    _hub().revoke_by_id(id, revoke_until, revoke_once)


def restore(task: Task) -> bool:
    """Undo :func:`revoke`; True when the call was revoked."""
    return _hub().restore(task)


def restore_all(task: TaskWrapper) -> bool:
    """Undo :func:`revoke_all`; True when the task was revoked."""
    return _hub().restore_all(task)


def restore_by_id(id: str) -> bool:
    """Undo :func:`revoke_by_id`; True when the call was revoked."""
    return _hub().restore_by_id(id)


def is_revoked(task: Task | TaskWrapper, timestamp: dt.datetime | None = None, peek: bool = True) -> bool:
    """Whether a call, or a whole task, is revoked."""
    return _hub().is_revoked(task, timestamp, peek)


def result(
    id: str,
    blocking: bool = False,
    timeout: float | None = None,
    backoff: float = 1.15,
    max_delay: float = 1.0,
    revoke_on_timeout: bool = False,
    preserve: bool = False,
) -> Any:
    """The value of the call ``id`` (``None`` when not ready); read once unless ``preserve`` (see Result.get)."""
    return _hub().result(
        id,
        blocking=blocking,
        timeout=timeout,
        backoff=backoff,
        max_delay=max_delay,
        revoke_on_timeout=revoke_on_timeout,
        preserve=preserve,
    )


def scheduled(limit: int | None = None) -> list[Task]:
    """The calls waiting in the schedule (delayed, or retrying later)."""
    return _hub().scheduled(limit)


# ---------------------------------------------------------------------------- hooks and signals


def on_startup(name: str | None = None) -> Callable[[Hook], Hook]:
    """Decorator: ``hook()`` runs when each consumer worker starts."""
    return _hub().on_startup(name)


def on_shutdown(name: str | None = None) -> Callable[[Hook], Hook]:
    """Decorator: ``hook()`` runs when each consumer worker stops."""
    return _hub().on_shutdown(name)


def pre_execute(name: str | None = None) -> Callable[[Hook], Hook]:
    """Decorator: ``hook(task)`` runs before each task; raising CancelExecution cancels it."""
    return _hub().pre_execute(name)


def post_execute(name: str | None = None) -> Callable[[Hook], Hook]:
    """Decorator: ``hook(task, task_value, exc)`` runs after each task."""
    return _hub().post_execute(name)


def signal(*signals: str) -> Callable[[Hook], Hook]:
    """Decorator: ``receiver(signal, task, *extra)`` receives the named signals (all when none are named)."""
    return _hub().signal(*signals)


def disconnect_signal(receiver: Hook, *signals: str) -> bool:
    """Stop sending the named signals (all when none are named) to ``receiver``."""
    return _hub().disconnect_signal(receiver, *signals)
