"""The hub: :class:`TaskQueue` (also importable as ``Huey``) and the huey-style storage classes.

The hub is the only code that talks to a storage. It owns the registry of
tasks, encoding and signing of messages, execution semantics (retries,
revocation, expiry, hooks, locks, rate limits, time limits, pipelines,
chords) and results. The consumer, the admin and the ``django.tasks``
backend all go through it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .backends.base import BaseStorage, DeadLetter, EmptyData, Reclaimed, Reservation
from .backends.blackhole import BlackHoleStorage
from .backends.memory import MemoryStorage
from .backends.registry import load_storage_class
from .exceptions import (
    AcknowledgementFailed,
    CancelExecution,
    ConfigurationError,
    EnqueueError,
    InvalidEta,
    InvalidMessage,
    InvalidOption,
    MessageTooLarge,
    RateLimitExceeded,
    RetryTask,
    SerializationError,
    StorageError,
    TaskException,
    TaskLockedException,
    TaskNotRegistered,
    TaskTimeout,
    UnknownTaskInMessage,
)
from .locks import LOCK_PREFIX, RATE_LIMIT_PREFIX, RateLimit, TaskLock
from .manual import ManualDrive
from .messages.codec import MessageCodec, peek_raw
from .messages.envelope import Message
from .messages.signing import signing_keys_from_settings
from .registry import TaskRegistry
from .result import NO_RESULT, ChordResult, Result, ResultGroup, StoredError
from .serializers import decode_exception, encode_exception
from .signals import (
    SIGNAL_CANCELED,
    SIGNAL_COMPLETE,
    SIGNAL_DEAD_LETTERED,
    SIGNAL_ENQUEUED,
    SIGNAL_ERROR,
    SIGNAL_EXECUTING,
    SIGNAL_EXPIRED,
    SIGNAL_INTERRUPTED,
    SIGNAL_LOCKED,
    SIGNAL_LOST_LEASE,
    SIGNAL_RATE_LIMITED,
    SIGNAL_RECLAIMED,
    SIGNAL_RETRYING,
    SIGNAL_REVOKED,
    SIGNAL_SCHEDULED,
    SIGNAL_TIMEOUT,
    SignalRegistry,
)
from .task import (
    CALL_OPTIONS,
    PeriodicTask,
    Task,
    TaskWrapper,
    chord,
    group,
    validate_options,
    validate_priority,
)
from .timeouts import TimeLimit
from .timeutils import (
    TimeConversion,
    convert,
    epoch,
    from_epoch,
    now_utc,
    resolve_eta,
    resolve_expires,
    to_utc,
)
from .timeutils import present as present_datetime

logger = logging.getLogger("django_tasks_q")

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_LEASE = 60.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RECLAIMS = 20
PROGRESS_AFTER = 0.25
"""A reservation renewed at least this fraction of the lease after its claim made progress: its task was
running well when its worker vanished, so ``max_reclaims`` caps it rather than ``max_attempts``."""
CHORD_TTL = 7 * 86400

REVOKE_ID_PREFIX = "revoke."
REVOKE_TASK_PREFIX = "revoke-task."
REVOCATIONS_MADE = "revocations-made"
"""Written before the first revocation of a queue (and kept): while it is missing, no call can be revoked, which
a storage that ``peeks_on_reserve`` tells the worker with each claim, saving a read per task."""
CHORD_PREFIX = "chord."
PERIODIC_PREFIX = "periodic."
PROGRESS_PREFIX = "progress."
UNIQUE_PREFIX = "unique."
UNIQUE_KEY = "unique_key"
UNIQUE_TTL = "unique_ttl"
UNIQUE_CLAIM_ROUNDS = 100
_REVOCATION_PEEK = (REVOCATIONS_MADE,)
DEFAULTED_OPTIONS = frozenset({"priority", "retries", "retry_delay", "retry_backoff", "expires", "timeout"})
"""Call options for which None means the task's default."""

_OK = "ok"
_ERROR = "error"
_SKIPPED = "skipped"
ERROR_ARGUMENT = "error_argument"
"""A call's ``extra`` key: the position of the argument that holds an error's metadata, passed to the
function as the exception the failed task raised (an ``.error()`` handler's last argument)."""
CHORD_ERRORS = "chord_errors"
"""A chord callback's ``extra`` key: the positions, in its list of member results, of members that failed;
each is passed to the function as the exception the member raised."""

Hook = Callable[..., Any]


