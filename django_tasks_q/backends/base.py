"""The storage contract: what every django-tasks-q storage does, written for the people who implement one.

The model
=========

A storage moves **opaque bytes**. The hub (``TaskQueue``) serializes, signs and encodes every message before it
reaches the storage, and decodes what comes back; a storage never looks inside ``data`` and never needs to know
about tasks, serializers or Django settings. Everything that goes in as ``bytes`` comes back as the same
``bytes`` (including ``b""`` and bytes that are not valid UTF-8). Keys are ``str``.

One storage instance serves one queue *name* (``BaseStorage.name``). Two storages with different names that
share a server or a database must not see each other's data; ``flush_all()`` only clears its own name.

A storage has four areas:

``queue``
    Messages ready to run. ``enqueue(data, priority)`` adds one; ``dequeue()`` / ``reserve()`` take the next.

``schedule``
    Messages that become ready at a point in time (``timestamp``: seconds since the epoch, a ``float``, as
    returned by ``time.time()``). The consumer's scheduler moves due items into the queue with
    ``enqueue_due()`` (or the older ``read_schedule()`` + ``enqueue()``).

``key/value data``
    Results, locks, revocations, chord bookkeeping. Values are bytes, optionally with a time to live. Values
    written with ``is_result=True`` are *results*: ``task_results()`` and ``flush_task_results()`` see only
    those, while huey's ``result_items()`` and ``flush_results()`` see every value (huey's "result store").

``in-flight`` and ``dead letters`` (the reliable-delivery extension, below)
    Messages currently owned by a worker under a lease, and messages given up on.

"No value"
----------

``peek_data()``, ``pop_data()`` and ``wait_result()`` return the singleton :data:`EmptyData` when a key has no
value. It is distinct from ``b""`` (a perfectly good value) and from ``None``. Test for it with
``value is EmptyData``; it is falsy, but so is ``b""``, so never rely on truthiness.

Priority
--------

A priority is an ``int`` (negative allowed); ``None`` means ``0``. A storage whose class flag ``priority`` is
true delivers the highest priority first and, within one priority, first-in first-out. A storage with
``priority = False`` ignores priorities and delivers strictly first-in first-out.

Reliable delivery (at least once)
---------------------------------

huey's ``dequeue()`` removes a message from the store before the task runs, so a worker that dies mid-task loses
it (*at most once*). The extension keeps the message in the store until the worker says it is done:

1. ``reserve(lease)`` atomically moves the next ready message to *in-flight*, with a lease deadline
   (``now + lease``), a fresh **fencing token** and an **attempt** number that rises at every claim. There is no
   moment at which the message exists only in a worker's memory.
2. While the task runs, the consumer ``renew()``s the lease.
3. When the task reached a terminal state the worker ``ack()``s, which deletes the message and (in the same
   atomic step) may write the task's result.
4. ``release()`` gives a message back without counting the attempt (graceful shutdown before the task started).
5. ``bury()`` moves it to the dead letters (a message that must never run, e.g. a bad signature).
6. ``requeue_expired(now, max_attempts, max_reclaims, progress_span)`` (the reaper, run by every consumer)
   returns every reservation whose lease ran out to the queue, in its original place, or to the dead letters
   once it has been claimed ``max_attempts`` times (a task that keeps killing its worker), or ``max_reclaims``
   times when its lease had been renewed well after the claim (a worker that vanished mid-task).

``ack``, ``renew``, ``release`` and ``bury`` check the token: once a lease has been reclaimed and the message
handed to someone else, the old owner's calls return ``False`` and change nothing. A lease that has passed its
deadline but has not been reclaimed yet still belongs to its holder; only ``requeue_expired`` ends ownership.

Deadlines and ``reserved_at`` are epoch seconds from the clock of the process that reserves (or, for a store
that keeps time itself, that store's clock expressed in epoch seconds). ``requeue_expired`` compares them with
the ``now`` it is given, so all consumers sharing a store need roughly synchronised clocks; leases are long
(60 s by default) compared with usual clock skew.

Records a storage cannot read
-----------------------------

A stored record may be damaged behind the storage's back: a folder or a FIFO where a message file should be, a
priority that is not a number, a claim count at the top of its column. Such a record must never wedge the
queue: ``reserve()`` (and ``ack_and_reserve()``) skip it, move it to the dead letters (or, when not even its
bytes can be read, set it aside and record a dead letter describing it) with the reason
:data:`UNREADABLE_RECORD` and a detail saying what was wrong, log it once with :func:`log_unreadable_record`,
and go on with the next message; ``requeue_expired()`` does the same for an in-flight record. Acknowledging a
finished task never depends on a claim that could fail on another message's record.

At-most-once fallback
---------------------

A storage that implements only huey's seed list still works: the defaults of the extension in this class turn
``reserve()`` into ``dequeue()`` (token ``""``, attempt ``1``), make ``ack``/``renew``/``release`` trivially
succeed and report nothing in flight. Delivery is then at most once, and the class flag ``reliable`` stays
``False`` so a system check can say so. Storages that implement the extension natively set ``reliable = True``
and must override *every* method of it (and the dead-letter methods) with atomic versions.

Writing a storage
-----------------

Subclass :class:`BaseStorage`, implement the seed list (``enqueue`` ... ``flush_all``), then whatever else you
can. Every method's docstring below says what it must do, return and guarantee. Methods that the base class
cannot provide raise ``NotImplementedError`` naming your class and the method; :meth:`BaseStorage.implements`
and :meth:`BaseStorage.supports_dead_letters` let the hub and the system checks ask in advance. Raise
:class:`django_tasks_q.exceptions.StorageError` (chaining the cause) when the store cannot be reached.
The reusable test-suite ``tests/storage_contract.py`` checks a storage against this contract.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

from django_tasks_q.exceptions import ConfigurationError

__all__ = [
    "UNREADABLE_RECORD",
    "BaseStorage",
    "DeadLetter",
    "EmptyData",
    "EmptyDataType",
    "Reclaimed",
    "Reservation",
    "ResultWrite",
    "expired_verdict",
    "log_unreadable_record",
    "made_progress",
    "new_token",
    "normalize_priority",
    "schedule_time",
]

UNREADABLE_RECORD: Final = "unreadable_record"
"""The dead-letter reason of a stored record the storage could not read (see "Records a storage cannot read")."""

_unreadable_logger = logging.getLogger("django_tasks_q.backends")


def log_unreadable_record(storage_name: str, where: str, detail: str) -> None:
    """Log, once per record, that ``where`` (the record) of the queue ``storage_name`` could not be read and
    was moved to the dead letters with the reason :data:`UNREADABLE_RECORD`; ``detail`` says what was wrong."""
    _unreadable_logger.warning(
        "queue %r: %s cannot be read (%s); moved to the dead letters as %r",
        storage_name,
        where,
        detail,
        UNREADABLE_RECORD,
    )


class EmptyDataType(enum.Enum):
    """The type of :data:`EmptyData`; it has exactly one member, so it survives pickling and copying."""

    EMPTY = "EmptyData"

    def __repr__(self) -> str:
        return "EmptyData"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False


EmptyData: Final = EmptyDataType.EMPTY
"""The "no value" sentinel returned by ``peek_data``, ``pop_data`` and ``wait_result``.

