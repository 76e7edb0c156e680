"""Tasks: what the decorators return (:class:`TaskWrapper`) and one call of a task (:class:`Task`).

A :class:`TaskWrapper` is the decorated function: calling it enqueues a
:class:`Task` and returns a :class:`~django_tasks_q.result.Result`. A
:class:`Task` is one invocation with its id, arguments and options; it is
what hooks, signal receivers and ``context=True`` tasks receive, and what
pipelines (``.then()`` / ``.error()``), groups and chords are built from.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError, InvalidOption, TaskTimeout
from .messages.envelope import EXPIRES_AS_TIMEDELTA, EXPIRES_IN, Message, new_call_id
from .task_options import CALL_OPTIONS, validate_options
from .timeutils import TimeConversion, convert

if TYPE_CHECKING:
    from .backends.base import Reservation
    from .hub.queue import TaskQueue
    from .result import Result, ResultGroup

class Task:
    """One call of a task: its id, arguments and options, as carried by a message.

    Calls are made by the hub (``wrapper.s()``, a decoded message); one built by hand, such as
    ``Task(id=some_id)`` to hold a :class:`~django_tasks_q.result.Result` handle, may leave out the path.

    ``path`` is the name the task is registered and sent under (its :attr:`TaskWrapper.path`: ``name=`` if
    given, else ``module.qualname``); ``name`` is the task's name as huey and Django give it (``name=`` if
    given, else the function's ``__name__``).

    The hub gives ``eta``, ``expires_resolved`` and ``enqueued_at`` in its datetime convention (naive or aware,
    see :class:`~django_tasks_q.hub.queue.TaskQueue`). ``expires`` is the expiry as it was given (seconds, a
    timedelta or a datetime) and ``expires_resolved`` the moment it stands for, fixed when the call is enqueued
    (``None`` before, for a relative expiry). Either convention may be assigned to ``eta``: the hub reads a naive
    value as its ``utc`` setting says.
    """

    def __init__(
        self,
        path: str = "",
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        eta: dt.datetime | None = None,
        priority: int | None = None,
        retries: int = 0,
        retry_delay: float = 0,
        retry_backoff: float = 1.0,
        expires: dt.datetime | dt.timedelta | float | None = None,
        expires_resolved: dt.datetime | None = None,
        timeout: float | None = None,
        on_complete: Task | None = None,
        on_error: Task | None = None,
        chord: dict[str, Any] | None = None,
        enqueued_at: dt.datetime | None = None,
        extra: dict[str, Any] | None = None,
        wrapper: TaskWrapper | None = None,
    ) -> None:
        self.path = path
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.id = id or new_call_id()
        self.eta = eta
        self.priority = priority
        self.retries = retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.expires = expires
        self.expires_resolved = expires_resolved
        self.timeout = timeout
        self.on_complete = on_complete
        self.on_error = on_error
        self.chord = chord
        self.enqueued_at = enqueued_at
        self.extra = dict(extra or {})
        self.wrapper = wrapper
        self.attempt = 1
        self.redelivered = False
        self.reservation: Reservation | None = None
        """Set on a call taken with :meth:`TaskQueue.dequeue`: the claim that :meth:`TaskQueue.execute` acknowledges."""
        # While the call runs with a ``timeout``: the ``time.monotonic()`` reading at which it times out (private,
        # as in huey: ``time_remaining``, ``is_timed_out`` and ``check_timeout`` are the public way to read it).
        self._deadline: float | None = None

    @property
    def name(self) -> str:
        """The task's name: ``name=`` if given, else the function's ``__name__`` (huey's and Django's meaning).

        A call not bound to a task (built by hand, or a follow-up before the hub binds it) has only its
        :attr:`path`; its last dotted part stands in.
        """
        wrapper = self.wrapper
        if wrapper is not None:
            return wrapper.name
        return self.path.rpartition(".")[2]

    @property
    def time_remaining(self) -> float:
        """Seconds left before this call's ``timeout`` while it runs (``inf`` without one), for cooperative checks."""
        if self._deadline is None:
            return math.inf
        return max(0.0, self._deadline - time.monotonic())

    @property
    def is_timed_out(self) -> bool:
        """Whether this running call has used up its ``timeout``."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def check_timeout(self) -> None:
        """Raise :class:`~django_tasks_q.exceptions.TaskTimeout` when this running call has used up its timeout.

        For long tasks that stop at a safe point themselves, beside the time limit the worker enforces.
        """
        if self.is_timed_out:
            raise TaskTimeout(f"task {self.path} ({self.id}) ran longer than its timeout of {self.timeout:g} s")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self.id == other.id and self.eta == other.eta and type(self) is type(other)

    def __hash__(self) -> int:
        return hash(self.id)

    def execute(self) -> Any:
        """Run this call's function here and now (no queue, no hooks, no result stored); returns its value."""
        if self.wrapper is None:
            raise InvalidOption(f"task call {self.id} is not bound to a task; cannot execute it")
        return self.wrapper.queue.run_function(self.wrapper, self.args, self.kwargs, self)

    def report_progress(self, fraction: float, message: str = "") -> None:
        """Record how far this call has got (0.0 to 1.0, with an optional message) for the admin and Results."""
        if self.wrapper is None:
            raise InvalidOption(f"task call {self.id} is not bound to a queue; cannot report progress")
        self.wrapper.queue.report_progress(self.id, fraction, message)

    # --- pipelines (huey's semantics) ---

    def then(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> Task:
        """Run ``task`` after this one (and after any already chained) succeeds; returns ``self``.

        The previous task's return value is appended to the next task's
        arguments (a tuple extends them, a dict updates the keyword arguments,
        ``None`` adds nothing).
        """
        if self.on_complete is not None:
            self.on_complete.then(task, *args, **kwargs)
        else:
            self.on_complete = as_task(task, args, kwargs)
        return self

    def error(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> Task:
        """Run ``task`` when this task fails; it receives the exception raised as its last argument.

        The handler runs after each failed attempt (only after the last one when the queue has
        ``store_intermediate_errors=False``). The exception is rebuilt from its class path and args in
        the handler's worker; when that is not possible (its module is not imported there, it is not an
        :class:`Exception`, its class does not take its args back) the handler receives a
        :class:`~django_tasks_q.exceptions.TaskException` whose ``metadata`` holds the error text, type,
        traceback and task id.
        """
        if self.on_error is not None:
            self.on_error.error(task, *args, **kwargs)
        else:
            self.on_error = as_task(task, args, kwargs)
        return self

    def extend_data(self, data: Any) -> None:
        """Add the previous pipeline step's return value to this task's arguments."""
        if data is None or data == ():
            return
        if isinstance(data, tuple):
            self.args = self.args + data
        elif isinstance(data, dict):
            # Keyword arguments given to the step itself (``.then(f, b=6)``) win over the previous value's.
            for key, value in data.items():
                self.kwargs.setdefault(key, value)
        else:
            self.args = (*self.args, data)

    def chain(self) -> list[Task]:
        """This task and every ``on_complete`` follow-up, in order."""
        tasks: list[Task] = []
        node: Task | None = self
        while node is not None:
            tasks.append(node)
            node = node.on_complete
        return tasks

    # --- conversion ---

    def to_message(self, as_utc: TimeConversion | None = None) -> Message:
        """The wire envelope of this call (and of its pipeline steps).

        ``as_utc`` turns the call's datetimes into the aware UTC ones an encoded message needs (the hub's
        :meth:`~django_tasks_q.hub.queue.TaskQueue.as_utc`); without it they are carried as they are, which
        :meth:`copy` relies on. A relative ``expires`` travels in ``extra`` (``EXPIRES_IN``), and the moment it
        resolved to, if it has, in the ``expires`` field; an absolute ``expires`` is its own resolution.
        """
        extra = self.extra
        expires = self.expires
        expires_at = self.expires_resolved
        if expires is not None and not isinstance(expires, dt.datetime):
            extra = {**extra, EXPIRES_IN: expires.total_seconds() if isinstance(expires, dt.timedelta) else expires}
            if isinstance(expires, dt.timedelta):
                extra[EXPIRES_AS_TIMEDELTA] = True
        elif expires_at is None:
            expires_at = expires
        eta, enqueued_at = self.eta, self.enqueued_at
        if as_utc is not None:
            eta, expires_at, enqueued_at = (convert(as_utc, value) for value in (eta, expires_at, enqueued_at))
        return Message(
            id=self.id,
            name=self.path,
            args=self.args,
            kwargs=self.kwargs,
            eta=eta,
            priority=self.priority,
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.retry_backoff,
            expires=expires_at,
            timeout=self.timeout,
            on_complete=self.on_complete.to_message(as_utc) if self.on_complete else None,
            on_error=self.on_error.to_message(as_utc) if self.on_error else None,
            chord=self.chord,
            enqueued_at=enqueued_at,
            extra=extra,
        )

    @classmethod
    def from_message(
        cls,
        message: Message,
        registry_get: Callable[[str], TaskWrapper] | None = None,
        *,
        present: TimeConversion | None = None,
    ) -> Task:
        """Rebuild a call from its envelope; ``registry_get`` binds it (and its follow-ups) to tasks.

        ``present`` turns the message's aware UTC datetimes into the hub's convention (the hub's
        :meth:`~django_tasks_q.hub.queue.TaskQueue.present`); without it they are kept as they are. A message
        without ``EXPIRES_IN`` in ``extra`` had no relative expiry: ``expires`` is then the moment of its
        ``expires`` field, as ``expires_resolved``.
        """
        wrapper = None
        if registry_get is not None:
            wrapper = registry_get(message.name)
            if cls is Task and wrapper.validate_datetime is not None:
                cls = PeriodicTask
        eta, expires_at, enqueued_at = message.eta, message.expires, message.enqueued_at
        if present is not None:
            eta, expires_at, enqueued_at = (convert(present, value) for value in (eta, expires_at, enqueued_at))
        extra = message.extra
        expires: dt.datetime | dt.timedelta | float | None = expires_at
        if EXPIRES_IN in extra:
            extra = dict(extra)
            seconds = extra.pop(EXPIRES_IN)
            expires = dt.timedelta(seconds=seconds) if extra.pop(EXPIRES_AS_TIMEDELTA, False) else seconds
        return cls(
            message.name,
            tuple(message.args),
            dict(message.kwargs),
            id=message.id,
            eta=eta,
            priority=message.priority,
            retries=message.retries,
            retry_delay=message.retry_delay,
            retry_backoff=message.retry_backoff,
            expires=expires,
            expires_resolved=expires_at,
            timeout=message.timeout,
            on_complete=cls.from_message(message.on_complete, present=present) if message.on_complete else None,
            on_error=cls.from_message(message.on_error, present=present) if message.on_error else None,
            chord=message.chord,
            enqueued_at=enqueued_at,
            extra=extra,
            wrapper=wrapper,
        )

    def copy(self, **changes: Any) -> Task:
        """A new call with the same data, a new id unless ``id`` is given, and ``changes`` applied."""
        clone = type(self).from_message(self.to_message())
        clone.wrapper = self.wrapper
        clone.id = changes.pop("id", None) or new_call_id()
        for key, value in changes.items():
            setattr(clone, key, value)
        return clone

    def __repr__(self) -> str:
        parts = [f"{self.path}: {self.id}"]
        if self.eta:
            parts.append(f"@{self.eta.isoformat()}")
        if self.priority:
            parts.append(f"p={self.priority}")
        if self.retries:
            parts.append(f"{self.retries} retries")
        return " ".join(parts)


class PeriodicTask(Task):
    """A call of a periodic task (one declared with ``periodic_task``); such calls store no result."""


def as_task(task: TaskWrapper | Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Task:
    """A call of ``task`` (a bare task, or a ``.s()`` call to which ``args`` and ``kwargs`` are added)."""
    if isinstance(task, TaskWrapper):
        return task.s(*args, **kwargs)
    if isinstance(task, Task):
        # As in huey: arguments given here are added to the call's own.
        if args:
            task.extend_data(args)
        if kwargs:
            task.extend_data(kwargs)
        return task
    raise InvalidOption(f"expected a task or a task call (.s()), got {type(task).__name__}")


class TaskWrapper:
    """A decorated task function. Call it to enqueue; ``call_local`` runs it here and now."""

    def __init__(
        self,
        queue: TaskQueue,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay: float = 0,
        retry_backoff: float = 1.0,
        priority: int | None = None,
        context: bool = False,
        expires: dt.datetime | dt.timedelta | float | None = None,
        timeout: float | None = None,
        validate_datetime: Callable[[dt.datetime], bool] | None = None,
        context_manager: Any = None,
        as_argument: bool = False,
        unique: bool = False,
        unique_ttl: float = 86400,
        **extra: Any,
    ) -> None:
        self._queue = queue
        self.func = func
        self.origin = f"{func.__module__}.{func.__qualname__}"
        self.name = name or func.__name__
        """The task's name: ``name=`` if given, else the function's ``__name__`` (as in huey and Django)."""
        self.path = name or self.origin
        """The name the task is registered and sent under: ``name=`` if given, else ``module.qualname``."""
        where = f"task {self.path!r}"
        validate_options(
            where,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            priority=priority,
            timeout=timeout,
        )
        if expires is not None and not isinstance(expires, (dt.datetime, dt.timedelta, int, float)):
            raise InvalidOption(f"{where}: expires must be seconds, a timedelta or a datetime", field="expires")
        self.retries = retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.priority = priority
        self.context = context
        self.expires = expires
        self.timeout = timeout
        self.validate_datetime = validate_datetime
        self.context_manager = context_manager
        self.as_argument = as_argument
        if isinstance(unique_ttl, bool) or not isinstance(unique_ttl, (int, float)) or unique_ttl <= 0:
            raise InvalidOption(f"task {self.path!r}: unique_ttl must be seconds > 0, got {unique_ttl!r}")
        self.unique = unique
        self.unique_ttl = unique_ttl
        self.extra = extra
        self.is_async = inspect.iscoroutinefunction(func)
        self._signature = _signature_or_none(func)
        self._own_params = self._declared_parameters()
        self._arity = self._positional_arity()
        if context and not self._accepts("task"):
            raise ConfigurationError(
                f"{where} is declared with context=True, so it is called with a 'task' keyword "
                "argument; add a 'task' parameter (or **kwargs) to the function"
            )
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", self.name)
        self.__qualname__ = getattr(func, "__qualname__", self.path)
        self.__module__ = func.__module__
        self.__wrapped__ = func

    @property
    def queue(self) -> TaskQueue:
        """The queue this task is enqueued on."""
        return self._queue

    def _declared_parameters(self) -> frozenset[str]:
        if self._signature is None:
            return frozenset()
        return frozenset(
            name
            for name, param in self._signature.parameters.items()
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        )

    def _positional_arity(self) -> int | None:
        """How many arguments the function takes when it takes exactly that many positional arguments and no
        more (no defaults, no ``*args``, no keyword-only); ``None`` otherwise. Lets common calls skip ``bind``."""
        if self._signature is None:
            return None
        params = self._signature.parameters.values()
        if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params):
            return len(self._signature.parameters)
        return None

    def _accepts(self, keyword: str) -> bool:
        if self._signature is None:
            return True
        return keyword in self._own_params or any(
            p.kind is p.VAR_KEYWORD for p in self._signature.parameters.values()
        )

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, partial: bool = False) -> None:
        """Raise :class:`InvalidOption` when the arguments do not fit the function's signature.

        With ``partial`` missing arguments are allowed (a pipeline step receives
        the previous step's value later).
        """
        if self._signature is None:
            return
        arity = self._arity
        if (
            arity is not None
            and not kwargs
            and not self.context
            and not self.as_argument
            and (len(args) == arity or (partial and len(args) < arity))
        ):
            return  # what bind() would accept, without binding
        call_kwargs = dict(kwargs)
        if self.context:
            call_kwargs["task"] = None
        if self.as_argument:
            args = (None, *args)
        try:
            if partial:
                self._signature.bind_partial(*args, **call_kwargs)
            else:
                self._signature.bind(*args, **call_kwargs)
        except TypeError as exc:
            raise InvalidOption(f"task {self.path!r}: arguments do not match its signature: {exc}") from None

    def split_call_options(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Separate reserved call keywords (``eta``, ``delay``, ...) from the task's own arguments.

        A keyword the function itself declares is always passed to the function.
        """
        options = {}
        arguments = {}
        for key, value in kwargs.items():
            if key in CALL_OPTIONS and key not in self._own_params:
                options[key] = value
            else:
                arguments[key] = value
        return arguments, options

    def s(self, *args: Any, **kwargs: Any) -> Task:
        """A call of this task that is not enqueued yet (for pipelines, groups and chords).

        Arguments may be incomplete: a pipeline step or chord callback receives
        the previous results as its last arguments.
        """
        arguments, options = self.split_call_options(kwargs)
        return self.queue.build_task(self, args, arguments, partial=True, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Result | ResultGroup | None:
        """Enqueue a call of this task; returns its :class:`Result` (``None`` when results are off)."""
        arguments, options = self.split_call_options(kwargs)
        return self.queue.enqueue(self.queue.build_task(self, args, arguments, **options))

    def enqueue_on_commit(self, *args: Any, **kwargs: Any) -> Result | ResultGroup | None:
        """Enqueue a call when the current database transaction commits (never if it rolls back)."""
        arguments, options = self.split_call_options(kwargs)
        task = self.queue.build_task(self, args, arguments, **options)
        return self.queue.enqueue(task, on_commit=True)

    def schedule(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        eta: dt.datetime | None = None,
        delay: float | dt.timedelta | None = None,
        priority: int | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        timeout: float | None = None,
        id: str | None = None,
    ) -> Result | ResultGroup | None:
        """Enqueue a call to run at ``eta`` or after ``delay`` seconds, with per-call options.

        As in huey, a single argument that is not a list or tuple is the one positional argument, and a
        number given as ``args`` with no ``eta`` or ``delay`` is the delay.
        """
        if eta is None and delay is None and isinstance(args, (int, float)) and not isinstance(args, bool):
            args, delay = None, args
        if args is not None and not isinstance(args, (list, tuple)):
            args = (args,)
        options: dict[str, Any] = {
            "eta": eta,
            "delay": delay,
            "priority": priority,
            "retries": retries,
            "retry_delay": retry_delay,
            "retry_backoff": retry_backoff,
            "expires": expires,
            "timeout": timeout,
        }
        task = self.queue.build_task(
            self,
            tuple(args or ()),
            dict(kwargs or {}),
            id=id,
            **{k: v for k, v in options.items() if v is not None},
        )
        return self.queue.enqueue(task)

    def map(self, iterable: Iterable[Any]) -> ResultGroup:
        """Enqueue one call per item (a tuple item is the positional arguments); returns a ResultGroup."""
        tasks = [
            self.queue.build_task(self, item if isinstance(item, tuple) else (item,), {}) for item in iterable
        ]
        return self.queue.enqueue_many(tasks)

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function in this process, bypassing the queue (context managers still apply)."""
        return self.queue.run_function(self, args, kwargs, task=None)

    def revoke(self, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
        """Revoke every call of this task (until ``revoke_until``, or just the next one with ``revoke_once``)."""
        self.queue.revoke_all(self, revoke_until=revoke_until, revoke_once=revoke_once)

    def restore(self) -> bool:
        """Undo :meth:`revoke`; True when a revocation was removed."""
        return self.queue.restore_all(self)

    def is_revoked(self, timestamp: dt.datetime | None = None, peek: bool = True) -> bool:
        """Whether calls of this task are revoked now (or at ``timestamp``); ``peek=False`` uses up a
        ``revoke_once`` revocation."""
        return self.queue.is_revoked(self, timestamp=timestamp, peek=peek)

    def unregister(self) -> bool:
        """Remove this task from its queue's registry; True when it was registered."""
        return self.queue.registry.unregister(self.path)

    def __repr__(self) -> str:
        kind = "periodic task" if self.validate_datetime is not None else "task"
        return f"<{kind} {self.path!r} on queue {self.queue.name!r}>"


def _signature_or_none(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None