class TaskQueue(ManualDrive):
    """A named task queue bound to one storage: decorate functions with :meth:`task`, call them to enqueue.

    Parameters follow huey's ``Huey``: ``name``, ``results`` (store return
    values), ``store_none`` (store ``None`` too), ``utc`` (naive datetimes are
    UTC; otherwise local time), ``immediate`` (run tasks synchronously, on an
    in-memory storage when ``immediate_use_memory``), ``serializer``
    (``"json"`` — the default — or ``"pickle"``, or an object with
    ``dumps``/``loads``), ``compression``, ``storage_class`` and any storage
    keyword arguments. Beyond huey: ``signing`` (``None``: sign with a key
    derived from Django's ``SECRET_KEY`` when settings are configured; ``True``:
    require that; ``False``: unsigned; bytes or str: this key),
    ``max_message_size``, ``result_ttl`` (seconds results are kept),
    ``lease``, ``max_attempts`` and ``max_reclaims`` (reliable delivery), and ``registry`` (a
    :class:`~django_tasks_q.registry.TaskRegistry` shared with queues built
    from settings, so tasks survive a rebuild of the queue), and
    ``enqueue_on_commit`` (write messages only when the transaction of
    ``on_commit_using`` commits; nothing on rollback). As in huey,
    ``store_intermediate_errors`` (default ``True``) stores the error of an
    attempt that will be retried (a reader sees it until the retry's outcome
    replaces it) and runs the ``.error()`` handler for each failed attempt;
    ``False`` keeps both for the final attempt.

    Datetimes: the hub compares and stores aware UTC datetimes, and shows the datetimes of calls
    (``task.eta``, ``task.expires_resolved``, ``task.enqueued_at`` of the calls given to hooks, signal receivers
    and ``context=True`` tasks, and of those from :meth:`dequeue`, :meth:`scheduled`, :meth:`pending` and
    :meth:`read_schedule`) in its convention: naive by default, as huey does (UTC with ``utc=True``, the
    machine's local time with ``utc=False``), or aware UTC with ``aware_datetimes=True``, Django's convention,
    which queues built from ``TASKS_Q`` take when ``USE_TZ`` is on. Datetimes given to the hub may be naive (read
    as ``utc`` says) or aware, whatever the convention; messages hold aware UTC times either way, so hubs of
    both conventions read each other's messages.
    """

    storage_class: type[BaseStorage] | None = None
    storage_path: str | None = None
    """Dotted path of the storage class, imported on first use (for storages with optional dependencies)."""
    build_storage_at_init: bool = False
    """Build the storage when the queue is built, so that bad storage arguments raise there (as in huey), not at
    the first call. Only for storages whose construction touches nothing (the Redis ones open no connection);
    queues built from settings stay lazy."""

    def __init__(
        self,
        name: str = "huey",
        results: bool = True,
        store_none: bool = False,
        utc: bool = True,
        immediate: bool = False,
        serializer: Any = None,
        compression: bool | int = False,
        use_zlib: bool = False,
        immediate_use_memory: bool = True,
        always_eager: bool | None = None,
        storage_class: type[BaseStorage] | None = None,
        *,
        signing: bool | bytes | str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        result_ttl: float | None = None,
        lease: float = DEFAULT_LEASE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_reclaims: int = DEFAULT_MAX_RECLAIMS,
        registry: TaskRegistry | None = None,
        enqueue_on_commit: bool = False,
        on_commit_using: str = "default",
        store_intermediate_errors: bool = True,
        aware_datetimes: bool = False,
        **storage_kwargs: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"queue name must be a non-empty string, got {name!r}")
        if always_eager is not None:
            immediate = always_eager
        if lease <= 0:
            raise ConfigurationError(f"queue {name!r}: lease must be > 0 seconds, got {lease!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"queue {name!r}: max_attempts must be an int >= 1, got {max_attempts!r}")
        if isinstance(max_reclaims, bool) or not isinstance(max_reclaims, int) or max_reclaims < 1:
            raise ConfigurationError(f"queue {name!r}: max_reclaims must be an int >= 1, got {max_reclaims!r}")
        if signing is not None and not isinstance(signing, (bool, bytes, str)):
            raise ConfigurationError(
                f"queue {name!r}: signing must be None, True, False or a key (bytes or str), got {signing!r}"
            )
        if result_ttl is not None and result_ttl <= 0:
            raise ConfigurationError(f"queue {name!r}: result_ttl must be > 0 seconds, got {result_ttl!r}")
        self.name = name
        self.results = results
        self.store_none = store_none
        self.utc = utc
        self.aware_datetimes = aware_datetimes
        self._serializer = serializer if serializer is not None else "json"
        self.compression = compression or use_zlib
        self.immediate_use_memory = immediate_use_memory
        if storage_class is not None:
            self.storage_class = storage_class
        self.storage_kwargs = storage_kwargs
        self.signing = signing
        self.max_message_size = max_message_size
        self.result_ttl = result_ttl
        self.lease = float(lease)
        self.max_attempts = max_attempts
        self.max_reclaims = max_reclaims
        self.registry = registry if registry is not None else TaskRegistry(name)
        self.enqueue_on_commit = enqueue_on_commit
        self.on_commit_using = on_commit_using
        self.store_intermediate_errors = store_intermediate_errors
        # Hooks, receivers, locks and rate limits live with the registry, so that a queue rebuilt from
        # settings (override_settings, a new SECRET_KEY) keeps them, like its tasks.
        state = self.registry.state
        self.signals: SignalRegistry = state.signals
        self.known_locks: set[str] = state.known_locks
        self.known_rate_limits: set[str] = state.known_rate_limits
        self.rate_limit_specs: dict[str, tuple[int, float]] = state.rate_limit_specs
        self._pre_execute: dict[str, Hook] = state.pre_execute
        self._post_execute: dict[str, Hook] = state.post_execute
        self._startup: dict[str, Hook] = state.startup
        self._shutdown: dict[str, Hook] = state.shutdown
        self._lock = threading.RLock()
        self._storage: BaseStorage | None = None
        self._peek_support: tuple[BaseStorage, bool] | None = None
        self._regular_storage: BaseStorage | None = None
        self._codec: MessageCodec | None = None
        self._running: dict[str, Task] = {}
        self._immediate = False
        if self.build_storage_at_init:
            self._storage = self.create_storage()
        self.immediate = immediate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ------------------------------------------------------------------ datetimes

    def as_utc(self, value: dt.datetime) -> dt.datetime:
        """``value`` as an aware UTC datetime, for comparing and storing; a naive one is read as ``utc`` says."""
        return to_utc(value, naive_is_utc=self.utc)

    def present(self, value: dt.datetime) -> dt.datetime:
        """The moment ``value`` in this hub's datetime convention (see the class docstring)."""
        return present_datetime(value, aware=self.aware_datetimes, naive_is_utc=self.utc)

    def _decode_task(self, data: bytes) -> Task:
        """The call an encoded message holds, bound to its task, with its datetimes in this hub's convention."""
        return Task.from_message(self.codec.decode(data), self.registry.get, present=self.present)

    def _bound_if_registered(self, message: Message, present: TimeConversion | None) -> Task:
        """The call of ``message``, bound to its task when it is registered here (so that its ``name`` is the
        task's own), unbound otherwise: for listing stored messages, which may name any task."""
        wrapper = self.registry.find(message.name)
        return Task.from_message(message, None if wrapper is None else lambda _path: wrapper, present=present)

    # ------------------------------------------------------------------ storage and codec

    def get_storage(self, **kwargs: Any) -> BaseStorage:
        """Build the storage from keyword arguments; override to supply a custom storage."""
        if self.storage_class is None and self.storage_path is not None:
            self.storage_class = load_storage_class(self.storage_path, where=f"queue {self.name!r}")
        if self.storage_class is None:
            raise ConfigurationError(
                f"queue {self.name!r} has no storage: pass storage_class=..., use one of the *Huey "
                "classes, or override get_storage()"
            )
        return self.storage_class(self.name, **kwargs)

    def create_storage(self) -> BaseStorage:
        """Build this queue's storage from its storage keyword arguments."""
        return self.get_storage(**self.storage_kwargs)

    @property
    def storage(self) -> BaseStorage:
        """The storage in use (built on first use, so nothing connects at import time)."""
        storage = self._storage
        if storage is None:
            with self._lock:
                if self._storage is None:
                    self._storage = self.create_storage()
                storage = self._storage
        return storage

    @storage.setter
    def storage(self, storage: BaseStorage) -> None:
        self._storage = storage

    @property
    def immediate(self) -> bool:
        """Whether tasks run synchronously when called (on an in-memory storage by default)."""
        return self._immediate

    @immediate.setter
    def immediate(self, value: bool) -> None:
        with self._lock:
            value = bool(value)
            if value == self._immediate:
                return
            if self.immediate_use_memory:
                if value:
                    self._regular_storage = self._storage
                    self._storage = MemoryStorage(self.name, block_timeout=0)
                else:
                    self._storage = self._regular_storage
                    self._regular_storage = None
            self._immediate = value

    @property
    def serializer(self) -> Any:
        """The serializer setting (``"json"``, ``"pickle"`` or an object); setting it rebuilds the codec."""
        return self._serializer

    @serializer.setter
    def serializer(self, value: Any) -> None:
        with self._lock:
            self._serializer = value
            self._codec = None

    @property
    def codec(self) -> MessageCodec:
        """The message codec (serializer, compression, signing, size limit), built on first use."""
        codec = self._codec
        if codec is None:
            with self._lock:
                if self._codec is None:
                    key, fallbacks = self._signing_keys()
                    self._codec = MessageCodec(
                        serializer=self.serializer,
                        compression=self.compression,
                        signing_key=key,
                        fallback_keys=fallbacks,
                        max_size=self.max_message_size,
                    )
                codec = self._codec
        return codec

    def reset_codec(self) -> None:
        """Forget the codec so the next use rebuilds it (after ``SECRET_KEY`` changes)."""
        with self._lock:
            self._codec = None

    def _signing_keys(self) -> tuple[bytes | None, list[bytes]]:
        if self.signing is False:
            return None, []
        if isinstance(self.signing, (bytes, str)):
            key = self.signing.encode() if isinstance(self.signing, str) else self.signing
            return key, []
        from django.conf import settings

        if settings.configured and getattr(settings, "SECRET_KEY", None):
            key, fallbacks = signing_keys_from_settings()
            return key, list(fallbacks)
        if self.signing is True:
            raise ConfigurationError(
                f"queue {self.name!r}: signing=True needs Django settings with a SECRET_KEY"
            )
        return None, []

    # ------------------------------------------------------------------ decorators and hooks

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

        def decorator(func: Callable[..., Any]) -> TaskWrapper:
            if isinstance(func, TaskWrapper):
                func = func.func  # a task of another queue: this queue gets its own task of the same function
            wrapper = TaskWrapper(
                self,
                func,
                name=name,
                retries=retries,
                retry_delay=retry_delay,
                retry_backoff=retry_backoff,
                priority=priority,
                context=context,
                expires=expires,
                timeout=timeout,
                **kwargs,
            )
            self.registry.register(wrapper)
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
        if not callable(validate_datetime):
            raise ConfigurationError("periodic_task() needs a callable such as crontab(...) as its first argument")
        return self.task(
            retries=retries,
            retry_delay=retry_delay,
            priority=priority,
            context=context,
            name=name,
            expires=expires,
            timeout=timeout,
            validate_datetime=validate_datetime,
            **kwargs,
        )

    def context_task(self, obj: Any, as_argument: bool = False, **kwargs: Any) -> Callable[..., TaskWrapper]:
        """Decorator: a task that runs inside ``with obj:`` (``as_argument`` passes what it yields first)."""
        return self.task(context_manager=obj, as_argument=as_argument, **kwargs)

    def lock_task(self, lock_name: str, ttl: float | None = None) -> TaskLock:
        """A named lock, usable as decorator or context manager; a held lock raises TaskLockedException."""
        return TaskLock(self, lock_name, ttl=ttl)

    def rate_limit(self, name: str, limit: int, per: float, retry: bool = True) -> RateLimit:
        """A rate limit of ``limit`` entries per ``per`` seconds, as decorator or context manager.

        A task that hits it is retried when the window reopens; with ``retry=False`` only if the call has
        retries left (using one up).
        """
        limiter = RateLimit(self, name, limit, per, retry=retry)
        self.rate_limit_specs[name] = (limiter.limit, limiter.per)  # for the admin's "rate limits" page
        return limiter

    def lock_key(self, lock_name: str) -> str:
        """The storage key of a named lock: ``<queue name>.lock.<lock name>``, huey's layout, so a lock written by
        huey-style code (``put_if_empty``) is the same lock."""
        return f"{self.name}.{LOCK_PREFIX}{lock_name}"

    def is_locked(self, lock_name: str) -> bool:
        """Whether the named lock is held."""
        return self.storage.has_data_for_key(self.lock_key(lock_name))

    def flush_locks(self, *names: str) -> set[str]:
        """Release every lock this queue knows of (and ``names``); returns the names that were held."""
        flushed = set()
        for lock_name in self.known_locks | set(names):
            if self.storage.delete_data(self.lock_key(lock_name)):
                flushed.add(lock_name)
        return flushed

    def _hook_decorator(self, hooks: dict[str, Hook], name: str | None) -> Callable[[Hook], Hook]:
        def decorator(func: Hook) -> Hook:
            hooks[name or func.__name__] = func
            return func

        return decorator

    @staticmethod
    def _unregister_hook(hooks: dict[str, Hook], name_or_fn: str | Hook) -> bool:
        key = name_or_fn if isinstance(name_or_fn, str) else name_or_fn.__name__
        return hooks.pop(key, None) is not None

    def pre_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook(task)`` runs before each task; raising CancelExecution cancels the task."""
        return self._hook_decorator(self._pre_execute, name)

    def post_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook(task, task_value, exc)`` runs after each task."""
        return self._hook_decorator(self._post_execute, name)

    def on_startup(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook()`` runs when each consumer worker starts."""
        return self._hook_decorator(self._startup, name)

    def on_shutdown(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """Decorator: ``hook()`` runs when each consumer worker stops."""
        return self._hook_decorator(self._shutdown, name)

    def unregister_pre_execute(self, name_or_fn: str | Hook) -> bool:
        """Remove a pre-execute hook by name or function."""
        return self._unregister_hook(self._pre_execute, name_or_fn)

    def unregister_post_execute(self, name_or_fn: str | Hook) -> bool:
        """Remove a post-execute hook by name or function."""
        return self._unregister_hook(self._post_execute, name_or_fn)

    def unregister_on_startup(self, name_or_fn: str | Hook) -> bool:
        """Remove a startup hook by name or function."""
        return self._unregister_hook(self._startup, name_or_fn)

    def unregister_on_shutdown(self, name_or_fn: str | Hook) -> bool:
        """Remove a shutdown hook by name or function."""
        return self._unregister_hook(self._shutdown, name_or_fn)

    def run_startup_hooks(self) -> None:
        """Run every startup hook; one that raises is logged and the others still run."""
        self._run_lifecycle_hooks(self._startup, "startup")

    def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook; one that raises is logged and the others still run."""
        self._run_lifecycle_hooks(self._shutdown, "shutdown")

    def _run_lifecycle_hooks(self, hooks: dict[str, Hook], kind: str) -> None:
        for hook_name, hook in list(hooks.items()):
            try:
                hook()
            except Exception:
                logger.exception("%s hook %r of queue %r failed", kind, hook_name, self.name)

    def signal(self, *signals: str) -> Callable[[Hook], Hook]:
        """Decorator: call ``receiver(signal, task, *extra)`` for the named signals (all when none)."""

        def decorator(receiver: Hook) -> Hook:
            self.signals.connect(receiver, *signals)
            return receiver

        return decorator

    def disconnect_signal(self, receiver: Hook, *signals: str) -> bool:
        """Stop sending the named signals (all when none) to ``receiver``."""
        return self.signals.disconnect(receiver, *signals)

    def _emit(self, signal: str, task: Task | None, *args: Any) -> None:
        self.signals.send(self, signal, task, *args)

    # ------------------------------------------------------------------ building and enqueueing

    def build_task(
        self,
        wrapper: TaskWrapper,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        id: str | None = None,
        partial: bool = False,
        **options: Any,
    ) -> Task:
        """Validate a call of ``wrapper`` and return it as a :class:`Task` (nothing is written).

        ``partial`` accepts incomplete arguments (pipeline steps, chord callbacks).
        """
        if self.registry._tasks.get(wrapper.path) is not wrapper:
            raise TaskNotRegistered(f"task {wrapper.path!r} is not registered on queue {self.name!r}")
        where = f"task {wrapper.path!r}"
        # As in huey, an option given as None means the task's default (not "none").
        options = {k: v for k, v in options.items() if not (v is None and k in DEFAULTED_OPTIONS)}
        if options:
            unknown = set(options) - set(CALL_OPTIONS)
            if unknown:
                raise InvalidOption(f"{where}: unknown call option(s) {sorted(unknown)}")
            validate_options(
                where,
                **{k: v for k, v in options.items() if k in ("retries", "retry_delay", "retry_backoff", "timeout")},
            )
            if "priority" in options:
                validate_priority(options["priority"], where)
        if id is not None and (not isinstance(id, str) or not id):
            raise InvalidOption(f"{where}: id must be a non-empty string, got {id!r}", field="id")
        wrapper.check_arguments(args, kwargs, partial=partial)
        eta = resolve_eta(options.get("eta"), options.get("delay"), naive_is_utc=self.utc)
        expires = options.get("expires", wrapper.expires)
        expires_resolved = self._absolute_expiry(expires)
        extra = {}
        unique_key = options.get("unique_key")
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise InvalidOption(f"{where}: unique_key must be a non-empty string, got {unique_key!r}", field="unique_key")
        if wrapper.unique or unique_key is not None:
            extra[UNIQUE_KEY] = f"{UNIQUE_PREFIX}{wrapper.path}.{unique_key or self._arguments_digest(args, kwargs)}"
            extra[UNIQUE_TTL] = wrapper.unique_ttl
        task_class = Task if wrapper.validate_datetime is None else PeriodicTask
        return task_class(
            wrapper.path,
            args,
            kwargs,
            id=id,
            eta=convert(self.present, eta),
            priority=options.get("priority", wrapper.priority),
            retries=options.get("retries", wrapper.retries),
            retry_delay=options.get("retry_delay", wrapper.retry_delay),
            retry_backoff=options.get("retry_backoff", wrapper.retry_backoff),
            expires=expires,
            expires_resolved=expires_resolved,
            timeout=options.get("timeout", wrapper.timeout),
            extra=extra,
            wrapper=wrapper,
        )

    def _absolute_expiry(self, expires: dt.datetime | dt.timedelta | float | None) -> dt.datetime | None:
        """Check ``expires`` (InvalidEta); the moment it stands for when it is a datetime, else None: a relative
        expiry counts from when the call is enqueued (a pipeline step's from when that step is)."""
        resolved = resolve_expires(expires, naive_is_utc=self.utc)
        return self.present(resolved) if isinstance(expires, dt.datetime) else None

    def _arguments_digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """A stable digest of a call's arguments (keyword order does not matter)."""
        plain = self.codec.serializer.dumps([list(args), sorted(kwargs.items())])
        return hashlib.sha256(plain).hexdigest()[:32]

    def _claim_unique(self, task: Task) -> str | None:
        """Take the unique key of ``task``; returns the id of the call holding it when it is taken."""
        key = task.extra.get(UNIQUE_KEY)
        if key is None:
            return None
        # Each failed round means the key was released between our two reads; giving up silently would enqueue
        # a duplicate, so after many rounds (a key taken and released in a tight loop) the call is refused.
        for _attempt in range(UNIQUE_CLAIM_ROUNDS):
            if self.storage.put_if_empty(key, task.id.encode(), ttl=task.extra.get(UNIQUE_TTL)):
                return None
            holder = self.storage.peek_data(key)
            if holder is not EmptyData:
                return holder.decode()
        raise EnqueueError(
            f"task {task.path!r}: unique key {key!r} was taken and released {UNIQUE_CLAIM_ROUNDS} times while "
            "this call tried to claim it; not enqueued, to avoid a duplicate"
        )

    def release_unique(self, key: str) -> bool:
        """Release a unique-task key (when its task finished, or from the admin); True when it was held.

        Only keys of unique tasks (``unique.<task>.<key>``) can be released, so this never deletes a result
        or a lock.
        """
        if not key.startswith(UNIQUE_PREFIX):
            raise ValueError(f"{key!r} is not a unique-task key (those start with {UNIQUE_PREFIX!r})")
        return self.storage.delete_data(key)

    def _encode(self, task: Task) -> bytes:
        now = now_utc()
        if task.expires_resolved is None and task.expires is not None:
            # Fixed at the first enqueue: a retry or a call moved to the schedule keeps its expiry.
            task.expires_resolved = self.present(resolve_expires(task.expires, naive_is_utc=self.utc))
        message = task.to_message(self.as_utc)
        message.enqueued_at = now
        return self.codec.encode(message)

    def _store(self, task: Task, data: bytes) -> bool:
        """Write an encoded call to the queue, or to the schedule when its eta is ahead; True if scheduled.

        Only calls put back by a worker (a retry, a rate-limited call) come here: a new call goes to the queue
        whatever its eta, and the worker that takes it early moves it to the schedule.
        """
        eta = convert(self.as_utc, task.eta)
        if eta is not None and eta > now_utc():
            if task.priority is None:
                self.storage.add_to_schedule(data, epoch(eta))
            else:
                self.storage.add_to_schedule(data, epoch(eta), task.priority)
            return True
        self.storage.enqueue(data, task.priority)
        return False

    def enqueue(
        self, task: Task | group | chord, *, on_commit: bool | None = None
    ) -> Result | ResultGroup | ChordResult | None:
        """Enqueue a call (and its pipeline), a :class:`group` or a :class:`chord`.

        Returns a Result, a ResultGroup for pipelines and groups, a ChordResult
        for chords, or None when results are off. The call is validated and
        encoded before anything is written: a bad call raises a specific
        :class:`~django_tasks_q.exceptions.EnqueueError`. With ``on_commit``
        (default: the queue's ``enqueue_on_commit``) the message is written when
        the surrounding transaction commits, and never if it rolls back; outside
        a transaction it is written at once.
        """
        if not isinstance(task, Task):
            return self._enqueue_composite(task)
        self._bind(task)
        data = self._encode(task)
        holder = self._claim_unique(task)
        if holder is not None:
            logger.debug("queue %r: %s is a duplicate of pending call %s; not enqueued", self.name, task, holder)
            return Result(self, task.copy(id=holder)) if self.results else None
        if on_commit if on_commit is not None else self.enqueue_on_commit:
            from django.db import transaction

            transaction.on_commit(lambda: self._send(task, data), using=self.on_commit_using)
        else:
            self._send(task, data)
        return self._result_for(task)

    def enqueue_many(self, tasks: Iterable[Task]) -> ResultGroup:
        """Enqueue several calls; all are validated and encoded before the first is written.

        Outside immediate mode the calls reach the storage in one ``enqueue_many`` (one round trip on Redis,
        one transaction on SQL), in order, whatever their eta (a worker moves a call taken before its eta to the
        schedule).
        """
        tasks = list(tasks)
        encoded = []
        for task in tasks:
            self._bind(task)
            encoded.append(self._encode(task))
        results = []
        ready: list[tuple[Task, bytes]] = []
        for task, data in zip(tasks, encoded, strict=True):
            holder = self._claim_unique(task)
            if holder is None:
                if self._immediate:
                    self._send(task, data)  # run now, or into the schedule when not yet due
                else:
                    ready.append((task, data))
            results.append(Result(self, task if holder is None else task.copy(id=holder)))
        if ready:
            # One round trip (Redis) or one transaction (SQL) for all of them, in order.
            self.storage.enqueue_many([(data, task.priority) for task, data in ready])
            for task, _data in ready:
                self._emit(SIGNAL_ENQUEUED, task)
        return ResultGroup(results)

    def _bind(self, task: Task) -> None:
        """Bind a call, its pipeline steps and its error handlers to the tasks registered on this queue.

        Raises TaskNotRegistered (nothing written) for a step that is not registered here, such as a
        call of another queue's task, instead of leaving it to be dead-lettered by a worker (R13).
        """
        pending = [task]
        while pending:
            node = pending.pop()
            node.wrapper = self.registry.get(node.path)
            pending.extend(step for step in (node.on_complete, node.on_error) if step is not None)

    def _send(self, task: Task, data: bytes) -> None:
        if self._immediate and self.ready_to_run(task):
            self._emit(SIGNAL_ENQUEUED, task)
            self.execute(self._decode_task(data))
            return
        if self._immediate:
            # Not yet due, and no worker to take it: it waits in the schedule, as if taken early.
            self._emit(SIGNAL_ENQUEUED, task)
            self._schedule_early_call(task)
            return
        # As in huey, a call with a future eta is enqueued too: the worker that dequeues it early moves it to
        # the schedule (signal "scheduled") in the step that acknowledges it.
        self.storage.enqueue(data, task.priority)
        self._emit(SIGNAL_ENQUEUED, task)

    def _result_for(self, task: Task) -> Result | ResultGroup | None:
        if not self.results:
            return None
        if task.on_complete is not None:
            return ResultGroup([Result(self, step) for step in task.chain()])
        return Result(self, task)

    def enqueue_call(
        self,
        path: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Result | ResultGroup | None:
        """Enqueue a registered task by its :attr:`~django_tasks_q.task.TaskWrapper.path` (for the admin and
        the database schedules)."""
        wrapper = self.registry.get(path)
        return self.enqueue(self.build_task(wrapper, tuple(args), dict(kwargs or {}), **options))

    def _enqueue_composite(self, item: group | chord) -> ResultGroup | ChordResult:
        if isinstance(item, chord):
            return self._enqueue_chord(item)
        if not isinstance(item, group):
            raise InvalidOption(f"enqueue() takes a task call, a group or a chord, got {type(item).__name__}")
        if all(isinstance(member, Task) for member in item.tasks):
            return self.enqueue_many(item.tasks)
        return ResultGroup([self.enqueue(member) for member in item.tasks])

    def enqueue_chord(self, header: list[Task | chord], callback: Task | TaskWrapper) -> ChordResult:
        """Enqueue ``header`` calls bound to ``callback`` (see :class:`~django_tasks_q.task.chord`)."""
        return self._enqueue_chord(chord(header, callback))

    def _enqueue_chord(self, item: chord) -> ChordResult:
        callback = item.callback
        self._bind(callback)
        chord_id = uuid.uuid4().hex
        size = len(item.tasks)
        tails = []
        for index, member in enumerate(item.tasks):
            head = member.callback if isinstance(member, chord) else member
            tail = head.chain()[-1]
            # The last step of a member reports to the chord: a pipeline member counts when it has finished.
            tail.chord = {"id": chord_id, "size": size, "index": index, "callback": None}
            tails.append(tail)
        callback_data = callback.to_message(self.as_utc).to_dict()
        for tail in tails:
            tail.chord["callback"] = callback_data
        plain = [member for member in item.tasks if isinstance(member, Task)]
        if len(plain) == size:
            self.enqueue_many(plain)
        else:
            for member in item.tasks:
                self.enqueue(member)
        results = ResultGroup([Result(self, tail) for tail in tails])
        return ChordResult(self, callback, results, [Result(self, step) for step in callback.chain()[1:]])

    def reschedule(
        self,
        task: Task,
        *,
        eta: dt.datetime | None = None,
        delay: float | dt.timedelta | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        priority: int | None = None,
        preserve_pipeline: bool = True,
    ) -> Result:
        """Revoke ``task`` and enqueue a copy with a new id at the new time; returns the copy's Result."""
        self.revoke_by_id(task.id, revoke_once=True)
        new_eta = resolve_eta(eta, delay, naive_is_utc=self.utc)
        # The copy is a new call: a relative expiry counts again from its enqueue, as in huey.
        expires = task.expires if expires is None else expires
        changes: dict[str, Any] = {
            "eta": convert(self.present, new_eta),
            "expires": expires,
            "expires_resolved": self._absolute_expiry(expires),
        }
        if priority is not None:
            changes["priority"] = validate_priority(priority, f"task {task.path!r}")
        if not preserve_pipeline:
            changes["on_complete"] = None
            changes["on_error"] = None
        clone = task.copy(**changes)
        self.enqueue(clone)
        return Result(self, clone)

    # ------------------------------------------------------------------ consuming

    def _claims_peek(self) -> bool:
        """Whether this storage reads the ``peek`` keys with each claim: it says so (``peeks_on_reserve``) and
        its ``reserve`` and ``ack_and_reserve`` take ``peek`` (a subclass that overrides them without it does
        not). Asked once per storage object."""
        storage = self.storage
        known = self._peek_support
        if known is not None and known[0] is storage:
            return known[1]
        claims = storage.peeks_on_reserve and all(
            "peek" in inspect.signature(method).parameters for method in (storage.reserve, storage.ack_and_reserve)
        )
        self._peek_support = (storage, claims)
        return claims

    def mark_existing_revocations(self) -> bool:
        """Write the ``revocations-made`` marker if revocations are stored without it (written by a version
        that did not write the marker); the consumer calls it at start. True when it wrote the marker."""
        storage = self.storage
        if not storage.implements("data_keys") or storage.peek_data(REVOCATIONS_MADE) is not EmptyData:
            return False
        if not storage.data_keys(REVOKE_ID_PREFIX, 1) and not storage.data_keys(REVOKE_TASK_PREFIX, 1):
            return False
        storage.put_data(REVOCATIONS_MADE, b"1")
        return True

    def reserve(self, lease: float | None = None) -> Reservation | None:
        """Claim the next ready message under a lease (the consumer's entry point)."""
        if self._claims_peek():
            return self.storage.reserve(lease or self.lease, peek=_REVOCATION_PEEK)
        return self.storage.reserve(lease or self.lease)

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Hand a reserved message back to the queue now (shutdown); ``count_attempt`` if it had started."""
        released = self.storage.release(reservation, count_attempt=count_attempt)
        if not released:
            self._lost_lease(reservation, None)
        return released

    def process(
        self,
        reservation: Reservation,
        timestamp: dt.datetime | None = None,
        *,
        reserve_next: bool | Callable[[], bool] = False,
    ) -> Reservation | None:
        """Run one reserved message through size → signature → decode → registry → execute (R15).

        A message that fails a check before execution is dead-lettered with the
        reason and never executed. With ``reserve_next`` (a worker that goes on)
        the acknowledgement also claims the next ready message, in one storage
        step (``ack_and_reserve``), and returns its reservation; ``None`` when
        nothing was claimed (then call :meth:`reserve`). ``reserve_next`` may be
        a callable, asked at acknowledgement time: a worker told to stop while
        the task ran then claims nothing (R7).
        """
        task = self._claimed_task(reservation)
        if task is None:
            return None
        wants_next = reserve_next if callable(reserve_next) else (lambda: True) if reserve_next else None
        return self._run_and_finish(task, timestamp, reservation, wants_next)[1]

    def _claimed_task(self, reservation: Reservation) -> Task | None:
        """The call a reservation carries, bound to its task; None when the message was dead-lettered instead."""
        try:
            message = self.codec.decode(reservation.data)
            if message.name not in self.registry:
                raise UnknownTaskInMessage(
                    f"message names task {message.name!r}, which is not registered on queue {self.name!r}"
                )
            wrapper = self.registry.get(message.name)
        except InvalidMessage as exc:
            self.dead_letter(reservation, exc.reason, str(exc))
            return None
        task = Task.from_message(message, lambda _name: wrapper, present=self.present)
        task.attempt = reservation.attempt
        task.redelivered = reservation.attempt > 1
        return task

    @staticmethod
    def _may_be_revoked(reservation: Reservation | None) -> bool:
        """False only when the claim itself showed that no revocation was ever made on this queue."""
        return reservation is None or reservation.peeked is None or reservation.peeked[0] is not EmptyData

    def dead_letter(self, reservation: Reservation, reason: str, detail: str) -> None:
        """Move a reserved message to the dead letters (logged and signalled, R27)."""
        if self.storage.supports_dead_letters():
            buried = self.storage.bury(reservation, reason, detail)
        else:
            buried = self.storage.ack(reservation)
        try:
            decoded = self.codec.decode(reservation.data)
            what = f"task {decoded.name} ({decoded.id})"
        except InvalidMessage:  # its bytes are not shown: they may be anything (the admin shows them escaped)
            what = "a message that does not decode"
        logger.error(
            "queue %r: %s dead-lettered (%s): %s; message %s",
            self.name,
            what,
            reason,
            detail,
            reservation.message_id,
        )
        if buried:
            self._emit(SIGNAL_DEAD_LETTERED, None, reason, detail, reservation.message_id, None)
        else:
            self._lost_lease(reservation, None)

    def _lost_lease(self, reservation: Reservation, task: Task | None) -> None:
        logger.warning(
            "queue %r: lease on message %s (task %s) was lost before it was acknowledged; "
            "another worker owns it now, so this worker's outcome is dropped",
            self.name,
            reservation.message_id,
            task.id if task else "?",
        )
        self._emit(SIGNAL_LOST_LEASE, task, reservation.message_id)

    def execute(
        self,
        task: Task,
        timestamp: dt.datetime | None = None,
        reservation: Reservation | None = None,
    ) -> Any:
        """Run one call with huey's semantics and return its value (None when it did not complete).

        Order: not yet due → schedule; revoked; expired; pre-execute hooks; run
        (within ``timeout``); store the value or the error; post-execute hooks;
        pipeline follow-up or error handler; chord bookkeeping; retry. With a
        ``reservation`` (given, or the one a call taken by :meth:`dequeue` carries)
        the result write and the acknowledgement are one fenced storage step.
        A naive ``timestamp`` is read as the queue's ``utc`` setting says.
        """
        if reservation is None and task.reservation is not None:
            reservation, task.reservation = task.reservation, None
        return self._run_and_finish(task, timestamp, reservation, None)[0]

    def _run_and_finish(
        self,
        task: Task,
        timestamp: dt.datetime | None,
        reservation: Reservation | None,
        wants_next: Callable[[], bool] | None,
    ) -> tuple[Any, Reservation | None]:
        """:meth:`execute`; when ``wants_next()`` says so at acknowledgement time, the acknowledgement also
        claims the next message (returned)."""
        now = now_utc() if timestamp is None else self.as_utc(timestamp)
        if task.wrapper is None:
            task.wrapper = self.registry.get(task.path)
        outcome = _Outcome()
        # Interrupted (shutdown): the exception leaves the reservation to the consumer (release or lease expiry).
        value = self._execute(task, now, outcome, self._may_be_revoked(reservation))
        return value, self._finish(task, reservation, outcome, wants_next)

    def _execute(self, task: Task, now: dt.datetime, outcome: _Outcome, may_be_revoked: bool = True) -> Any:
        if task.eta is not None and self.as_utc(task.eta) > now:
            outcome.follow_ups.append(lambda: self._schedule_early_call(task))
            outcome.requeued = True
            return None
        if may_be_revoked and self.is_revoked(task, timestamp=now, peek=False):
            self._emit(SIGNAL_REVOKED, task)
            self._plan_chord_skip(task, "revoked", outcome)
            return None
        if task.expires_resolved is not None and now > self.as_utc(task.expires_resolved):
            self._emit(SIGNAL_EXPIRED, task)
            self._plan_chord_skip(task, "expired", outcome)
            return None
        try:
            for hook_name, hook in list(self._pre_execute.items()):
                try:
                    hook(task)
                except CancelExecution:
                    raise
                except Exception:
                    logger.exception("pre-execute hook %r failed for task %s", hook_name, task)
        except CancelExecution as exc:
            self._emit(SIGNAL_CANCELED, task)
            self._plan_cancel_retry(task, exc, outcome)
            return None

        self._emit(SIGNAL_EXECUTING, task)
        # As in huey, periodic tasks store no result: nobody holds a handle to read (and remove) it.
        store = self.results and task.wrapper.validate_datetime is None
        exception: BaseException | None = None
        raised: BaseException | None = None  # what the task itself raised (logged once its fate is known)
        value: Any = None
        retry_eta: dt.datetime | None = None
        retry_wanted = task.retries > 0
        try:
            args = _with_errors(task) if task.extra else task.args
            if task.timeout:
                task._deadline = time.monotonic() + task.timeout
            running = self._running
            running[task.id] = task
            try:
                with TimeLimit(task.timeout):
                    value = self.run_function(task.wrapper, args, task.kwargs, task)
            finally:
                running.pop(task.id, None)
        except TaskLockedException as exc:
            logger.warning("task %s not run: unable to acquire its lock (%s)", task, exc)
            exception = exc
            self._emit(SIGNAL_LOCKED, task)
        except RateLimitExceeded as exc:
            exception = exc
            self._emit(SIGNAL_RATE_LIMITED, task)
            if exc.retry or task.retries > 0:
                # Retried when the window reopens (or after the task's own retry delay); a limit declared
                # with retry=True does not use up one of the call's retries.
                logger.info("task %s rate-limited by %r, retrying", task, exc.key)
                retry_wanted = True
                if task.retry_delay or exc.retry_at is None:
                    retry_eta = now_utc() + dt.timedelta(seconds=task.retry_delay or exc.delay)
                else:
                    retry_eta = from_epoch(exc.retry_at)
                if exc.retry:
                    task.retries += 1
            else:
                logger.info("task %s rate-limited by %r, not retried", task, exc.key)
                retry_wanted = False
        except RetryTask as exc:
            logger.info("task %s raised RetryTask, retrying", task)
            exception = exc
            retry_wanted = True
            task.retries += 1  # RetryTask does not use up one of the call's retries
            if exc.eta is not None or exc.delay is not None:
                try:
                    retry_eta = resolve_eta(exc.eta, exc.delay, naive_is_utc=self.utc)
                except InvalidEta as bad:
                    logger.error("task %s raised RetryTask with an unusable time: %s", task, bad)
                    exception = bad
                    task.retries -= 1
                    retry_wanted = task.retries > 0
        except CancelExecution as exc:
            exception = exc
            self._emit(SIGNAL_CANCELED, task)
            if exc.retry or (exc.retry is None and task.retries > 0):
                task.retries = max(task.retries, 1)
                retry_wanted = True
            else:
                task.retries = 0
                retry_wanted = False
        except TaskTimeout as exc:
            exception = TaskTimeout(f"task {task.path} ({task.id}) ran longer than its timeout of {task.timeout:g} s")
            exception.__cause__ = exc
            logger.error("%s", exception)
            self._emit(SIGNAL_TIMEOUT, task)
        except KeyboardInterrupt:
            logger.info("task %s interrupted by shutdown before it finished", task)
            self._emit(SIGNAL_INTERRUPTED, task)
            raise
        except BaseException as exc:
            # SystemExit and other BaseExceptions raised by a task's code are that task's failure: letting one
            # escape would end the worker and leave the message to be reclaimed and dead-lettered unrecorded.
            exception = raised = exc
        else:
            if store and (value is not None or self.store_none):
                try:
                    outcome.result = self.codec.encode_value([_OK, value], where="result")
                except (SerializationError, MessageTooLarge):
                    exception = SerializationError(
                        f"task {task.path} ({task.id}) returned a value that cannot be stored: "
                        f"{self._serialization_problem(value)}"
                    )
                    logger.error("%s", exception)
                    outcome.final_failure = True

        will_retry = exception is not None and not outcome.final_failure and retry_wanted
        surface_error = exception is not None and (not will_retry or self.store_intermediate_errors)
        metadata = self.build_error_result(task, exception) if surface_error else None
        if raised is not None:
            self._log_failure(task, raised, will_retry, retry_eta)
        if exception is None:
            # Sent once the result is stored (by _finish), so a receiver can read it.
            outcome.completed = task
        else:
            if store and surface_error:
                error = self.codec.encode_value([_ERROR, metadata])
                if will_retry:
                    # Written before the retry is enqueued (not with the acknowledgement), so that a fast
                    # retry's own result is never overwritten by this attempt's error.
                    outcome.intermediate_error = error
                else:
                    outcome.result = error
            if not isinstance(
                exception, (TaskLockedException, TaskTimeout, RetryTask, RateLimitExceeded, CancelExecution)
            ):
                self._emit(SIGNAL_ERROR, task, exception)

        for hook in list(self._post_execute.values()):
            try:
                hook(task, value, exception)
            except Exception:
                logger.exception("post-execute hook failed for task %s", task)

        if exception is None:
            if task.on_complete is not None:
                follow = task.on_complete
                follow.extend_data(value)
                outcome.follow_ups.append(lambda: self._enqueue_follow_up(follow))
            if task.chord:
                outcome.follow_ups.append(lambda: self._chord_member_done(task, [_OK, value]))
        elif surface_error and task.on_error is not None:
            # A copy per attempt: each failed attempt's handler gets only that attempt's error.
            handler = _error_handler_call(task.on_error, metadata)
            outcome.follow_ups.append(lambda: self._enqueue_follow_up(handler))
        if exception is not None and not will_retry:
            carrier = _chord_carrier(task)
            if carrier is not None:
                outcome.follow_ups.append(lambda: self._chord_member_done(carrier, [_ERROR, metadata]))
        if will_retry:
            outcome.follow_ups.append(lambda: self._retry(task, retry_eta))
            outcome.requeued = True
        return value if exception is None else None

    @staticmethod
    def _log_failure(task: Task, error: BaseException, will_retry: bool, retry_eta: dt.datetime | None) -> None:
        """One WARNING line for a failure that will be retried; the traceback, at ERROR, only for the last."""
        if not will_retry:
            logger.error("task %s (%s) failed", task.path, task.id, exc_info=error)
            return
        total = max(getattr(task.wrapper, "retries", 0) or 0, task.retries) + 1
        if retry_eta is not None:
            when = f"at {retry_eta.isoformat()}"
        else:
            when = f"in {task.retry_delay:g} s" if task.retry_delay else "at once"
        logger.warning(
            "task %s (%s) failed (%s: %s); will retry %s, attempt %d of %d",
            task.path,
            task.id,
            type(error).__name__,
            error,
            when,
            total - task.retries + 1,
            total,
        )

    def _serialization_problem(self, value: Any) -> str:
        try:
            self.codec.encode_value(value, where="return value")
        except (SerializationError, MessageTooLarge) as exc:
            return str(exc)
        return "the encoded result is larger than the message size limit"

    def _plan_cancel_retry(self, task: Task, exc: CancelExecution, outcome: _Outcome) -> None:
        """A pre-execute hook canceled the call: retried when the exception asks for it, else a chord
        member counts as skipped."""
        if exc.retry or (exc.retry is None and task.retries > 0):
            task.retries = max(task.retries, 1)
            outcome.follow_ups.append(lambda: self._retry(task, None))
            outcome.requeued = True
        else:
            self._plan_chord_skip(task, "canceled", outcome)

    def _plan_chord_skip(self, task: Task, what: str, outcome: _Outcome) -> None:
        """A chord member that will never run counts as failed, so its chord fails instead of waiting forever."""
        carrier = _chord_carrier(task)
        if carrier is not None:
            logger.info("chord member %s was %s; its chord callback receives None in its place", task, what)
            outcome.follow_ups.append(lambda: self._chord_member_done(carrier, [_SKIPPED, None]))

    def run_function(
        self, wrapper: TaskWrapper, args: tuple[Any, ...], kwargs: dict[str, Any], task: Task | None
    ) -> Any:
        """Call the task's function (inside its context manager; awaiting it when it is ``async``)."""
        kwargs = dict(kwargs)
        if wrapper.context:
            kwargs["task"] = task
        if wrapper.context_manager is not None:
            with wrapper.context_manager as entered:
                if wrapper.as_argument:
                    args = (entered, *args)
                return self._call(wrapper, args, kwargs)
        return self._call(wrapper, args, kwargs)

    @staticmethod
    def _call(wrapper: TaskWrapper, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not wrapper.is_async:
            return wrapper.func(*args, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(wrapper.func(*args, **kwargs))
        box: dict[str, Any] = {}

        def run_in_thread() -> None:
            try:
                box["value"] = asyncio.run(wrapper.func(*args, **kwargs))
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=run_in_thread, name=f"tasks-q-async-{wrapper.path}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def build_error_result(self, task: Task, exception: BaseException) -> dict[str, Any]:
        """The stored description of a failure, plain data only (never an exception object); override to
        add keys.

        ``error`` is ``repr(exception)`` (for a re-raised :class:`TaskException`, the inner error's text),
        as in huey; beside it ``task_id``, ``task``, ``type``, ``message``, ``traceback``, ``retries``,
        ``attempt`` and ``exception``, the exception's class path and arguments in the JSON codec's tagged
        form (:func:`~django_tasks_q.serializers.encode_exception`), from which an ``.error()`` handler and
        a chord callback get the exception itself. ``exception`` is left out when its JSON is over a quarter
        of the codec's ``max_size`` (the handler then gets the :class:`TaskException` of this metadata).
        What this returns must survive the queue's serializer.
        """
        kind = type(exception)
        if isinstance(exception, TaskException):
            error = exception.metadata.get("error") or repr(exception)
        else:
            error = repr(exception)
        metadata = {
            "task_id": task.id,
            "task": task.path,
            "error": error,
            "type": f"{kind.__module__}.{kind.__qualname__}",
            "message": str(exception),
            "traceback": "".join(traceback.format_exception(kind, exception, exception.__traceback__)),
            "retries": task.retries,
            "attempt": task.attempt,
        }
        encoded = encode_exception(exception)
        # The metadata holds the error's text three times already and must fit in one stored value: a large
        # exception is not carried a fourth and fifth time (its args and repr).
        if len(json.dumps(encoded, ensure_ascii=False).encode("utf-8")) <= self.codec.max_size // 4:
            metadata["exception"] = encoded
        return metadata

    def _finish(
        self,
        task: Task,
        reservation: Reservation | None,
        outcome: _Outcome,
        wants_next: Callable[[], bool] | None = None,
    ) -> Reservation | None:
        unique_key = task.extra.get(UNIQUE_KEY)
        if unique_key is not None and not outcome.requeued:
            # The call reached a terminal state: a new call with the same key may be enqueued again.
            outcome.follow_ups.append(lambda: self.release_unique(unique_key))
        result = None
        if outcome.result is not None:
            result = (task.id, outcome.result, self.result_ttl)
        if reservation is None:
            # The result first: a follow-up may run a retry of this very task id at once (immediate
            # mode), whose result must not be overwritten by this attempt's.
            if result is not None:
                self._put_result(*result)
            elif outcome.intermediate_error is not None:
                self._put_result(task.id, outcome.intermediate_error, self.result_ttl)
            if outcome.completed is not None:
                self._emit(SIGNAL_COMPLETE, task)
            for follow_up in outcome.follow_ups:
                follow_up()
            return None
        if outcome.follow_ups:
            if not self.storage.renew(reservation, self.lease):
                self._lost_lease(reservation, task)
                return None
            # With follow-ups (a pipeline's next step, a chord, a retry) the result is written before them,
            # so that "complete" is sent before the next step is enqueued, as in huey.
            if result is not None:
                self._put_result(*result)
                result = None
            elif outcome.intermediate_error is not None:
                self._put_result(task.id, outcome.intermediate_error, self.result_ttl)
            if outcome.completed is not None:
                self._emit(SIGNAL_COMPLETE, task)
                outcome.completed = None
            for follow_up in outcome.follow_ups:
                follow_up()
        try:
            if wants_next is not None and wants_next():
                acked, following = self._ack_and_reserve(reservation, result, self.lease)
            else:
                acked, following = self.storage.ack(reservation, result), None
        except (StorageError, OSError) as exc:
            # The task is done: what is left is to record it. The caller keeps the reservation and tries again
            # (retry_acknowledgement) rather than letting the lease expire and the task run again.
            raise AcknowledgementFailed(
                f"queue {self.name!r}: task {task.id} finished but its acknowledgement (message "
                f"{reservation.message_id}) failed: {exc}",
                reservation=reservation,
                result=result,
                task_id=task.id,
                completed=outcome.completed,
            ) from exc
        if not acked:
            self._lost_lease(reservation, task)
        elif outcome.completed is not None:
            # The result is written with the acknowledgement, so "complete" follows it.
            self._emit(SIGNAL_COMPLETE, task)
        return following

    def retry_acknowledgement(self, failed: AcknowledgementFailed) -> bool:
        """Acknowledge again what :class:`AcknowledgementFailed` reported; True when it is recorded now.

        Raises ``StorageError`` while the storage still fails. False when the token is no longer in flight:
        either the lease was reclaimed (another worker runs the message) or the earlier attempt had gone
        through before its answer was lost; a warning says which message it was.
        """
        if self.storage.ack(failed.reservation, failed.result):
            if failed.completed is not None:
                self._emit(SIGNAL_COMPLETE, failed.completed)
            return True
        logger.warning(
            "queue %r: the acknowledgement of message %s (task %s) could not be confirmed: either the attempt "
            "that failed went through before its answer was lost, or the lease was reclaimed meanwhile and the "
            "message will run again",
            self.name,
            failed.reservation.message_id,
            failed.task_id,
        )
        return False

    def _ack_and_reserve(
        self, reservation: Reservation, result: Any, lease: float
    ) -> tuple[bool, Reservation | None]:
        if self._claims_peek():
            return self.storage.ack_and_reserve(reservation, result, lease, peek=_REVOCATION_PEEK)
        return self.storage.ack_and_reserve(reservation, result, lease)

    def _put_result(self, key: str, value: bytes, ttl: float | None) -> None:
        if ttl is None:
            self.storage.put_data(key, value, is_result=True)
        else:
            self.storage.put_data(key, value, is_result=True, ttl=ttl)

    def _requeue(self, task: Task) -> None:
        """Put a call back (a retry, a rate-limited call): SCHEDULED or ENQUEUED, not both."""
        data = self._encode(task)
        if self._immediate and self.ready_to_run(task):
            self._emit(SIGNAL_ENQUEUED, task)
            self.execute(self._decode_task(data))
        elif self._store(task, data):
            self._emit(SIGNAL_SCHEDULED, task)
        else:
            self._emit(SIGNAL_ENQUEUED, task)

    def _schedule_early_call(self, task: Task) -> None:
        """Move a call taken before its eta to the schedule (before its claim is acknowledged).

        "Not yet due" was judged at the execution's timestamp, which may differ from the clock (huey's
        ``execute(task, timestamp)``), so the call goes to the schedule whatever the clock says now.
        """
        data = self._encode(task)
        eta = epoch(self.as_utc(task.eta))
        if task.priority is None:
            self.storage.add_to_schedule(data, eta)
        else:
            self.storage.add_to_schedule(data, eta, task.priority)
        self._emit(SIGNAL_SCHEDULED, task)

    def _retry(self, task: Task, eta: dt.datetime | None) -> None:
        retried = task.copy(id=task.id)
        retried.retries = max(task.retries - 1, 0)
        if eta is None and task.retry_delay:
            eta = now_utc() + dt.timedelta(seconds=task.retry_delay)
        retried.eta = convert(self.present, eta)
        retried.retry_delay = task.retry_delay * task.retry_backoff
        self._emit(SIGNAL_RETRYING, task)
        self._requeue(retried)

    def _enqueue_follow_up(self, follow: Task) -> None:
        if follow.path not in self.registry:
            # The step's task is gone (a deploy removed it). Failing here would leave the finished task
            # unacknowledged, to run again at every redelivery; keep the step as a dead letter instead.
            detail = f"follow-up task {follow.path!r} is not registered on queue {self.name!r}"
            logger.error("queue %r: %s (task id %s); dead-lettered", self.name, detail, follow.id)
            if self.storage.supports_dead_letters():
                letter = self.storage.add_dead_letter(
                    self._encode(follow), "unknown_task", detail, priority=follow.priority
                )
                self._emit(SIGNAL_DEAD_LETTERED, follow, "unknown_task", detail, letter, follow.id)
            return
        follow.wrapper = self.registry.get(follow.path)
        self.enqueue(follow)

    # ------------------------------------------------------------------ chords

    def _chord_member_done(self, task: Task, outcome: list[Any]) -> None:
        info = task.chord or {}
        chord_id, size, index = info["id"], int(info["size"]), int(info["index"])
        member_key = f"{CHORD_PREFIX}{chord_id}.{index}"
        ttl = self.result_ttl or CHORD_TTL
        if self.storage.put_if_empty(member_key, self.codec.encode_value(outcome), ttl=ttl):
            count = self.storage.incr(f"{CHORD_PREFIX}{chord_id}.count", 1, ttl=ttl)
            if count < size:
                return
        members = []
        for position in range(size):
            raw = self.storage.peek_data(f"{CHORD_PREFIX}{chord_id}.{position}")
            if raw is EmptyData:
                return
            members.append(self.codec.decode_value(raw))
        callback = Task.from_message(Message.from_dict(info["callback"]), present=self.present)
        if not self.storage.put_if_empty(f"{CHORD_PREFIX}{chord_id}.fired", b"1", ttl=ttl):
            return
        if callback.path not in self.registry:
            logger.error("queue %r: chord %s finished but its callback %r is not registered", self.name,
                         chord_id, callback.path)
            self._fail_chord_callback(
                callback, {"task": callback.path, "task_id": callback.id, "error": "callback task is not registered"}
            )
        else:
            # As in huey the callback always runs: a member that failed for good contributes its error (the
            # exception it raised, when the callback runs), one that was revoked, expired or canceled None.
            callback.wrapper = self.registry.get(callback.path)
            callback.args = (*callback.args, [payload for _kind, payload in members])
            failed = [position for position, (kind, _payload) in enumerate(members) if kind == _ERROR]
            if failed:
                callback.extra[CHORD_ERRORS] = failed
            self.enqueue(callback)
        for position in range(size):
            self.storage.delete_data(f"{CHORD_PREFIX}{chord_id}.{position}")
        self.storage.delete_data(f"{CHORD_PREFIX}{chord_id}.count")

    def _fail_chord_callback(self, callback: Task, member_error: dict[str, Any]) -> None:
        error = RuntimeError(
            f"chord member {member_error.get('task')} ({member_error.get('task_id')}) failed: "
            f"{member_error.get('error')}"
        )
        metadata = self.build_error_result(callback, error)
        metadata["traceback"] = member_error.get("traceback", "")
        if self.results:
            self._put_result(callback.id, self.codec.encode_value([_ERROR, metadata]), self.result_ttl)
        self._emit(SIGNAL_ERROR, callback, error)
        if callback.on_error is not None:
            self._enqueue_follow_up(_error_handler_call(callback.on_error, metadata))

    # ------------------------------------------------------------------ scheduling and recovery

    def enqueue_due(self, timestamp: dt.datetime | None = None) -> int:
        """Move every scheduled message that is due into the queue; returns how many moved."""
        moved = self.storage.enqueue_due(epoch(now_utc() if timestamp is None else self.as_utc(timestamp)))
        if self._immediate:
            while (data := self.storage.dequeue()) is not None:
                self.execute(self._decode_task(data), timestamp=timestamp)
        return moved

    def read_periodic(self, timestamp: dt.datetime | None = None) -> list[Task]:
        """Calls of the periodic tasks whose schedule matches ``timestamp`` (not enqueued)."""
        moment = self._periodic_moment(timestamp)
        due = []
        for wrapper in self.registry.periodic():
            assert wrapper.validate_datetime is not None
            try:
                matches = wrapper.validate_datetime(moment)
            except Exception:
                logger.exception("schedule of periodic task %r failed for %s", wrapper.path, moment)
                continue
            if matches:
                due.append(self.build_task(wrapper, (), {}))
        return due

    def enqueue_periodic(self, timestamp: dt.datetime | None = None) -> list[Task]:
        """Enqueue the periodic tasks due at ``timestamp``'s minute, each at most once per minute.

        Any number of consumers may call this for the same minute: a marker in
        the storage lets exactly one enqueue each task.
        """
        moment = self._periodic_moment(timestamp)
        minute = moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M")
        enqueued = []
        for task in self.read_periodic(moment):
            marker = f"{PERIODIC_PREFIX}{task.path}.{minute}"
            if self.storage.put_if_empty(marker, b"1", ttl=3 * 3600):
                self.enqueue(task)
                enqueued.append(task)
        return enqueued

    def _periodic_moment(self, timestamp: dt.datetime | None) -> dt.datetime:
        moment = self.as_utc(timestamp) if timestamp else now_utc()
        moment = moment.replace(second=0, microsecond=0)
        return moment if self.utc else moment.astimezone()

    def reclaim_expired(self, now: dt.datetime | None = None) -> list[Reclaimed]:
        """Put expired reservations back in the queue (or dead-letter them at the attempt limit)."""
        moment = epoch(now_utc() if now is None else self.as_utc(now))
        if self._reaps_by_progress():
            reclaimed = self.storage.requeue_expired(
                moment, self.max_attempts, self.max_reclaims, self.lease * (1 + PROGRESS_AFTER)
            )
        else:
            reclaimed = self.storage.requeue_expired(moment, self.max_attempts)
        for item in reclaimed:
            task_id = self._task_id_of(item.reservation.data)
            if item.dead_lettered:
                vanished = item.reason == "max_reclaims"
                logger.error(
                    "queue %r: task %s dead-lettered after %d attempts whose leases expired%s",
                    self.name,
                    task_id,
                    item.reservation.attempt,
                    " (the last while it was running: its worker vanished)" if vanished else "",
                )
                detail = f"task {task_id}: lease expired after {item.reservation.attempt} attempt(s)"
                if vanished:
                    detail += ", the last while it was running (its worker vanished)"
                known_id = None if task_id.startswith("<") else task_id
                self._emit(SIGNAL_DEAD_LETTERED, None, item.reason, detail, item.reservation.message_id, known_id)
            else:
                logger.warning(
                    "queue %r: task %s reclaimed after its lease expired (attempt %d)",
                    self.name,
                    task_id,
                    item.reservation.attempt,
                )
                self._emit(SIGNAL_RECLAIMED, None, task_id, item.reservation.message_id)
        return reclaimed

    def _reaps_by_progress(self) -> bool:
        """Whether this storage's ``requeue_expired`` takes ``max_reclaims`` and ``progress_span`` (a custom
        storage written before them does not: its reservations are all capped by ``max_attempts``)."""
        parameters = inspect.signature(self.storage.requeue_expired).parameters
        return "max_reclaims" in parameters and "progress_span" in parameters

    def _task_id_of(self, data: bytes) -> str:
        try:
            return self.codec.decode(data).id
        except InvalidMessage:
            return "<undecodable>"

    # ------------------------------------------------------------------ revocation

    def _note_revocation(self) -> None:
        """Mark that revocations exist on this queue, before the first is written (see ``REVOCATIONS_MADE``).

        Written on every storage, so that a consumer whose storage reads the marker with each claim never
        misses a revocation made by a process configured differently."""
        self.storage.put_data(REVOCATIONS_MADE, b"1")

    def _revoke_value(self, revoke_until: dt.datetime | None, revoke_once: bool) -> bytes:
        until = epoch(self.as_utc(revoke_until)) if revoke_until else None
        return self.codec.encode_value([until, bool(revoke_once)])

    def revoke_all(
        self, task: TaskWrapper, revoke_until: dt.datetime | None = None, revoke_once: bool = False
    ) -> None:
        """Revoke every call of a task (until a time, or only the next one)."""
        self._note_revocation()
        self.storage.put_data(f"{REVOKE_TASK_PREFIX}{task.path}", self._revoke_value(revoke_until, revoke_once))

    def restore_all(self, task: TaskWrapper) -> bool:
        """Undo :meth:`revoke_all`."""
        return self.storage.delete_data(f"{REVOKE_TASK_PREFIX}{task.path}")

    def revoke_by_id(
        self, id: str, revoke_until: dt.datetime | None = None, revoke_once: bool = False
    ) -> None:
        """Revoke one call by task id."""
        self._note_revocation()
        self.storage.put_data(f"{REVOKE_ID_PREFIX}{id}", self._revoke_value(revoke_until, revoke_once))

    def restore_by_id(self, id: str) -> bool:
        """Undo :meth:`revoke_by_id`."""
        return self.storage.delete_data(f"{REVOKE_ID_PREFIX}{id}")

    def revoke(self, task: Task, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
        """Revoke one call."""
        self.revoke_by_id(task.id, revoke_until, revoke_once)

    def restore(self, task: Task) -> bool:
        """Undo :meth:`revoke`."""
        return self.restore_by_id(task.id)

    def is_revoked(
        self, task: Task | TaskWrapper | Result | str, timestamp: dt.datetime | None = None, peek: bool = True
    ) -> bool:
        """Whether a call (a Task, its Result or its id) or a whole task (a TaskWrapper) is revoked at ``timestamp``.

        A check only looks (``peek=True``, the default). With ``peek=False`` (what execution does) a
        ``revoke_once`` revocation is used up and one whose ``revoke_until`` has passed is removed.
        """
        now = epoch(now_utc() if timestamp is None else self.as_utc(timestamp))
        if not isinstance(task, Task):
            if isinstance(task, str):
                return self._check_revocation(f"{REVOKE_ID_PREFIX}{task}", now, peek)
            if not isinstance(task, Result):
                return self._check_revocation(f"{REVOKE_TASK_PREFIX}{task.path}", now, peek)
            task = task.task
        task_key = f"{REVOKE_TASK_PREFIX}{task.path}"
        id_key = f"{REVOKE_ID_PREFIX}{task.id}"
        by_id, by_task = self.storage.peek_many([id_key, task_key])  # one round trip for both
        return self._check_revocation(id_key, now, peek, by_id) or self._check_revocation(task_key, now, peek, by_task)

    def _check_revocation(self, key: str, now: float, peek: bool, raw: Any = None) -> bool:
        if raw is None:
            raw = self.storage.peek_data(key)
        if raw is EmptyData:
            return False
        try:
            until, once = self.codec.decode_value(raw)
        except InvalidMessage as exc:
            logger.error("queue %r: ignoring revocation %s that does not verify: %s", self.name, key, exc)
            return False
        if until is not None and now >= until:
            if not peek:
                self.storage.delete_data(key)
            return False
        if once and not peek:
            # delete_data, not pop_data: on an expiring storage a read leaves the value, and the one check that
            # removes a revoke-once revocation must be the one that skips the call.
            return self.storage.delete_data(key)
        return True

    # ------------------------------------------------------------------ results

    def read_result(self, id: str, preserve: bool = False) -> Any:
        """The stored value of a call, a :class:`StoredError`, or ``NO_RESULT``; removed unless ``preserve``."""
        raw = self.storage.peek_data(id) if preserve else self.storage.pop_data(id)
        if raw is EmptyData:
            return NO_RESULT
        kind, payload = self.codec.decode_value(raw)
        if kind == _ERROR:
            return StoredError(payload)
        return payload

    def result(self, id: str, blocking: bool = False, timeout: float | None = None, **kwargs: Any) -> Any:
        """Read the result of a call by id (``Result.get`` semantics)."""
        return Result(self, Task("", id=id)).get(blocking=blocking, timeout=timeout, **kwargs)

    def result_exists(self, id: str) -> bool:
        """Whether a value or error is stored for ``id``."""
        return self.storage.has_data_for_key(id)

    def wait_for_result(self, id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until a value is stored for ``id``; True when one was seen."""
        return self.storage.wait_result(id, timeout) is not EmptyData

    def put_record(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (encoded and signed like a message) under ``key`` in the key/value area."""
        data = self.codec.encode_value(value, where=key)
        if ttl is None:
            self.storage.put_data(key, data)
        else:
            self.storage.put_data(key, data, ttl=ttl)

    def get_record(self, key: str) -> Any:
        """The value stored with :meth:`put_record`, or ``None``."""
        raw = self.storage.peek_data(key)
        return None if raw is EmptyData else self.codec.decode_value(raw)

    def delete_record(self, key: str) -> bool:
        """Remove a value stored with :meth:`put_record`."""
        return self.storage.delete_data(key)

    def report_progress(self, id: str, fraction: float, message: str = "") -> None:
        """Record the progress of call ``id`` (a fraction from 0 to 1 and a message)."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise InvalidOption(f"progress must be a number from 0 to 1, got {fraction!r}", field="progress")
        record = {"fraction": float(fraction), "message": str(message), "at": now_utc()}
        self.put_record(f"{PROGRESS_PREFIX}{id}", record, ttl=self.result_ttl or CHORD_TTL)

    def get_progress(self, id: str) -> dict[str, Any] | None:
        """The last progress reported by call ``id`` (``fraction``, ``message``, ``at``), or None."""
        return self.get_record(f"{PROGRESS_PREFIX}{id}")

    def put_result(self, id: str, value: Any) -> None:
        """Store ``value`` as the result of ``id``."""
        self._put_result(id, self.codec.encode_value([_OK, value]), self.result_ttl)

    # ------------------------------------------------------------------ introspection and maintenance

    def _decode_items(self, items: list[bytes]) -> list[Task]:
        tasks = []
        for data in items:
            try:
                tasks.append(self._bound_if_registered(self.codec.decode(data), self.present))
            except InvalidMessage as exc:
                logger.warning("queue %r: skipping a stored message that does not decode: %s", self.name, exc)
        return tasks

    def pending(self, limit: int | None = None) -> list[Task]:
        """Calls waiting in the queue, in the order they will run."""
        return self._decode_items(self.storage.enqueued_items(limit))

    def pending_count(self) -> int:
        """How many messages wait in the queue."""
        return self.storage.queue_size()

    def scheduled(self, limit: int | None = None) -> list[Task]:
        """Calls waiting for their eta, soonest first."""
        return self._decode_items(self.storage.scheduled_items(limit))

    def scheduled_count(self) -> int:
        """How many messages wait in the schedule."""
        return self.storage.schedule_size()

    def all_results(self) -> dict[str, Any]:
        """Every stored result by task id: the value, or a :class:`StoredError`."""
        results: dict[str, Any] = {}
        for key, raw in self.storage.task_results().items():
            try:
                kind, payload = self.codec.decode_value(raw)
            except InvalidMessage as exc:
                logger.warning("queue %r: result %s does not decode: %s", self.name, key, exc)
                continue
            results[key] = StoredError(payload) if kind == _ERROR else payload
        return results

    def result_count(self) -> int:
        """How many results are stored."""
        return self.storage.task_result_count()

    def __len__(self) -> int:
        return self.pending_count()

    def flush(self) -> None:
        """Remove everything this queue stores: queue, schedule, results, locks, in-flight, dead letters."""
        self.storage.flush_all()

    # ------------------------------------------------------------------ operations (the admin reads and acts here)
    # Thin methods over the storage so that the admin never touches a storage itself. Stored bytes are shown
    # only after the codec verified them (MessageView); anything else is described by peek_raw.

    def inspect_message(self, data: bytes) -> MessageView:
        """Verify and decode stored message bytes for display; bytes that fail are previewed, never decoded.

        The call's datetimes are those of the message, aware UTC, whatever this hub's convention (the admin
        shows them in Django's)."""
        try:
            task = self._bound_if_registered(self.codec.decode(data), None)
        except InvalidMessage as exc:
            return MessageView(None, len(data), peek_raw(data, 200), exc.reason, str(exc))
        return MessageView(task, len(data))

    def pending_entries(self, limit: int | None = None) -> list[MessageView]:
        """Messages waiting in the queue, in run order, each verified and decoded or previewed."""
        return [self.inspect_message(data) for data in self.storage.enqueued_items(limit)]

    def scheduled_entries(self, limit: int | None = None) -> list[MessageView]:
        """Messages waiting for their eta, soonest first, each verified and decoded or previewed."""
        return [self.inspect_message(data) for data in self.storage.scheduled_items(limit)]

    def in_flight(self, limit: int | None = None) -> list[Reservation]:
        """Current reservations (messages a worker holds under a lease), earliest deadline first."""
        return self.storage.in_flight_items(limit)

    def in_flight_count(self) -> int:
        """How many messages are reserved by workers now."""
        return self.storage.in_flight_size()

    @property
    def supports_dead_letters(self) -> bool:
        """Whether the storage keeps dead letters (otherwise they are logged and dropped)."""
        return self.storage.supports_dead_letters()

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first (empty when the storage keeps none)."""
        return self.storage.dead_letters(limit) if self.supports_dead_letters else []

    def dead_letter_count(self) -> int:
        """How many dead letters are kept."""
        return self.storage.dead_letter_count() if self.supports_dead_letters else 0

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter back to the queue (attempts reset); False when there is no such id."""
        return self.supports_dead_letters and self.storage.requeue_dead_letter(dead_letter_id)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: dt.datetime | None = None) -> int:
        """Delete dead letters (these ids, those older than a time, or all); returns how many."""
        if not self.supports_dead_letters:
            return 0
        return self.storage.purge_dead_letters(
            None if ids is None else list(ids), None if older_than is None else epoch(self.as_utc(older_than))
        )

    def flush_queue(self) -> None:
        """Remove every message waiting in the queue (in flight, schedule and results stay)."""
        self.storage.flush_queue()

    def flush_schedule(self) -> None:
        """Remove every scheduled message."""
        self.storage.flush_schedule()

    def flush_results(self) -> None:
        """Remove every stored result (locks, revocations and other data stay)."""
        self.storage.flush_task_results()

    def peek_result(self, id: str) -> Any:
        """Like ``read_result(id, preserve=True)``, but a value that does not verify is ``NO_RESULT``."""
        try:
            return self.read_result(id, preserve=True)
        except (InvalidMessage, TypeError, ValueError) as exc:
            logger.warning("queue %r: result %s does not decode: %s", self.name, id, exc)
            return NO_RESULT

    def delete_result(self, id: str) -> bool:
        """Delete the stored result of call ``id``; False when there is none (other keys are never touched)."""
        raw = self.storage.peek_data(id)
        if raw is EmptyData:
            return False
        try:
            kind, _payload = self.codec.decode_value(raw)
        except (InvalidMessage, TypeError, ValueError):
            return False
        return kind in (_OK, _ERROR) and self.storage.delete_data(id)

    def find_scheduled(self, id: str, limit: int | None = None) -> Task | None:
        """The scheduled call with this task id (among the first ``limit`` scheduled), or None."""
        for entry in self.scheduled_entries(limit):
            if entry.task is not None and entry.task.id == id:
                return entry.task
        return None

    def run_now(self, id: str, limit: int | None = None) -> Result | None:
        """Run a scheduled call now: revoke it and enqueue a copy (new id) at once; None if not scheduled."""
        task = self.find_scheduled(id, limit)
        if task is None or task.path not in self.registry:
            return None
        task.wrapper = self.registry.get(task.path)
        return self.reschedule(task)

    def oldest_pending_age(self, sample: int = 200) -> float | None:
        """Seconds since the oldest of the next ``sample`` waiting messages was enqueued (queue latency)."""
        times = [
            entry.task.enqueued_at
            for entry in self.pending_entries(sample)
            if entry.task is not None and entry.task.enqueued_at is not None
        ]
        return (now_utc() - min(times)).total_seconds() if times else None

    def locks_held(self) -> dict[str, bool]:
        """Every lock this queue knows of, by name: whether it is held now."""
        return {lock_name: self.is_locked(lock_name) for lock_name in sorted(self.known_locks)}

    def release_lock(self, lock_name: str) -> bool:
        """Release one named lock whoever holds it; True when it was held."""
        return self.storage.delete_data(self.lock_key(lock_name))

    def unique_keys_held(self, limit: int | None = None) -> list[dict[str, Any]] | None:
        """Held unique-task keys: ``key``, the ``task`` path (None when no registered task matches) and the
        ``holder`` (the id of the call holding it); None when the storage cannot list its keys."""
        if not self.storage.implements("data_keys"):
            return None
        keys = self.storage.data_keys(UNIQUE_PREFIX, limit)
        paths = sorted(self.registry.names(), key=len, reverse=True)
        held = []
        for key, holder in zip(keys, self.storage.peek_many(keys), strict=True):
            if holder is EmptyData:  # released between the two reads
                continue
            rest = key[len(UNIQUE_PREFIX) :]
            task_path = next((path for path in paths if rest.startswith(f"{path}.")), None)
            held.append({"key": key, "task": task_path, "holder": holder.decode("utf-8", "replace")})
        return held

    def rate_limit_usage(self) -> list[dict[str, Any]]:
        """Known rate limits: name, limit, window and entries used in the current window (None if unknown)."""
        usage = []
        now = now_utc().timestamp()
        for limit_name in sorted(self.known_rate_limits):
            spec = self.rate_limit_specs.get(limit_name)
            used = None
            if spec is not None and self.storage.implements("incr"):
                per = spec[1]
                key = f"{RATE_LIMIT_PREFIX}{limit_name}.{int(now // per)}"
                used = self.storage.incr(key, 0, ttl=per * 2)
            usage.append(
                {"name": limit_name, "limit": spec[0] if spec else None, "per": spec[1] if spec else None, "used": used}
            )
        return usage


def _error_handler_call(handler: Task, metadata: dict[str, Any]) -> Task:
    """A copy of an ``.error()`` handler call with the error appended (one copy per failed attempt)."""
    call = handler.copy(id=handler.id)
    call.args = (*call.args, metadata)
    call.extra[ERROR_ARGUMENT] = len(call.args) - 1
    return call


def _with_errors(task: Task) -> tuple[Any, ...]:
    """``task.args`` with the error metadata it carries turned into the exceptions the failed tasks raised."""
    args = task.args
    position = task.extra.get(ERROR_ARGUMENT)
    if position is not None and position < len(args) and isinstance(args[position], dict):
        args = (*args[:position], _raised(args[position]), *args[position + 1 :])
    failed = task.extra.get(CHORD_ERRORS)
    if failed and args and isinstance(args[-1], list):
        values = list(args[-1])
        for index in failed:
            if index < len(values) and isinstance(values[index], dict):
                values[index] = _raised(values[index])
        args = (*args[:-1], values)
    return args


def _raised(metadata: dict[str, Any]) -> BaseException:
    """The exception a failed task raised, rebuilt from its error metadata; a :class:`TaskException` holding
    the metadata when it cannot be rebuilt (see :func:`~django_tasks_q.serializers.decode_exception`) or
    when an overridden ``build_error_result`` left the encoded exception out."""
    rebuilt = decode_exception(metadata.get("exception"))
    return rebuilt if rebuilt is not None else TaskException(metadata)


def _chord_carrier(task: Task) -> Task | None:
    """The step of ``task``'s pipeline that reports to a chord: a member that stops early (failed, revoked,
    expired, canceled) must still report, or its chord would wait forever."""
    node: Task | None = task
    while node is not None:
        if node.chord:
            return node
        node = node.on_complete
    return None


@dataclass(frozen=True, slots=True)
class MessageView:
    """Stored message bytes as the admin may show them: a decoded call when the codec verified it, else a preview.

    ``task`` is set only when the signature (if the queue signs) verified and the envelope decoded; otherwise
    ``preview`` holds :func:`~django_tasks_q.message.peek_raw` of the first bytes and ``reason`` / ``error`` say
    why it was refused. Nothing unverified is ever deserialized.
    """

    task: Task | None
    size: int
    preview: str = ""
    reason: str = ""
    error: str = ""


class _Outcome:
    """What an execution leaves to do once the task has run: a result to write, follow-ups to enqueue."""

    __slots__ = ("completed", "final_failure", "follow_ups", "intermediate_error", "requeued", "result")

    def __init__(self) -> None:
        self.result: bytes | None = None
        self.intermediate_error: bytes | None = None
        self.completed: Task | None = None
        self.follow_ups: list[Callable[[], None]] = []
        self.final_failure = False
        self.requeued = False


Huey = TaskQueue


class MemoryHuey(TaskQueue):
    """A queue on :class:`~django_tasks_q.backends.memory.MemoryStorage`: per process, not durable."""

    storage_class = MemoryStorage


class BlackHoleHuey(TaskQueue):
    """A queue on :class:`~django_tasks_q.backends.blackhole.BlackHoleStorage`: everything is discarded."""

    storage_class = BlackHoleStorage


class RedisHuey(TaskQueue):
    """A queue on Redis (huey's ``RedisHuey`` parameters: host, port, db, password, url, connection_pool, ...).

    The storage is built with the queue, so conflicting connection arguments raise ConfigurationError at once;
    no connection is opened until the first call.
    """

    storage_path = "django_tasks_q.backends.redis.RedisStorage"
    build_storage_at_init = True


class RedisExpireHuey(RedisHuey):
    """Redis with results that expire after ``expire_time`` seconds (default 86400)."""

    storage_path = "django_tasks_q.backends.redis.RedisExpireStorage"


class PriorityRedisHuey(RedisHuey):
    """Redis with priorities: higher first, first-in first-out within one priority."""

    storage_path = "django_tasks_q.backends.redis.PriorityRedisStorage"


class PriorityRedisExpireHuey(PriorityRedisHuey):
    """Redis with priorities and expiring results."""

    storage_path = "django_tasks_q.backends.redis.PriorityRedisExpireStorage"


class SqliteHuey(TaskQueue):
    """A queue in a SQLite file (filename, cache_mb, fsync, timeout, strict_fifo)."""

    storage_path = "django_tasks_q.backends.sqlite.SqliteStorage"


class FileHuey(TaskQueue):
    """A queue in a folder of files (path, levels, use_thread_lock)."""

    storage_path = "django_tasks_q.backends.file.FileStorage"


class PostgresHuey(TaskQueue):
    """huey's PostgreSQL queue (dsn or connection keywords, blocking, read_timeout) on the ORM storage of the
    PostgreSQL entry of ``DATABASES`` that names the same database (see ``backends/postgres.py``)."""

    storage_path = "django_tasks_q.backends.postgres.PostgresStorage"