Distinct from ``b""`` and ``None``; compare with ``is``.
"""

ResultWrite: TypeAlias = tuple[str, bytes, float | None]
"""``(key, value, ttl)``: a result that ``ack()`` writes atomically with the acknowledgement."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A message claimed by a worker under a lease (returned by ``reserve`` and ``in_flight_items``).

    A reservation is a plain value: it can be pickled, sent to another process and handed back to ``ack`` /
    ``renew`` / ``release`` / ``bury``; storages identify the message by ``message_id`` and check ``token``,
    never rely on object identity.
    """

    message_id: str
    """Identifies the stored message; the same on every redelivery of that message. ``""`` when the storage
    does not track deliveries (the at-most-once fallback)."""

    data: bytes
    """The message's bytes, exactly as enqueued."""

    token: str
    """Fencing token, fresh for each reservation (e.g. ``uuid4().hex``). ``""`` in the at-most-once fallback."""

    attempt: int
    """1 on the first delivery; rises by one at each claim (``release`` takes the claim back)."""

    deadline: float
    """Epoch seconds when the lease ends, unless renewed."""

    reserved_at: float
    """Epoch seconds when this reservation was made."""

    priority: int | None = None
    """The message's priority (``None`` enqueued as ``0``), or ``None`` when the storage does not know it."""

    peeked: tuple[bytes | EmptyDataType, ...] | None = None
    """The values of the keys asked for with ``peek=`` (``EmptyData`` for a missing one), read with the claim;
    ``None`` when none were asked for or the storage does not read them (see ``BaseStorage.peeks_on_reserve``)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the system gave up on; kept for inspection, requeueing or purging."""

    id: str
    """Unique within the storage; pass it to ``requeue_dead_letter`` / ``purge_dead_letters``."""

    data: bytes
    """The message's bytes, unchanged (possibly not a valid message at all: that may be why it is here)."""

    reason: str
    """A short machine-readable code: ``"max_attempts"``, ``"bad_signature"``, ``"decode_error"`` ..."""

    detail: str
    """Free text for people: an error message or a traceback."""

    attempts: int
    """How many times the message had been claimed when it was given up on."""

    failed_at: float
    """Epoch seconds when it became a dead letter."""

    priority: int | None = None
    """The priority it had (used when it is requeued), or ``None`` when unknown."""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """One expired reservation handled by ``requeue_expired``."""

    reservation: Reservation
    """The reservation as it was when its lease ran out (its token is now stale)."""

    dead_lettered: bool
    """``True`` when it went to the dead letters, ``False`` when back to the queue."""

    reason: str = "max_attempts"
    """The dead letter's reason when ``dead_lettered``: ``"max_attempts"``, or ``"max_reclaims"`` for a
    reservation whose worker vanished while its task was running (see ``requeue_expired``)."""


