"""The hub: :class:`TaskQueue` (also importable as ``Huey``), a facade over the parts that do its jobs.

The hub is the only code that talks to a storage. It holds its configuration, builds its storage and its
message codec on first use, and switches immediate mode; every other job it hands to a part of its own, one
module each in this package (hooks, registration, locking, enqueue, chords, delivery, execution, revocation,
periodic, results, inspection, manual; keyspace names every storage key). Its public methods forward to those
parts with the parts' signatures and docstrings; the parts call the hub's public methods wherever a subclass
may override one, so overriding a method of :class:`TaskQueue` works as it does in huey.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..backends.base import BaseStorage, Feature
from ..backends.memory import MemoryStorage
from ..backends.registry import load_storage_class
from ..exceptions import ConfigurationError
from ..messages.codec import MessageCodec
from ..messages.envelope import Message
from ..messages.signing import signing_keys_from_settings
from ..registry import TaskRegistry
from ..signals import SignalRegistry
from ..task import Task
from ..timeutils import TimeConversion, to_utc
from ..timeutils import present as present_datetime
from .chords import Chords
from .configuration import check_options
from .delivery import Delivery
from .enqueue import Enqueuer
from .execution import Executor
from .hooks import Hooks
from .inspection import Inspection
from .locking import LockStore
from .manual import ManualDrive
from .periodic import Periodic
from .registration import Declarations
from .results import ResultStore
from .revocation import Revocations

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_LEASE = 60.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RECLAIMS = 20

P = ParamSpec("P")
R = TypeVar("R")


def _forward(part: str, method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """A hub method that calls ``method`` of the collaborator held in the hub's attribute ``part``."""
    name = method.__name__

    def forwarded(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, part), *args, **kwargs)

    forwarded.__name__ = name
    forwarded.__qualname__ = f"TaskQueue.{name}"
    forwarded.__doc__ = method.__doc__
    forwarded.__wrapped__ = method  # type: ignore[attr-defined]  # inspect.signature shows the part's
    return forwarded


