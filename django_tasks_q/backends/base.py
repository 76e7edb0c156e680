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
succeed and report nothing in flight. Delivery is then at most once, and the storage does not declare the
feature ``reliable``, so a system check can say so. Storages that implement the extension natively declare it
and override its methods with atomic versions (see :mod:`~django_tasks_q.backends.features`).

Writing a storage
-----------------

Subclass :class:`BaseStorage`, implement the seed list (``enqueue`` ... ``flush_all``), then whatever else you
can. Every method's docstring (here and in :mod:`~django_tasks_q.backends.delivery` for the reliable-delivery
extension) says what it must do, return and guarantee. Methods that the base class
cannot provide raise ``NotImplementedError`` naming your class and the method. Declare what your storage can do
beyond the seed list in the class attribute ``features`` (:class:`~django_tasks_q.backends.features.Feature`):
the hub and the system checks read that declaration, checked when the class is defined. Raise
:class:`~django_tasks_q.backends.errors.StorageError` (chaining the cause) when the store cannot be reached;
refuse bad options with :class:`~django_tasks_q.backends.errors.ConfigurationError` naming them, and report
settings mistakes before anything is built with :meth:`BaseStorage.check_options`.
The reusable test-suite ``tests/support/storage_contract.py`` checks a storage against this contract.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from . import arguments, records
from .arguments import *  # noqa: F403  (the checks every storage applies: part of the contract's namespace)
from .delivery import DeliveryContract
from .errors import ConfigurationError
from .features import Feature, declared_features
from .options import constructor_options, refuse_unknown_options
from .records import *  # noqa: F403  (the values storages hand the hub: part of the contract's namespace)
from .records import EmptyData, EmptyDataType

__all__ = ["BaseStorage", "Feature", *arguments.__all__, *records.__all__]


class BaseStorage(DeliveryContract):
    """Base class and contract of every storage. See the module documentation for the model.

    Class attributes (override them in a subclass):

    ``blocking``
        ``True`` when ``dequeue()`` and ``reserve()`` wait a short while for a message when the queue is empty
        (so the consumer need not sleep between polls). ``False``: they return at once.
    ``priority``
        ``True`` when the storage honours priorities (highest first, FIFO within one). ``False``: plain FIFO.
    ``features``
        What the storage can do beyond huey's method list: a frozenset of
        :class:`~django_tasks_q.backends.features.Feature` members (or their names), checked when the class is
        defined. Empty by default: at most once, no dead letters, as huey.

    Thread safety: the consumer calls one storage instance from several threads at once; every method must be
    safe to call concurrently, and the atomicity promised below must also hold between processes for any
    storage that can be shared between processes.
    """

    blocking: ClassVar[bool] = False
    priority: ClassVar[bool] = True
    features: ClassVar[frozenset[Feature]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the class's ``features`` against its methods (see :func:`declared_features`).

        A subclass that overrides ``peek_data`` but not ``peek_many`` reads several keys through its own
        ``peek_data``: a batched read inherited from its parent would bypass the override.
        """
        super().__init_subclass__(**kwargs)
        if "peek_data" in cls.__dict__ and "peek_many" not in cls.__dict__:
            cls.peek_many = BaseStorage.peek_many  # type: ignore[method-assign]  # set per class on purpose
        cls.features = declared_features(cls, BaseStorage)

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
                f"it accepts {', '.join(sorted(constructor_options(type(self), root=BaseStorage) or ())) or 'no options'}"
            )
        self.name = name

    def close(self) -> None:
        """Release connections, file handles and threads. The default does nothing.

        Calling it twice must be harmless. The storage need not be usable afterwards.
        """

    def startup_warnings(self) -> list[str]:
        """Return what an operator should know about this store's durability, as sentences; ``[]`` if nothing.

        The consumer calls it once at start and logs each sentence as a warning: a store that
        may lose or evict acknowledged data breaks at-least-once delivery whatever the storage does (a Redis
        server without an append-only file, or one that evicts keys under memory pressure). It must not raise:
        a store that cannot be asked (unreachable, the command disabled) says so in a sentence or returns
        ``[]``. Default: ``[]``.
        """
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    @classmethod
    def check_options(cls, options: Mapping[str, Any], *, where: str) -> list[ConfigurationError]:
        """Return what is wrong with ``options`` as this storage's settings, without building anything; ``[]``.

        ``options`` are the keyword arguments settings give the constructor (``OPTIONS``, merged with the
        parameters of ``URL``); ``where`` names the queue's settings (``"TASKS_Q['emails']"``). Each problem is
        a :class:`~django_tasks_q.backends.errors.ConfigurationError` whose ``check_id`` is the system check
        that reports it and whose message names the setting: the system checks report them all, before a
        queue is ever built. A storage that needs more than its options (an installed app, a package)
        overrides it and adds its own problems to ``super().check_options(...)``.

        Default: an :class:`~django_tasks_q.backends.errors.UnknownOptions` (check ``django_tasks_q.E005``) for
        keywords that no constructor along the class hierarchy takes by name. A storage that hands extra
        keywords on to a client library overrides it to accept those too.
        """
        accepted = constructor_options(cls, root=BaseStorage)
        return list(refuse_unknown_options(cls, options, accepted, where=f"{where}['OPTIONS']"))

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