def new_token() -> str:
    """Return a fresh, unguessable identifier (32 hex digits) for tokens and ids."""
    return uuid.uuid4().hex


def made_progress(deadline: float, reserved_at: float, progress_span: float | None) -> bool:
    """Whether a reservation was renewed after its task had been running for a while: its deadline lies more
    than ``progress_span`` seconds after ``reserved_at`` (``None``: progress is not told apart)."""
    return progress_span is not None and deadline - reserved_at > progress_span


def expired_verdict(
    claims: int,
    progressed: bool,
    max_attempts: int | None,
    max_reclaims: int | None,
) -> tuple[str, str] | None:
    """What ``requeue_expired`` does with one expired reservation: ``None`` (back to the queue) or the dead
    letter's ``(reason, detail)``.

    A reservation that made progress (see :func:`made_progress`) lost a worker that was running its task well
    (killed, out of memory, pre-empted): it is capped by ``max_reclaims``. One that did not — its worker
    vanished right after the claim, as a task that kills its worker makes it — is capped by ``max_attempts``.
    Either cap counts every claim of the message; ``None`` is no cap.
    """
    if progressed and max_reclaims is not None:
        if claims >= max_reclaims:
            return "max_reclaims", (
                f"lease expired after {claims} attempt(s), the last while its task was running (its worker "
                f"vanished: killed, out of memory, pre-empted); the limit for such reclaims is {max_reclaims}"
            )
        return None
    if max_attempts is not None and claims >= max_attempts:
        return "max_attempts", f"lease expired after {claims} attempt(s); the limit is {max_attempts}"
    return None


def normalize_priority(priority: int | float | None) -> int:
    """Return ``priority`` as an ``int`` (``None`` → ``0``, a finite ``float`` truncated toward zero, as huey's
    storages do); raise ``TypeError`` for anything else (``bool``, ``str``, NaN, infinity)."""
    if priority is None:
        return 0
    if isinstance(priority, float) and math.isfinite(priority):
        return int(priority)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int or None, not {type(priority).__name__}")
    return priority


def bounded_priority(priority: int | None, bits: int, where: str) -> int:
    """Return :func:`normalize_priority` of ``priority``; raise ``ValueError`` when it does not fit a signed
    ``bits``-bit integer (``where`` names the column in the message)."""
    value = normalize_priority(priority)
    limit = 2 ** (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"priority {value} does not fit {where}")
    return value


def check_bytes(value: object, what: str) -> bytes:
    """Return ``value`` when it is ``bytes``; raise ``TypeError`` naming ``what`` otherwise."""
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