class TaskQueue:
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
    consumer_module: str = "django_tasks_q.consumer"
    """Module of the consumer that :meth:`create_consumer` builds (imported on use: the hub does not depend on it)."""

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
        check_options(name, signing, result_ttl, lease, max_attempts, max_reclaims)
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
        self.hooks = Hooks(name, state)
        self.declarations = Declarations(self)
        self.lock_store = LockStore(self)
        self.enqueuer = Enqueuer(self)
        self.chords = Chords(self)
        self.executor = Executor(self)
        self.delivery = Delivery(self)
        self.revocations = Revocations(self)
        self.result_store = ResultStore(self)
        self.periodic = Periodic(self)
        self.inspection = Inspection(self)
        self.manual = ManualDrive(self)
        self._lock = threading.RLock()
        self._storage: BaseStorage | None = None
        self._regular_storage: BaseStorage | None = None
        self._codec: MessageCodec | None = None
        self._immediate = False
        if self.build_storage_at_init:
            self._storage = self.create_storage()
        self.immediate = immediate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def __len__(self) -> int:
        return self.pending_count()

    # ------------------------------------------------------------------ datetimes and messages

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

    def _emit(self, signal: str, task: Task | None, *args: Any) -> None:
        self.signals.send(self, signal, task, *args)

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
            storage = self._build_once("_storage", self.create_storage)
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
            codec = self._build_once("_codec", self._new_codec)
        return codec

    def _new_codec(self) -> MessageCodec:
        key, fallbacks = self._signing_keys()
        return MessageCodec(serializer=self.serializer, compression=self.compression, signing_key=key,
                            fallback_keys=fallbacks, max_size=self.max_message_size)  # fmt: skip

    def _build_once(self, attr: str, build: Callable[[], Any]) -> Any:
        """``self.<attr>``, set to ``build()`` under the lock when it is still ``None`` (one build across threads)."""
        with self._lock:
            if getattr(self, attr) is None:
                setattr(self, attr, build())
            return getattr(self, attr)

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
            raise ConfigurationError(f"queue {self.name!r}: signing=True needs Django settings with a SECRET_KEY")
        return None, []

    @property
    def supports_dead_letters(self) -> bool:
        """Whether the storage keeps dead letters (the feature ``dead_letters``; otherwise they are logged and
        dropped)."""
        return self.supports(Feature.DEAD_LETTERS)

    @property
    def blocking(self) -> bool:
        """Whether the storage's ``reserve`` itself waits for a message (a worker then needs no idle sleep)."""
        return self.delivery.blocking

    # ------------------------------------------------------------------ the parts' methods

    pre_execute = _forward("hooks", Hooks.pre_execute)
    post_execute = _forward("hooks", Hooks.post_execute)
    on_startup = _forward("hooks", Hooks.on_startup)
    on_shutdown = _forward("hooks", Hooks.on_shutdown)
    unregister_pre_execute = _forward("hooks", Hooks.unregister_pre_execute)
    unregister_post_execute = _forward("hooks", Hooks.unregister_post_execute)
    unregister_on_startup = _forward("hooks", Hooks.unregister_on_startup)
    unregister_on_shutdown = _forward("hooks", Hooks.unregister_on_shutdown)
    run_startup_hooks = _forward("hooks", Hooks.run_startup_hooks)
    run_shutdown_hooks = _forward("hooks", Hooks.run_shutdown_hooks)
    signal = _forward("hooks", Hooks.signal)
    disconnect_signal = _forward("hooks", Hooks.disconnect_signal)

    task = _forward("declarations", Declarations.task)
    periodic_task = _forward("declarations", Declarations.periodic_task)
    context_task = _forward("declarations", Declarations.context_task)

    lock_task = _forward("lock_store", LockStore.lock_task)
    rate_limit = _forward("lock_store", LockStore.rate_limit)
    lock_key = _forward("lock_store", LockStore.lock_key)
    is_locked = _forward("lock_store", LockStore.is_locked)
    flush_locks = _forward("lock_store", LockStore.flush_locks)
    locks_held = _forward("lock_store", LockStore.locks_held)
    release_lock = _forward("lock_store", LockStore.release_lock)
    rate_limit_usage = _forward("lock_store", LockStore.rate_limit_usage)

    build_task = _forward("enqueuer", Enqueuer.build_task)
    release_unique = _forward("enqueuer", Enqueuer.release_unique)
    enqueue = _forward("enqueuer", Enqueuer.enqueue)
    enqueue_many = _forward("enqueuer", Enqueuer.enqueue_many)
    enqueue_call = _forward("enqueuer", Enqueuer.enqueue_call)
    reschedule = _forward("enqueuer", Enqueuer.reschedule)

    enqueue_chord = _forward("chords", Chords.enqueue_chord)

    reserve = _forward("delivery", Delivery.reserve)
    release = _forward("delivery", Delivery.release)
    renew_lease = _forward("delivery", Delivery.renew_lease)
    wait_for_messages = _forward("delivery", Delivery.wait_for_messages)
    process = _forward("delivery", Delivery.process)
    dead_letter = _forward("delivery", Delivery.dead_letter)
    retry_acknowledgement = _forward("delivery", Delivery.retry_acknowledgement)
    reclaim_expired = _forward("delivery", Delivery.reclaim_expired)

    execute = _forward("executor", Executor.execute)
    run_function = _forward("executor", Executor.run_function)
    build_error_result = _forward("executor", Executor.build_error_result)

    mark_existing_revocations = _forward("revocations", Revocations.mark_existing_revocations)
    revoke_all = _forward("revocations", Revocations.revoke_all)
    restore_all = _forward("revocations", Revocations.restore_all)
    revoke_by_id = _forward("revocations", Revocations.revoke_by_id)
    restore_by_id = _forward("revocations", Revocations.restore_by_id)
    revoke = _forward("revocations", Revocations.revoke)
    restore = _forward("revocations", Revocations.restore)
    is_revoked = _forward("revocations", Revocations.is_revoked)

    enqueue_due = _forward("periodic", Periodic.enqueue_due)
    read_periodic = _forward("periodic", Periodic.read_periodic)
    enqueue_periodic = _forward("periodic", Periodic.enqueue_periodic)
    claim_schedule_tick = _forward("periodic", Periodic.claim_schedule_tick)

    read_result = _forward("result_store", ResultStore.read_result)
    result = _forward("result_store", ResultStore.result)
    result_exists = _forward("result_store", ResultStore.result_exists)
    wait_for_result = _forward("result_store", ResultStore.wait_for_result)
    put_record = _forward("result_store", ResultStore.put_record)
    get_record = _forward("result_store", ResultStore.get_record)
    delete_record = _forward("result_store", ResultStore.delete_record)
    report_progress = _forward("result_store", ResultStore.report_progress)
    get_progress = _forward("result_store", ResultStore.get_progress)
    put_result = _forward("result_store", ResultStore.put_result)
    all_results = _forward("result_store", ResultStore.all_results)
    result_count = _forward("result_store", ResultStore.result_count)
    peek_result = _forward("result_store", ResultStore.peek_result)
    delete_result = _forward("result_store", ResultStore.delete_result)
    flush_results = _forward("result_store", ResultStore.flush_results)

    pending = _forward("inspection", Inspection.pending)
    pending_count = _forward("inspection", Inspection.pending_count)
    scheduled = _forward("inspection", Inspection.scheduled)
    scheduled_count = _forward("inspection", Inspection.scheduled_count)
    flush = _forward("inspection", Inspection.flush)
    inspect_message = _forward("inspection", Inspection.inspect_message)
    pending_entries = _forward("inspection", Inspection.pending_entries)
    scheduled_entries = _forward("inspection", Inspection.scheduled_entries)
    in_flight = _forward("inspection", Inspection.in_flight)
    in_flight_count = _forward("inspection", Inspection.in_flight_count)
    startup_warnings = _forward("inspection", Inspection.startup_warnings)
    dead_letters = _forward("inspection", Inspection.dead_letters)
    dead_letter_count = _forward("inspection", Inspection.dead_letter_count)
    requeue_dead_letter = _forward("inspection", Inspection.requeue_dead_letter)
    purge_dead_letters = _forward("inspection", Inspection.purge_dead_letters)
    flush_queue = _forward("inspection", Inspection.flush_queue)
    flush_schedule = _forward("inspection", Inspection.flush_schedule)
    find_scheduled = _forward("inspection", Inspection.find_scheduled)
    run_now = _forward("inspection", Inspection.run_now)
    oldest_pending_age = _forward("inspection", Inspection.oldest_pending_age)
    unique_keys_held = _forward("inspection", Inspection.unique_keys_held)
    supports = _forward("inspection", Inspection.supports)

    dequeue = _forward("manual", ManualDrive.dequeue)
    ready_to_run = _forward("manual", ManualDrive.ready_to_run)
    read_schedule = _forward("manual", ManualDrive.read_schedule)
    serialize_task = _forward("manual", ManualDrive.serialize_task)
    deserialize_task = _forward("manual", ManualDrive.deserialize_task)
    put = _forward("manual", ManualDrive.put)
    put_if_empty = _forward("manual", ManualDrive.put_if_empty)
    get = _forward("manual", ManualDrive.get)
    delete = _forward("manual", ManualDrive.delete)
    notify_interrupted_tasks = _forward("manual", ManualDrive.notify_interrupted_tasks)
    create_consumer = _forward("manual", ManualDrive.create_consumer)


Huey = TaskQueue