def check_key(key: object) -> str:
    """Return ``key`` as a ``str``: a ``str`` as it is, UTF-8 ``bytes`` (huey's key type) decoded, so that
    ``b"k"`` and ``"k"`` name the same value. Raise ``TypeError`` for anything else or for bytes that are not
    UTF-8."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError(f"a bytes key must be UTF-8 text, not {key!r}") from None
    raise TypeError(f"key must be a str or UTF-8 bytes, not {type(key).__name__}")


def schedule_time(timestamp: object) -> float:
    """Return a schedule time as epoch seconds (a ``float``).

    Accepts epoch seconds (``int`` or ``float``, as the hub passes them) and, for callers written for huey, a
    ``datetime``: an aware one at its own offset, a naive one as UTC (what huey's ``utc=True`` default
    produces). Raises ``TypeError`` for anything else, NaN included.
    """
    if isinstance(timestamp, datetime.datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            timestamp = timestamp.replace(tzinfo=datetime.UTC)
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or math.isnan(timestamp):
        raise TypeError(f"timestamp must be epoch seconds or a datetime, not {timestamp!r}")
    return float(timestamp)


def expiry_time(ttl: float | None, now: float) -> float | None:
    """When a value written at ``now`` (epoch seconds) with ``ttl`` seconds expires; ``None`` for never.

    Raises ``ValueError`` for a ttl that is not a positive number.
    """
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return now + ttl


def is_live(expires_at: float | None, now: float) -> bool:
    """Whether a value that expires at ``expires_at`` (``None``: never) is still there at ``now``."""
    return expires_at is None or expires_at > now


_DEAD_LETTER_METHODS: Final = ("add_dead_letter", "dead_letters", "requeue_dead_letter", "purge_dead_letters")


class BaseStorage:
    """Base class and contract of every storage. See the module documentation for the model.

    Class flags (override them in a subclass):

    ``blocking``
        ``True`` when ``dequeue()`` and ``reserve()`` wait a short while for a message when the queue is empty
        (so the consumer need not sleep between polls). ``False``: they return at once.
    ``priority``
        ``True`` when the storage honours priorities (highest first, FIFO within one). ``False``: plain FIFO.
    ``reliable``
        ``True`` when the storage implements the reliable-delivery extension natively (at-least-once).
        ``False``: the at-most-once defaults of this class are in use.

    Thread safety: the consumer calls one storage instance from several threads at once; every method must be
    safe to call concurrently, and the atomicity promised below must also hold between processes for any
    storage that can be shared between processes.
    """

    blocking: ClassVar[bool] = False
    priority: ClassVar[bool] = True
    reliable: ClassVar[bool] = False
    shared_between_processes: ClassVar[bool] = True
    """False for storages that live inside one process (memory, black hole): ``run_tasks`` refuses them."""
    peeks_on_reserve: ClassVar[bool] = False
    """True when ``reserve`` and ``ack_and_reserve`` accept ``peek=`` (a sequence of keys) and return the values
    of those keys as ``Reservation.peeked``, read in the same step as the claim (the same script or
    transaction) or right after it: a value written before the claim must be seen. The hub uses it to learn
    whether any revocation exists without a read of its own per task (the Redis and ORM storages; on the SQLite
    storage a read inside its write transaction measured slower than the separate read)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that overrides ``peek_data`` but not ``peek_many`` reads several keys through its own
        ``peek_data``: a batched read inherited from its parent would bypass the override."""
        super().__init_subclass__(**kwargs)
        if "peek_data" in cls.__dict__ and "peek_many" not in cls.__dict__:
            cls.peek_many = BaseStorage.peek_many  # type: ignore[method-assign]

    def __init__(self, name: str = "huey", **storage_kwargs: Any) -> None:
        """Remember the queue ``name``; all data of this storage lives under it.

        A subclass takes the options it understands as named parameters and passes the rest on here; whatever
        arrives here is an option no class in the hierarchy understood (a misspelling, an option of another
        storage), refused with a :class:`~django_tasks_q.exceptions.ConfigurationError` that names it rather
        than ignored.
        """
        if storage_kwargs:
            unknown = ", ".join(sorted(storage_kwargs))
            raise ConfigurationError(
                f"{type(self).__name__}({name!r}): unknown option(s) {unknown}; "
                f"it accepts {', '.join(sorted(type(self).accepted_options() or ())) or 'no options'}"
            )
        self.name = name

    def close(self) -> None:
        """Release connections, file handles and threads. The default does nothing.

        Calling it twice must be harmless. The storage need not be usable afterwards.
        """

    def startup_warnings(self) -> list[str]:
        """Return what an operator should know about this store's durability, as sentences; ``[]`` if nothing.

        The consumer calls it once at start and logs each sentence as a warning (RELIABILITY R9): a store that
        may lose or evict acknowledged data breaks at-least-once delivery whatever the storage does (a Redis
        server without an append-only file, or one that evicts keys under memory pressure). It must not raise:
        a store that cannot be asked (unreachable, the command disabled) says so in a sentence or returns
        ``[]``. Default: ``[]``.
        """
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    # ------------------------------------------------------------------ capability introspection

    @classmethod
    def implements(cls, method_name: str) -> bool:
        """Return ``True`` when this class provides ``method_name`` itself rather than inheriting the default.

        Useful for the methods whose default raises ``NotImplementedError`` (the seed list, ``result_items``,
        ``incr``, the dead-letter methods): ``MyStorage.implements("incr")``.
        """
        base = getattr(BaseStorage, method_name, None)
        if base is None:
            raise AttributeError(f"BaseStorage has no method {method_name!r}")
        return getattr(cls, method_name) is not base

    @classmethod
    def accepted_options(cls) -> frozenset[str] | None:
        """The constructor keywords this storage accepts (for settings checks), or ``None`` for "any".

        Default: the named parameters of ``__init__`` along the class hierarchy, stopping at the first
        ``__init__`` that takes no ``**kwargs`` (this base class refuses whatever reaches it). Storages that
        forward extra keywords to a client library override this with the full list, or ``None``.
        """
        accepted: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            params = list(inspect.signature(init).parameters.values())
            accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            if not any(p.kind is p.VAR_KEYWORD for p in params) or klass is BaseStorage:
                return frozenset(accepted - {"self", "name"})
        return None

    @classmethod
    def supports_dead_letters(cls) -> bool:
        """Return ``True`` when the class implements the dead-letter methods.

        There is no default for them: a dead-letter area built from ``put_data`` / ``peek_data`` could not be
        listed or changed atomically. A storage without them cannot dead-letter; the hub logs such messages
        (with their reason) and acknowledges them instead, and a system check says so.
        """
        return all(cls.implements(name) for name in _DEAD_LETTER_METHODS)

    def _not_implemented(self, method_name: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} does not implement {method_name}(); "
            f"see django_tasks_q.backends.base.BaseStorage.{method_name} for what it must do"
        )

    # ------------------------------------------------------------------ the seed list: the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Add ``data`` to the ready queue.

        ``priority``: an ``int`` (negative allowed) or ``None`` (the same as ``0``). A storage with
        ``priority = True`` delivers higher priorities first and is first-in first-out within one priority;
        one with ``priority = False`` ignores it and is first-in first-out. Identical bytes enqueued twice are
        two messages. Durable when it returns (for a persistent storage). Returns ``None``.
        """
        raise self._not_implemented("enqueue")

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Add several ``(data, priority)`` messages to the ready queue, in list order.

        Each item as ``enqueue(data, priority)`` would add it, and in the order given: within one priority they
        are delivered first to last, after what was enqueued before the call. Atomic where the storage can be
        (all of them or none); where it cannot, a failure may leave a prefix of the list enqueued, never a
        message out of order. Storages write them in one round trip or one transaction where they can; this
        is what ``task.map()``, ``group()`` and chords use. Returns ``None``.

        Default: ``enqueue`` for each item, in order.
        """
        for data, priority in items:
            self.enqueue(data, priority)

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message (in the order described in ``enqueue``), or ``None``.

        Atomic: a message is returned to exactly one caller. This is huey's at-most-once path: the message is
        gone from the store when this returns. Storages with ``blocking = True`` may wait a short, bounded time
        (about a second at most) for a message before returning ``None``. Messages in flight are not returned.
        """
        raise self._not_implemented("dequeue")

    def queue_size(self) -> int:
        """Return how many messages are ready (in-flight reservations and scheduled items not counted)."""
        raise self._not_implemented("queue_size")

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Return up to ``limit`` ready messages (all when ``None``) in the order they would be dequeued.

        Nothing is removed or reserved.
        """
        raise self._not_implemented("enqueued_items")

    def flush_queue(self) -> None:
        """Remove every ready message. In-flight reservations, the schedule and data are left alone."""
        raise self._not_implemented("flush_queue")

    # ------------------------------------------------------------------ the seed list: the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Add ``data`` to the schedule, to become ready at ``timestamp`` (epoch seconds, a ``float``).

        ``priority`` is remembered for when the item is moved to the queue by ``enqueue_due``; a storage that
        cannot remember it must still accept the parameter (and may ignore it). Identical bytes added twice are
        two items. Returns ``None``.
        """
        raise self._not_implemented("add_to_schedule")

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Remove and return every scheduled item whose time is ``<= timestamp``, earliest first.

        Atomic: an item is returned to exactly one caller. Items due later stay. Ties keep the order in which
        they were added where the storage can; callers must not depend on it.
        """
        raise self._not_implemented("read_schedule")

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Return up to ``limit`` scheduled items (all when ``None``), earliest first, without removing them."""
        raise self._not_implemented("scheduled_items")

    def schedule_size(self) -> int:
        """Return how many items are in the schedule, due or not."""
        raise self._not_implemented("schedule_size")

    def flush_schedule(self) -> None:
        """Remove every scheduled item. The queue and data are left alone."""
        raise self._not_implemented("flush_schedule")

    # ------------------------------------------------------------------ the seed list: key/value data

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value (and its flags and ttl).

        ``is_result=True`` marks a task result, so that ``task_results`` / ``flush_task_results`` can tell
        results apart from locks, revocations and other bookkeeping. ``ttl``: seconds (``> 0``) after which the value is
        gone as if deleted; ``None`` keeps it until deleted. A storage that cannot expire values must say so in
        its documentation (results then live until read or flushed). Wakes ``wait_result`` callers.
        """
        raise self._not_implemented("put_data")

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """Return the value stored under ``key`` without removing it, or ``EmptyData`` when there is none."""
        raise self._not_implemented("peek_data")

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """Return the value under each of ``keys`` (``EmptyData`` where there is none), in the order given.

        Read-only, like ``peek_data`` for each key; storages read them in one round trip where they can (the
        hub reads a task's two revocation keys with it before every execution). The values need not come from
        one snapshot. Default: ``peek_data`` for each key.
        """
        return [self.peek_data(key) for key in keys]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Remove and return the value under ``key``, or ``EmptyData`` when there is none.

        Atomic read-and-delete: when several callers pop the same key at once, exactly one gets the value. A
        storage whose values leave by expiring may instead return the value and keep it (huey's
        ``RedisExpireStorage`` does): callers that must remove a value use ``delete_data``.
        """
        raise self._not_implemented("pop_data")

    def has_data_for_key(self, key: str) -> bool:
        """Return ``True`` when ``key`` holds a value (``b""`` included; expired values excluded)."""
        raise self._not_implemented("has_data_for_key")

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` under ``key`` only if the key holds no value; return ``True`` if it wrote.

        Atomic (this is how locks are taken): when several callers race on one empty key, exactly one gets
        ``True``. ``ttl`` as in ``put_data``, applied only when written. The value is not a result.
        """
        raise self._not_implemented("put_if_empty")

    def delete_data(self, key: str) -> bool:
        """Delete the value under ``key``; return ``True`` if there was one, ``False`` otherwise."""
        raise self._not_implemented("delete_data")

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Return the keys of live values (results or not) that start with ``prefix``, sorted, at most ``limit``.

        Counters are not values and are left out, and so are expired values. Meant for inspection (the admin
        lists the held unique-task keys with it), not for the hot path: a storage may scan its whole key space.
        No default: the seed list cannot enumerate keys.
        """
        raise self._not_implemented("data_keys")

    def flush_all(self) -> None:
        """Remove everything of this storage's name.

        The queue, the schedule, key/value data (results or not), in-flight reservations, dead letters and
        counters. Other names sharing the same server or database are left alone.
        """
        raise self._not_implemented("flush_all")

    # ------------------------------------------------------------------ huey's extras

    def result_items(self) -> dict[str, bytes]:
        """Return every live key/value pair (huey's *result store*: results, locks, revocations ...) as
        ``{key: value}``; counters are not in it. Expired values are left out. No default: the seed list cannot
        enumerate keys. :meth:`task_results` is the same restricted to results.
        """
        raise self._not_implemented("result_items")

    def result_store_size(self) -> int:
        """Return how many live key/value pairs there are (as ``result_items``). Default: counts ``result_items()``."""
        return len(self.result_items())

    def flush_results(self) -> None:
        """Delete every key/value pair, results or not (huey's meaning); counters, the queue and the schedule stay.

        The default deletes the keys of ``result_items()`` one by one (not atomic as a whole).
        """
        for key in self.result_items():
            self.delete_data(key)

    def task_results(self) -> dict[str, bytes]:
        """Return the live values written with ``is_result=True`` (task results) as ``{key: value}``.

        Locks, revocations and other bookkeeping are left out: this is what the hub lists and counts as results.
        Default: ``result_items()`` — a storage that does not keep the flag treats every value as a result, as
        huey does.
        """
        return self.result_items()

    def task_result_count(self) -> int:
        """Return how many task results there are (as ``task_results``). Default: counts ``task_results()``."""
        return len(self.task_results())

    def flush_task_results(self) -> None:
        """Delete every task result; locks, revocations and other values stay.

        The default deletes the keys of ``task_results()`` one by one (not atomic as a whole).
        """
        for key in self.task_results():
            self.delete_data(key)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` (may be negative or zero) to the counter ``key`` and return the new value.

        A missing (or expired) counter starts at ``0``; ``ttl`` (seconds) is applied only when this call
        creates the counter, so that a window of a rate limit ends at a fixed time. Counters are read and
        changed only through ``incr`` (``incr(key, 0)`` reads one), ``delete_counter`` and ``flush_counters``.
        Counters live apart from the key/value data: a counter and a value with the same key are two things
        (``has_data_for_key`` does not see counters, ``put_data`` does not reset one). ``flush_all`` removes
        them, ``flush_results`` does not. No default: it cannot be made atomic from the seed list.
        """
        raise self._not_implemented("incr")

    def delete_counter(self, key: str) -> None:
        """Delete the counter ``key`` (the next ``incr`` starts again from ``0``); a missing one is no error.

        Key/value data under the same key is left alone. No default (counters cannot be reached through the
        seed list).
        """
        raise self._not_implemented("delete_counter")

    def flush_counters(self) -> None:
        """Delete every counter of this storage; the queue, the schedule and key/value data stay.

        No default (counters cannot be listed through the seed list).
        """
        raise self._not_implemented("flush_counters")

    def wait_result(self, key: str, timeout: float | None = None) -> bytes | EmptyDataType:
        """Wait until ``key`` holds a value and return it (without removing it), or ``EmptyData`` at timeout.

        ``timeout``: seconds; ``None`` waits for ever; ``0`` or less looks once. The default polls
        ``peek_data`` with a backoff from 1 ms to 100 ms; a storage that can be notified should do better.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            value = self.peek_data(key)
            if value is not EmptyData:
                return value
            if deadline is None:
                pause = delay
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return EmptyData
                pause = min(delay, remaining)
            time.sleep(pause)
            delay = min(delay * 2, 0.1)

    # ------------------------------------------------------------------ reliable delivery

    def reserve(self, lease: float) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds and return the reservation, or ``None``.

        Native implementations, atomically: take the next message in dequeue order, move it to in-flight with
        ``deadline = now + lease``, a fresh token, ``attempt`` = previous claims + 1, and record ``reserved_at``.
        A message is reserved by exactly one caller; there is no moment at which it exists only in the caller's
        memory. Blocking storages may wait a short, bounded time, as ``dequeue`` does.

        Default (at most once): ``dequeue()`` and wrap the bytes in a reservation with ``message_id=""``,
        ``token=""``, ``attempt=1`` and ``priority=None``; nothing is kept in flight.
        """
        data = self.dequeue()
        if data is None:
            return None
        now = time.time()
        return Reservation(
            message_id="",
            data=data,
            token="",
            attempt=1,
            deadline=now + lease,
            reserved_at=now,
            priority=None,
        )

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a sign that a message may have become ready; return whether it came.

        For storages whose ``reserve`` does not wait (``blocking = False``): an idle consumer worker calls this
        between empty ``reserve`` calls instead of sleeping, so that it starts a new task within milliseconds
        without polling the store hard. Returns ``True`` as soon as the store may have changed (wake-ups may be
        spurious: the caller simply looks again) or ``wake`` is set, ``False`` after ``timeout``. A storage that
        overrides it should make an idle wait cost next to nothing (see :mod:`django_tasks_q.backends.watch`).

        Default: wait on ``wake`` (or sleep) for ``timeout``; the consumer then backs off as without it.
        """
        if wake is not None:
            return wake.wait(timeout)
        time.sleep(timeout)
        return False

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Acknowledge a finished message: delete it from in-flight and optionally write its result.

        Native implementations, in one atomic step: if the message is in flight under ``reservation.token``,
        delete it and, when ``result = (key, value, ttl)`` is given, store it as ``put_data(key, value,
        is_result=True, ttl=ttl)`` would; return ``True``. Otherwise (stale token: the lease was reclaimed,
        or the message was already acked) change nothing, write no result and return ``False``; the caller
        logs a lost lease.

        Default (at most once): the message is already gone; write the result if given and return ``True``.
        """
        if result is not None:
            key, value, ttl = result
            self.put_data(key, value, is_result=True, ttl=ttl)
        return True

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        """``ack(reservation, result)``, then claim the next ready message for ``lease`` seconds without waiting.

        Returns ``(acked, next)``: ``acked`` is what ``ack`` returns, ``next`` the new reservation or ``None``
        when no message is ready now (native versions do not wait for one, even on a blocking storage: the
        caller then calls ``reserve``). The claim is made whether or not the acknowledgement succeeded. A worker
        finishing one message and taking the next pays one round trip (one transaction) instead of two;
        storages that can do both in one step do, each half keeping its own guarantees. Default: ``ack`` then
        ``reserve`` (which may wait, as ``reserve`` does).
        """
        return self.ack(reservation, result), self.reserve(lease)

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Extend a lease: set its deadline to ``now + lease`` if the token still matches; return whether it did.

        ``False`` (nothing changed) when the message is no longer in flight under this token. Default: ``True``.
        """
        return True

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Give a reserved message back to the queue now (a worker shutting down).

        Native implementations, atomically and only if the token matches: move the message from in-flight back
        to the ready queue *in its original place* (ahead of messages enqueued after it within its priority);
        unless ``count_attempt``, lower its claim count by one, so the next reservation sees the same
        ``attempt`` number (the task never started). With ``count_attempt`` (a task that started but could not
        finish before shutdown) the claim stays counted, so a task that keeps being interrupted still reaches
        the attempt limit. Return ``True``. Stale token: change nothing, return ``False``.

        Default (at most once): ``enqueue(data, priority)`` again, at the back of the queue; ``True``.
        """
        self.enqueue(reservation.data, reservation.priority)
        return True

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Move a reserved message to the dead letters (it must never run, e.g. a bad signature).

        Native implementations, atomically and only if the token matches: delete it from in-flight and add a
        dead letter with ``reason``, ``detail``, ``attempts = reservation.attempt``, the message's priority and
        ``failed_at = now``; return ``True``. Stale token: change nothing, return ``False``.

        Default: ``add_dead_letter(...)`` (the message is already out of the queue) and ``True``; storages
        without dead letters raise ``NotImplementedError`` from there (check ``supports_dead_letters()``).
        """
        self.add_dead_letter(
            reservation.data, reason, detail, attempts=reservation.attempt, priority=reservation.priority
        )
        return True

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim every reservation whose ``deadline <= now``; return what was done, earliest deadline first.

        Each one, atomically: if its claim count is ``>= max_attempts`` (``None``: no cap), it becomes a dead
        letter with reason ``"max_attempts"`` and ``attempts`` = that count; otherwise it goes back to the
        ready queue in its original place (as ``release`` does) *keeping* its claim count, so the next
        reservation's ``attempt`` is one higher. Either way the old token is stale from then on. Safe to run
        from several consumers at once: each expired reservation is reclaimed by exactly one caller.

        A reservation whose deadline lies more than ``progress_span`` seconds after its ``reserved_at`` was
        renewed after its task had run for a while, so its worker vanished mid-task (killed, out of memory,
        pre-empted) rather than crashing at once: it is capped by ``max_reclaims`` instead (reason
        ``"max_reclaims"``). :func:`expired_verdict` decides; the returned ``Reclaimed.reason`` says which cap
        applied. With either of the two ``None``, every reservation is capped by ``max_attempts``.

        Default: ``[]`` (nothing is ever in flight).
        """
        return []

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Return up to ``limit`` current reservations (all when ``None``), earliest deadline first.

        Each as the :class:`Reservation` its holder has (current token, attempt and deadline). Read-only.
        Default: ``[]``.
        """
        return []

    def in_flight_size(self) -> int:
        """Return how many messages are reserved. The default counts ``in_flight_items()``."""
        return len(self.in_flight_items())

    def enqueue_due(self, timestamp: float) -> int:
        """Move every scheduled item whose time is ``<= timestamp`` to the ready queue; return how many.

        Native implementations, atomically: items keep the priority given to ``add_to_schedule`` and enter the
        queue earliest first; no item is lost or moved twice when several schedulers run at once.

        Default: ``read_schedule(timestamp)`` then ``enqueue(data)`` for each. This loses the remembered
        priority (items enter at priority 0) and an item is lost if the process dies between the two steps.
        """
        items = self.read_schedule(timestamp)
        for data in items:
            self.enqueue(data)
        return len(items)

    # ------------------------------------------------------------------ dead letters (no defaults)

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Store ``data`` as a dead letter with ``failed_at = now``; return its new, unique id.

        ``reason``: a short code (``"bad_signature"`` ...); ``detail``: free text; ``attempts``: how many times
        it had been claimed; ``priority``: used if it is requeued. No default (see ``supports_dead_letters``).
        """
        raise self._not_implemented("add_dead_letter")

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters (all when ``None``), oldest first. Read-only. No default."""
        raise self._not_implemented("dead_letters")

    def dead_letter_count(self) -> int:
        """Return how many dead letters there are. The default counts ``dead_letters()``."""
        return len(self.dead_letters())

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter back to the ready queue; return ``False`` if there is no such id.

        Atomically: it leaves the dead letters and enters the queue at the back of its priority with its claim
        count reset to 0 (the next reservation is attempt 1). No default.
        """
        raise self._not_implemented("requeue_dead_letter")

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters and return how many were deleted.

        ``ids`` given: those ids (unknown ones ignored). ``older_than`` given: those with ``failed_at <
        older_than`` (epoch seconds). Both given: those of the ids that are also older. Neither: all. No
        default.
        """
        raise self._not_implemented("purge_dead_letters")
