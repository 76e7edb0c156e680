"""The storage contract as a reusable test suite (see ``django_tasks_q/backends/base.py``).

Every storage runs the same tests. A backend's test module subclasses :class:`StorageContract`, states with the
flags below what the storage does beyond its declared features and provides a ``storage`` fixture that yields a
fresh, empty storage (and cleans up after it)::

    class TestMemoryStorage(StorageContract):
        is_blocking = True

        @pytest.fixture
        def storage(self):
            storage = MemoryStorage("contract", block_timeout=0.05)
            yield storage
            storage.flush_all()
            storage.close()

Tests are skipped only through those flags and the storage's declared ``features`` (each skip names the flag
or the feature), never by backend name. A storage whose records can be damaged
behind its back lists the kinds of damage in ``unreadable_kinds`` and implements ``corrupt_record``; the
unreadable-record cases then run once per kind. The suite assumes nothing about memory
identity (the store may live in another process), compares bytes only, keeps leases and ttls at 0.3 s or less,
simulates lease expiry by passing a later ``now`` to ``requeue_expired`` where it can, and polls with a deadline
instead of sleeping. Thread tests call :meth:`StorageContract.thread_storage` in each thread, so a backend whose
connections are per thread can hand out its own instance there.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from django_tasks_q.backends.base import (
    UNREADABLE_RECORD,
    BaseStorage,
    EmptyData,
    Feature,
    Reclaimed,
    Reservation,
)
from tests.support import eventually

LONG_LEASE = 30.0  # never expires during a test unless a later `now` is passed to requeue_expired
SHORT_LEASE = 0.2  # expires for real, quickly
SHORT_TTL = 0.2
CLOCK_TOLERANCE = 1.0  # how far a storage's timestamps may be from this process's clock
POLL_DEADLINE = 5.0


def msg(i: int | str) -> bytes:
    return f"message-{i}".encode()


BINARY_VALUES = [
    b"",
    b"\x00",
    b"\x00\x01\x02\xff\xfe",
    bytes(range(256)),
    "naïve - ünïcödé ✓".encode(),
    b"\xc3\x28 not utf-8",
    b"x" * (256 * 1024),
]


class StorageContract:
    """Base class of every storage's contract tests. Not collected itself."""

    __test__ = False

    # ---- capability flags: a subclass sets these to what its storage does (its optional abilities come from the
    #      storage's declared `features`)
    supports_priority: ClassVar[bool] = True
    """The storage honours priorities (class flag ``priority``). When ``False`` the suite checks plain FIFO."""
    supports_ttl: ClassVar[bool] = True
    """``put_data`` / ``put_if_empty`` / ``incr`` / ``ack`` results expire after their ttl."""
    supports_results: ClassVar[bool] = True
    """``result_items`` is implemented (and therefore ``result_store_size`` / ``flush_results``)."""
    keeps_result_flag: ClassVar[bool] = True
    """``task_results`` / ``flush_task_results`` tell results (``is_result=True``) from other values; without it
    the defaults treat every value as a result, as huey does."""
    destructive_reads: ClassVar[bool] = True
    """``pop_data`` removes what it returns. ``False`` for the expiring Redis storages, whose values leave by
    expiring (huey's semantics): there ``pop_data`` reads like ``peek_data``."""
    supports_schedule_priority: ClassVar[bool] = True
    """``enqueue_due`` moves due items with the priority given to ``add_to_schedule``."""
    supports_named_isolation: ClassVar[bool] = False
    """:meth:`open_storage` can open a second storage with another name on the same backend."""
    accepts_huey_argument_types: ClassVar[bool] = True
    """Keys may also be UTF-8 ``bytes`` and schedule times ``datetime`` objects, as huey's callers pass them
    (every storage shipped here; a custom storage may take ``str`` keys and epoch seconds only)."""
    is_blocking: ClassVar[bool] = False
    """Class flag ``blocking``: empty ``dequeue`` / ``reserve`` may wait up to ``max_block`` seconds."""
    max_block: ClassVar[float] = 2.0
    """Upper bound for one blocking ``dequeue`` / ``reserve`` on an empty queue (only if ``is_blocking``)."""
    unreadable_kinds: ClassVar[tuple[str, ...]] = ()
    """The kinds of damaged record :meth:`corrupt_record` can make of a stored message (each kind runs the
    unreadable-record cases once). Empty for a storage whose records cannot be damaged behind its back."""

    # ---- hooks a subclass may override

    @pytest.fixture
    def storage(self) -> Any:  # pragma: no cover - every subclass provides it
        raise NotImplementedError("a StorageContract subclass must provide a `storage` fixture")

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        """Open another storage named ``name`` on the same backend as ``storage`` (caller closes it)."""
        raise NotImplementedError

    def thread_storage(self, storage: BaseStorage) -> BaseStorage:
        """Return the storage a worker thread should use (called inside that thread). Default: the same one."""
        return storage

    def close_thread_storage(self, storage: BaseStorage, peer: BaseStorage) -> None:
        """Clean up what :meth:`thread_storage` returned (called inside the thread)."""

    def corrupt_record(self, storage: BaseStorage, data: bytes, kind: str, in_flight: bool) -> None:
        """Damage the stored record of the message ``data`` (ready, or reserved when ``in_flight``) so that the
        storage cannot read it, the way ``kind`` says (one of :attr:`unreadable_kinds`); call ``pytest.skip``
        with the reason when that kind cannot exist in that state."""
        raise NotImplementedError

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run each unreadable-record case once per kind the storage's test module can make."""
        if "unreadable_kind" in metafunc.fixturenames:
            metafunc.parametrize("unreadable_kind", list(metafunc.cls.unreadable_kinds) or ["none"])

    # ---- helpers

    def require(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")

    def require_feature(self, storage: BaseStorage, feature: Feature) -> None:
        if feature not in storage.features:
            pytest.skip(f"{type(storage).__name__} does not declare the feature {feature.value!r}")

    def require_unreadable(self, storage: BaseStorage, kind: str) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        if kind not in self.unreadable_kinds:
            pytest.skip(
                f"{type(self).__name__}.unreadable_kinds is empty: its records cannot be damaged behind its back"
            )

    def run_threads(
        self, storage: BaseStorage, count: int, work: Callable[[BaseStorage, int], Any]
    ) -> list[Any]:
        """Run ``work(storage_for_thread, index)`` in ``count`` threads released together; return results."""
        barrier = threading.Barrier(count)
        results: list[Any] = [None] * count
        errors: list[BaseException] = []

        def target(index: int) -> None:
            try:
                peer = self.thread_storage(storage)
                try:
                    barrier.wait(timeout=10)
                    results[index] = work(peer, index)
                finally:
                    self.close_thread_storage(storage, peer)
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a storage call hung in a thread"
        real_errors = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        if real_errors or errors:
            raise (real_errors or errors)[0]
        return results

    def drain(self, storage: BaseStorage) -> list[bytes]:
        items = []
        while storage.queue_size():
            data = storage.dequeue()
            assert data is not None
            items.append(data)
        return items

    def reserve_one(self, storage: BaseStorage, lease: float = LONG_LEASE) -> Reservation:
        reservation = storage.reserve(lease)
        assert reservation is not None, "expected a message to reserve"
        return reservation

    def expire_all(self, storage: BaseStorage, max_attempts: int | None = 5) -> list[Any]:
        """Reclaim every reservation by passing a `now` far past any deadline."""
        return storage.requeue_expired(time.time() + 3600, max_attempts)

    # ================================================================== flags and basics

    def test_capability_flags_match_the_storage(self, storage: BaseStorage) -> None:
        assert isinstance(storage, BaseStorage)
        assert storage.priority is self.supports_priority
        assert storage.blocking is self.is_blocking
        assert (type(storage).result_items is not BaseStorage.result_items) is self.supports_results
        assert all(isinstance(feature, Feature) for feature in storage.features)
        assert isinstance(storage.name, str)

    def test_empty_storage_reads(self, storage: BaseStorage) -> None:
        now = time.time()
        assert storage.queue_size() == 0
        assert storage.enqueued_items() == []
        assert storage.dequeue() is None
        assert storage.schedule_size() == 0
        assert storage.scheduled_items() == []
        assert storage.read_schedule(now + 3600) == []
        assert storage.enqueue_due(now + 3600) == 0
        assert storage.peek_data("missing") is EmptyData
        assert storage.pop_data("missing") is EmptyData
        assert storage.has_data_for_key("missing") is False
        assert storage.delete_data("missing") is False
        assert storage.reserve(LONG_LEASE) is None
        assert storage.requeue_expired(now + 3600, 5) == []
        assert storage.in_flight_items() == []
        assert storage.in_flight_size() == 0
        if self.supports_results:
            assert storage.result_items() == {}
            assert storage.result_store_size() == 0
        if Feature.DEAD_LETTERS in storage.features:
            assert storage.dead_letters() == []
            assert storage.dead_letter_count() == 0

    def test_empty_dequeue_and_reserve_return_in_bounded_time(self, storage: BaseStorage) -> None:
        allowance = self.max_block if self.is_blocking else 0.5
        for call in (storage.dequeue, lambda: storage.reserve(LONG_LEASE)):
            started = time.monotonic()
            assert call() is None
            assert time.monotonic() - started < allowance

    # ================================================================== the queue

    def test_enqueue_dequeue_roundtrip_is_binary_safe(self, storage: BaseStorage) -> None:
        for value in BINARY_VALUES:
            storage.enqueue(value)
        assert storage.queue_size() == len(BINARY_VALUES)
        received = [storage.dequeue() for _ in BINARY_VALUES]
        assert received == BINARY_VALUES
        assert all(type(item) is bytes for item in received)
        assert storage.queue_size() == 0

    def test_empty_message_is_not_none(self, storage: BaseStorage) -> None:
        storage.enqueue(b"")
        assert storage.dequeue() == b""
        assert storage.dequeue() is None

    def test_fifo_within_one_priority(self, storage: BaseStorage) -> None:
        for i in range(20):
            storage.enqueue(msg(i))
        assert self.drain(storage) == [msg(i) for i in range(20)]

    def test_priority_order_then_fifo(self, storage: BaseStorage) -> None:
        self.require("supports_priority")
        plan = [
            (b"none-1", None),
            (b"zero-1", 0),
            (b"neg-1", -1),
            (b"high-1", 10),
            (b"one-1", 1),
            (b"none-2", None),
            (b"neg-2", -1),
            (b"high-2", 10),
            (b"zero-2", 0),
            (b"neg-big", -100),
        ]
        for data, priority in plan:
            storage.enqueue(data, priority)
        expected = [
            b"high-1",
            b"high-2",
            b"one-1",
            b"none-1",
            b"zero-1",
            b"none-2",
            b"zero-2",
            b"neg-1",
            b"neg-2",
            b"neg-big",
        ]
        assert storage.enqueued_items() == expected
        assert self.drain(storage) == expected

    def test_fractional_priorities_are_truncated(self, storage: BaseStorage) -> None:
        self.require("supports_priority")
        self.require("accepts_huey_argument_types")
        storage.enqueue(b"low", 1.5)  # type: ignore[arg-type]
        storage.enqueue(b"high", 2.5)  # type: ignore[arg-type]
        storage.enqueue(b"one", 1)
        assert [storage.dequeue() for _ in range(3)] == [b"high", b"low", b"one"]

    def test_priority_ignored_when_unsupported(self, storage: BaseStorage) -> None:
        if self.supports_priority:
            pytest.skip(f"{type(self).__name__}.supports_priority is True")
        for i, priority in enumerate([None, 5, -5, 0, 100]):
            storage.enqueue(msg(i), priority)
        assert self.drain(storage) == [msg(i) for i in range(5)]

    # ---- enqueue_many (issue #9)

    def test_enqueue_many_keeps_list_order_after_earlier_messages(self, storage: BaseStorage) -> None:
        storage.enqueue(b"before")
        storage.enqueue_many([(msg(i), None) for i in range(30)])
        storage.enqueue(b"after")
        assert storage.queue_size() == 32
        assert self.drain(storage) == [b"before", *(msg(i) for i in range(30)), b"after"]

    def test_enqueue_many_of_nothing_changes_nothing(self, storage: BaseStorage) -> None:
        storage.enqueue_many([])
        assert storage.queue_size() == 0
        assert storage.dequeue() is None

    def test_enqueue_many_is_binary_safe_and_keeps_duplicates(self, storage: BaseStorage) -> None:
        storage.enqueue_many([(value, None) for value in BINARY_VALUES] + [(b"same", None), (b"same", None)])
        assert self.drain(storage) == [*BINARY_VALUES, b"same", b"same"]

    def test_enqueue_many_with_priorities(self, storage: BaseStorage) -> None:
        plan = [(b"low", -1), (b"none", None), (b"high-1", 5), (b"zero", 0), (b"high-2", 5)]
        storage.enqueue_many(plan)
        if self.supports_priority:
            assert self.drain(storage) == [b"high-1", b"high-2", b"none", b"zero", b"low"]
        else:
            assert self.drain(storage) == [data for data, _ in plan]

    def test_enqueue_many_messages_are_reserved_like_any_other(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue_many([(msg(i), 3) for i in range(3)])
        reservations = [self.reserve_one(storage) for _ in range(3)]
        assert [r.data for r in reservations] == [msg(0), msg(1), msg(2)]
        assert all(r.attempt == 1 and r.token for r in reservations)
        assert len({r.message_id for r in reservations}) == 3
        assert all(storage.ack(r) for r in reservations)
        assert storage.queue_size() == 0 and storage.in_flight_size() == 0

    def test_enqueued_items_order_limit_and_no_removal(self, storage: BaseStorage) -> None:
        for i in range(5):
            storage.enqueue(msg(i))
        assert storage.enqueued_items() == [msg(i) for i in range(5)]
        assert storage.enqueued_items(limit=2) == [msg(0), msg(1)]
        assert storage.enqueued_items(limit=0) == []
        assert storage.enqueued_items(limit=50) == [msg(i) for i in range(5)]
        assert storage.queue_size() == 5
        assert storage.dequeue() == msg(0)

    def test_identical_messages_are_distinct(self, storage: BaseStorage) -> None:
        now = time.time()
        storage.enqueue(b"same")
        storage.enqueue(b"same")
        storage.add_to_schedule(b"same", now - 1)
        storage.add_to_schedule(b"same", now - 1)
        assert storage.queue_size() == 2
        assert storage.schedule_size() == 2
        assert storage.read_schedule(now) == [b"same", b"same"]
        assert self.drain(storage) == [b"same", b"same"]

    def test_flush_queue_only_clears_the_queue(self, storage: BaseStorage) -> None:
        storage.enqueue(msg(1))
        storage.enqueue(msg(2), 3)
        storage.add_to_schedule(msg("later"), time.time() + 3600)
        storage.put_data("k", b"v")
        storage.flush_queue()
        assert storage.queue_size() == 0
        assert storage.dequeue() is None
        assert storage.schedule_size() == 1
        assert storage.peek_data("k") == b"v"

    # ================================================================== the schedule

    def test_read_schedule_returns_due_items_in_time_order(self, storage: BaseStorage) -> None:
        now = time.time()
        storage.add_to_schedule(b"later", now + 1000)
        storage.add_to_schedule(b"exactly-now", now)
        storage.add_to_schedule(b"two-ago", now - 2)
        storage.add_to_schedule(b"one-ago", now - 1)
        assert storage.schedule_size() == 4
        assert storage.queue_size() == 0
        assert storage.read_schedule(now) == [b"two-ago", b"one-ago", b"exactly-now"]
        assert storage.schedule_size() == 1
        assert storage.scheduled_items() == [b"later"]
        assert storage.read_schedule(now) == []
        assert storage.read_schedule(now + 1000) == [b"later"]
        assert storage.schedule_size() == 0
        assert storage.queue_size() == 0

    def test_schedule_takes_datetimes_as_huey_callers_pass_them(self, storage: BaseStorage) -> None:
        self.require("accepts_huey_argument_types")
        # A naive datetime is UTC; an aware one is at its own offset; both sort with epoch seconds.
        naive = datetime.datetime(2000, 1, 2, 3, 4, 5)
        aware = datetime.datetime(2000, 1, 2, 4, 4, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        epoch = naive.replace(tzinfo=datetime.UTC).timestamp()
        storage.add_to_schedule(b"aware-one-second-later", aware)
        storage.add_to_schedule(b"naive", naive)
        storage.add_to_schedule(b"epoch-one-second-earlier", epoch - 1)
        assert storage.read_schedule(naive) == [b"epoch-one-second-earlier", b"naive"]
        assert storage.read_schedule(epoch + 1) == [b"aware-one-second-later"]
        with pytest.raises(TypeError):
            storage.add_to_schedule(b"m", "tomorrow")  # type: ignore[arg-type]

    def test_schedule_is_binary_safe(self, storage: BaseStorage) -> None:
        now = time.time()
        for offset, value in enumerate(BINARY_VALUES):
            storage.add_to_schedule(value, now - 100 + offset)
        assert storage.read_schedule(now) == BINARY_VALUES

    def test_scheduled_items_order_limit_and_no_removal(self, storage: BaseStorage) -> None:
        now = time.time()
        for i in (3, 1, 4, 2, 0):
            storage.add_to_schedule(msg(i), now + 100 + i)
        assert storage.scheduled_items() == [msg(i) for i in range(5)]
        assert storage.scheduled_items(limit=2) == [msg(0), msg(1)]
        assert storage.scheduled_items(limit=0) == []
        assert storage.schedule_size() == 5

    def test_flush_schedule_only_clears_the_schedule(self, storage: BaseStorage) -> None:
        storage.add_to_schedule(msg(1), time.time() - 5)
        storage.add_to_schedule(msg(2), time.time() + 500)
        storage.enqueue(msg(3))
        storage.put_data("k", b"v")
        storage.flush_schedule()
        assert storage.schedule_size() == 0
        assert storage.read_schedule(time.time() + 1000) == []
        assert storage.queue_size() == 1
        assert storage.peek_data("k") == b"v"

    def test_enqueue_due_moves_only_due_items(self, storage: BaseStorage) -> None:
        now = time.time()
        storage.add_to_schedule(b"due-2", now - 1)
        storage.add_to_schedule(b"future", now + 1000)
        storage.add_to_schedule(b"due-1", now - 2)
        storage.add_to_schedule(b"due-now", now)
        assert storage.enqueue_due(now) == 3
        assert storage.scheduled_items() == [b"future"]
        assert storage.enqueue_due(now) == 0
        assert self.drain(storage) == [b"due-1", b"due-2", b"due-now"]

    def test_enqueue_due_keeps_priority(self, storage: BaseStorage) -> None:
        self.require("supports_schedule_priority")
        self.require("supports_priority")
        now = time.time()
        storage.enqueue(b"ready-5", 5)
        storage.add_to_schedule(b"sched-1", now - 3, 1)
        storage.add_to_schedule(b"sched-9", now - 2, 9)
        storage.add_to_schedule(b"sched-none", now - 1)
        storage.add_to_schedule(b"sched-future-99", now + 1000, 99)
        assert storage.enqueue_due(now) == 3
        assert self.drain(storage) == [b"sched-9", b"ready-5", b"sched-1", b"sched-none"]
        assert storage.schedule_size() == 1

    # ================================================================== key/value data

    def test_put_peek_and_overwrite(self, storage: BaseStorage) -> None:
        storage.put_data("k", b"one")
        assert storage.peek_data("k") == b"one"
        assert storage.peek_data("k") == b"one"  # peeking does not remove
        storage.put_data("k", b"two")
        assert storage.peek_data("k") == b"two"

    def test_values_are_binary_safe(self, storage: BaseStorage) -> None:
        for i, value in enumerate(BINARY_VALUES):
            storage.put_data(f"bin-{i}", value)
        for i, value in enumerate(BINARY_VALUES):
            got = storage.peek_data(f"bin-{i}")
            assert type(got) is bytes
            assert got == value

    def test_empty_bytes_is_a_value(self, storage: BaseStorage) -> None:
        storage.put_data("empty", b"")
        assert storage.peek_data("empty") == b""
        assert storage.peek_data("empty") is not EmptyData
        assert storage.has_data_for_key("empty") is True
        assert storage.put_if_empty("empty", b"other") is False
        assert storage.pop_data("empty") == b""
        if self.destructive_reads:
            assert storage.pop_data("empty") is EmptyData
        else:
            assert storage.delete_data("empty") is True
        assert storage.has_data_for_key("empty") is False

    def test_peek_many_reads_each_key_in_order(self, storage: BaseStorage) -> None:
        storage.put_data("a", b"va")
        storage.put_data("b", b"", is_result=True)
        assert storage.peek_many([]) == []
        assert storage.peek_many(["a", "missing", "b", "a"]) == [b"va", EmptyData, b"", b"va"]
        assert storage.peek_data("a") == b"va"  # nothing was removed
        if self.supports_ttl:
            storage.put_data("short", b"v", ttl=SHORT_TTL)
            assert storage.peek_many(["short"]) == [b"v"]
            assert eventually(lambda: storage.peek_many(["short", "a"]) == [EmptyData, b"va"])

    def test_pop_data_removes(self, storage: BaseStorage) -> None:
        self.require("destructive_reads")
        storage.put_data("k", b"v")
        assert storage.pop_data("k") == b"v"
        assert storage.peek_data("k") is EmptyData
        assert storage.pop_data("k") is EmptyData

    def test_pop_data_leaves_the_value_where_reads_are_not_destructive(self, storage: BaseStorage) -> None:
        if self.destructive_reads:
            pytest.skip(f"{type(self).__name__}.destructive_reads is True")
        storage.put_data("k", b"v")
        storage.put_data("r", b"w", is_result=True)
        assert [storage.pop_data("k"), storage.pop_data("k"), storage.pop_data("r")] == [b"v", b"v", b"w"]
        assert storage.pop_data("r") == b"w"
        assert storage.delete_data("k") is True
        assert storage.pop_data("k") is EmptyData

    def test_delete_data_reports_whether_it_deleted(self, storage: BaseStorage) -> None:
        storage.put_data("k", b"v")
        assert storage.delete_data("k") is True
        assert storage.delete_data("k") is False
        assert storage.peek_data("k") is EmptyData

    def test_has_data_for_key(self, storage: BaseStorage) -> None:
        assert storage.has_data_for_key("k") is False
        storage.put_data("k", b"v")
        assert storage.has_data_for_key("k") is True
        storage.delete_data("k")
        assert storage.has_data_for_key("k") is False

    def test_utf8_bytes_keys_name_the_same_value_as_str_keys(self, storage: BaseStorage) -> None:
        self.require("accepts_huey_argument_types")
        storage.put_data(b"k\xc3\xa9", b"v")
        assert storage.peek_data("ké") == b"v"
        assert storage.has_data_for_key(b"k\xc3\xa9") is True
        assert storage.put_if_empty("ké", b"other") is False
        assert storage.pop_data(b"k\xc3\xa9") == b"v"
        assert storage.delete_data(b"k\xc3\xa9") is (not self.destructive_reads)
        assert storage.has_data_for_key("ké") is False
        with pytest.raises(TypeError):
            storage.put_data(b"\xff", b"v")
        with pytest.raises(TypeError):
            storage.put_data(1, b"v")  # type: ignore[arg-type]

    def test_keys_are_independent(self, storage: BaseStorage) -> None:
        keys = ["a", "ab", "a:b", "a b", "A", "ключ:résultat", "x" * 200, "*", "a?", "%"]
        for i, key in enumerate(keys):
            storage.put_data(key, msg(i))
        for i, key in enumerate(keys):
            assert storage.peek_data(key) == msg(i)
        assert storage.delete_data("a") is True
        assert storage.peek_data("ab") == msg(1)
        assert storage.peek_data("A") == msg(4)

    def test_put_if_empty(self, storage: BaseStorage) -> None:
        assert storage.put_if_empty("lock", b"first") is True
        assert storage.put_if_empty("lock", b"second") is False
        assert storage.peek_data("lock") == b"first"
        assert storage.delete_data("lock") is True
        assert storage.put_if_empty("lock", b"third") is True
        assert storage.peek_data("lock") == b"third"

    def test_put_if_empty_race_has_one_winner(self, storage: BaseStorage) -> None:
        results = self.run_threads(storage, 16, lambda s, i: s.put_if_empty("contended", msg(i)))
        assert results.count(True) == 1
        assert results.count(False) == 15
        assert storage.peek_data("contended") == msg(results.index(True))

    def test_pop_data_race_has_one_winner(self, storage: BaseStorage) -> None:
        self.require("destructive_reads")
        for round_ in range(3):
            storage.put_data("prize", msg(round_))
            results = self.run_threads(storage, 16, lambda s, i: s.pop_data("prize"))
            winners = [r for r in results if r is not EmptyData]
            assert winners == [msg(round_)]
            assert storage.has_data_for_key("prize") is False

    def test_ttl_expires_values(self, storage: BaseStorage) -> None:
        self.require("supports_ttl")
        storage.put_data("short", b"v", ttl=SHORT_TTL)
        storage.put_data("forever", b"w")
        assert storage.peek_data("short") == b"v"
        assert eventually(lambda: storage.peek_data("short") is EmptyData)
        assert storage.has_data_for_key("short") is False
        assert storage.pop_data("short") is EmptyData
        assert storage.delete_data("short") is False
        assert storage.peek_data("forever") == b"w"

    def test_overwrite_without_ttl_keeps_the_value(self, storage: BaseStorage) -> None:
        self.require("supports_ttl")
        storage.put_data("k", b"v1", ttl=SHORT_TTL)
        storage.put_data("k", b"v2")
        time.sleep(SHORT_TTL * 2)
        assert storage.peek_data("k") == b"v2"

    def test_put_if_empty_ttl(self, storage: BaseStorage) -> None:
        self.require("supports_ttl")
        taken = time.monotonic()
        assert storage.put_if_empty("lock", b"a", ttl=SHORT_TTL) is True
        refused = storage.put_if_empty("lock", b"b", ttl=SHORT_TTL)
        if time.monotonic() - taken < SHORT_TTL:  # on a loaded machine the lock may have lapsed in between
            assert refused is False
        assert eventually(lambda: storage.put_if_empty("lock", b"c")) is True
        assert storage.peek_data("lock") == b"c"

    # ================================================================== results

    def test_result_items_lists_every_value_but_no_counter(self, storage: BaseStorage) -> None:
        # huey's "result store" is the whole key/value area.
        self.require("supports_results")
        storage.put_data("r1", b"result-1", is_result=True)
        storage.put_data("lock", b"held")
        assert storage.put_if_empty("other-lock", b"") is True
        if Feature.COUNTERS in storage.features:
            storage.incr("counter")
        assert storage.result_items() == {"r1": b"result-1", "lock": b"held", "other-lock": b""}
        assert storage.result_store_size() == 3

    def test_task_results_lists_only_results(self, storage: BaseStorage) -> None:
        self.require("supports_results")
        self.require("keeps_result_flag")
        storage.put_data("r1", b"result-1", is_result=True)
        storage.put_data("r2", b"", is_result=True)
        storage.put_data("lock", b"held")
        assert storage.put_if_empty("other-lock", b"held") is True
        assert storage.task_results() == {"r1": b"result-1", "r2": b""}
        assert storage.task_result_count() == 2
        storage.put_data("r1", b"now a lock")  # overwriting replaces the flag too
        assert storage.task_results() == {"r2": b""}
        assert storage.task_result_count() == 1

    def test_data_keys_lists_live_values_by_exact_prefix(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.KEY_LISTING)
        storage.put_data("unique.b.2", b"id-2")
        storage.put_data("unique.a.1", b"id-1")
        assert storage.put_if_empty("unique.c", b"id-3") is True
        storage.put_data("unique.r", b"result", is_result=True)
        storage.put_data("Unique.upper", b"x")
        storage.put_data("other", b"x")
        if Feature.COUNTERS in storage.features:
            storage.incr("unique.counter")
        assert storage.data_keys("unique.") == ["unique.a.1", "unique.b.2", "unique.c", "unique.r"]
        assert storage.data_keys("unique.", limit=2) == ["unique.a.1", "unique.b.2"]
        assert storage.data_keys() == sorted(["unique.a.1", "unique.b.2", "unique.c", "unique.r", "Unique.upper", "other"])
        storage.delete_data("unique.b.2")
        assert storage.data_keys("unique.b") == []

    def test_data_keys_treats_wildcards_in_the_prefix_literally(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.KEY_LISTING)
        for key in ("a%b_c!", "aXbYc!", "g[1]*?\\x", "g1x"):
            storage.put_data(key, b"v")
        assert storage.data_keys("a%b_") == ["a%b_c!"]
        assert storage.data_keys("g[1]*?") == ["g[1]*?\\x"]

    def test_data_keys_leaves_out_expired_values(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.KEY_LISTING)
        self.require("supports_ttl")
        storage.put_data("unique.short", b"v", ttl=SHORT_TTL)
        storage.put_data("unique.long", b"v", ttl=60)
        assert storage.data_keys("unique.") == ["unique.long", "unique.short"]
        assert eventually(lambda: storage.data_keys("unique.") == ["unique.long"])

    def test_flush_results_removes_every_value_and_keeps_counters_and_messages(self, storage: BaseStorage) -> None:
        self.require("supports_results")
        storage.put_data("r1", b"x", is_result=True)
        storage.put_data("lock", b"held")
        storage.enqueue(msg(1))
        storage.add_to_schedule(msg(2), time.time() + 100)
        if Feature.COUNTERS in storage.features:
            storage.incr("counter", 5)
        storage.flush_results()
        assert storage.result_items() == {}
        assert storage.result_store_size() == 0
        assert storage.peek_data("r1") is EmptyData
        assert storage.peek_data("lock") is EmptyData
        assert (storage.queue_size(), storage.schedule_size()) == (1, 1)
        if Feature.COUNTERS in storage.features:
            assert storage.incr("counter", 0) == 5

    def test_flush_task_results_keeps_other_data(self, storage: BaseStorage) -> None:
        self.require("supports_results")
        self.require("keeps_result_flag")
        storage.put_data("r1", b"x", is_result=True)
        storage.put_data("r2", b"y", is_result=True)
        storage.put_data("lock", b"held")
        storage.enqueue(msg(1))
        storage.flush_task_results()
        assert storage.task_results() == {}
        assert storage.task_result_count() == 0
        assert storage.result_items() == {"lock": b"held"}
        assert storage.peek_data("r1") is EmptyData
        assert storage.peek_data("lock") == b"held"
        assert storage.queue_size() == 1

    def test_expired_results_are_not_listed(self, storage: BaseStorage) -> None:
        self.require("supports_results")
        self.require("supports_ttl")
        storage.put_data("short", b"x", is_result=True, ttl=SHORT_TTL)
        storage.put_data("long", b"y", is_result=True)
        assert storage.result_items() == {"short": b"x", "long": b"y"}
        assert eventually(lambda: storage.result_items() == {"long": b"y"})
        assert storage.result_store_size() == 1

    # ================================================================== counters

    def test_incr(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.COUNTERS)
        assert storage.incr("c") == 1
        assert storage.incr("c", 5) == 6
        assert storage.incr("c", -2) == 4
        assert storage.incr("c", 0) == 4
        assert storage.incr("other", 3) == 3
        assert storage.incr("c") == 5

    def test_incr_ttl_starts_a_new_window(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.COUNTERS)
        self.require("supports_ttl")
        assert storage.incr("window", ttl=SHORT_TTL) == 1
        assert storage.incr("window", ttl=SHORT_TTL) == 2
        assert eventually(lambda: storage.incr("window", 0) == 0)
        assert storage.incr("window") == 1

    def test_delete_counter_and_flush_counters(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.COUNTERS)
        storage.incr("a", 5)
        storage.incr("b", 7)
        storage.put_data("a", b"value")
        storage.delete_counter("a")
        storage.delete_counter("missing")
        assert storage.incr("a") == 1
        assert storage.incr("b", 0) == 7
        assert storage.peek_data("a") == b"value"
        storage.flush_counters()
        assert storage.incr("a", 0) == 0
        assert storage.incr("b", 0) == 0
        assert storage.peek_data("a") == b"value"

    def test_counters_live_apart_from_values(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.COUNTERS)
        assert storage.incr("shared") == 1
        assert storage.has_data_for_key("shared") is False
        storage.put_data("shared", b"value")
        assert storage.incr("shared") == 2
        assert storage.pop_data("shared") == b"value"
        assert storage.delete_data("shared") is (not self.destructive_reads)
        assert storage.incr("shared") == 3

    def test_incr_is_atomic(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.COUNTERS)

        def work(s: BaseStorage, index: int) -> list[int]:
            return [s.incr("hits") for _ in range(50)]

        results = self.run_threads(storage, 16, work)
        seen = sorted(value for values in results for value in values)
        assert seen == list(range(1, 16 * 50 + 1))
        assert storage.incr("hits", 0) == 800

    # ================================================================== wait_result

    def test_wait_result_returns_an_existing_value_without_removing_it(self, storage: BaseStorage) -> None:
        storage.put_data("r", b"done", is_result=True)
        assert storage.wait_result("r", timeout=1.0) == b"done"
        assert storage.peek_data("r") == b"done"
        storage.put_data("e", b"")
        assert storage.wait_result("e", timeout=0) == b""

    def test_wait_result_wakes_when_another_thread_writes(self, storage: BaseStorage) -> None:
        def writer() -> None:
            time.sleep(0.1)
            peer = self.thread_storage(storage)
            try:
                peer.put_data("awaited", b"value", is_result=True)
            finally:
                self.close_thread_storage(storage, peer)

        thread = threading.Thread(target=writer, daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            assert storage.wait_result("awaited", timeout=POLL_DEADLINE) == b"value"
            assert time.monotonic() - started < POLL_DEADLINE
        finally:
            thread.join(timeout=10)
        assert storage.peek_data("awaited") == b"value"

    def test_wait_result_times_out_with_empty_data(self, storage: BaseStorage) -> None:
        started = time.monotonic()
        assert storage.wait_result("never", timeout=0.2) is EmptyData
        elapsed = time.monotonic() - started
        assert 0.15 <= elapsed < 2.0
        assert storage.wait_result("never", timeout=0) is EmptyData

    # ================================================================== flush_all and names

    def test_flush_all_clears_everything(self, storage: BaseStorage) -> None:
        now = time.time()
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        storage.add_to_schedule(msg(3), now + 100)
        storage.put_data("result", b"r", is_result=True)
        storage.put_data("lock", b"l")
        if Feature.COUNTERS in storage.features:
            storage.incr("counter", 7)
        if Feature.RELIABLE in storage.features:
            self.reserve_one(storage)
        if Feature.DEAD_LETTERS in storage.features:
            storage.add_dead_letter(b"dead", "test")
        storage.flush_all()
        assert storage.queue_size() == 0
        assert storage.dequeue() is None
        assert storage.schedule_size() == 0
        assert storage.peek_data("result") is EmptyData
        assert storage.peek_data("lock") is EmptyData
        assert storage.in_flight_size() == 0
        assert storage.in_flight_items() == []
        if self.supports_results:
            assert storage.result_items() == {}
        if Feature.COUNTERS in storage.features:
            assert storage.incr("counter") == 1
        if Feature.DEAD_LETTERS in storage.features:
            assert storage.dead_letter_count() == 0

    def test_names_are_isolated(self, storage: BaseStorage) -> None:
        self.require("supports_named_isolation")
        other = self.open_storage(storage, storage.name + "-other")
        try:
            other.flush_all()
            storage.enqueue(msg("mine"))
            storage.put_data("k", b"mine")
            storage.add_to_schedule(msg("mine"), time.time() + 100)
            assert other.queue_size() == 0
            assert other.peek_data("k") is EmptyData
            assert other.schedule_size() == 0
            other.put_data("k", b"theirs")
            other.enqueue(msg("theirs"))
            other.flush_all()
            assert storage.peek_data("k") == b"mine"
            assert storage.queue_size() == 1
            assert storage.schedule_size() == 1
        finally:
            other.flush_all()
            other.close()

    # ================================================================== reliable delivery: every storage

    def test_reserve_delivers_in_dequeue_order_and_ack_succeeds(self, storage: BaseStorage) -> None:
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        if self.supports_priority:
            storage.enqueue(msg("urgent"), 9)
        expected = ([msg("urgent")] if self.supports_priority else []) + [msg(1), msg(2)]
        for data in expected:
            reservation = self.reserve_one(storage)
            assert reservation.data == data
            assert reservation.attempt >= 1
            assert storage.ack(reservation) is True
        assert storage.reserve(LONG_LEASE) is None
        assert storage.queue_size() == 0

    # ================================================================== reliable delivery: native

    def test_reserve_returns_a_full_reservation(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(b"\x00payload\xff", 3)
        before = time.time()
        reservation = self.reserve_one(storage, lease=LONG_LEASE)
        after = time.time()
        assert isinstance(reservation, Reservation)
        assert reservation.data == b"\x00payload\xff"
        assert isinstance(reservation.message_id, str) and reservation.message_id
        assert isinstance(reservation.token, str) and reservation.token
        assert reservation.attempt == 1
        if self.supports_priority:
            assert reservation.priority == 3
        assert before - CLOCK_TOLERANCE <= reservation.reserved_at <= after + CLOCK_TOLERANCE
        assert reservation.deadline == pytest.approx(
            reservation.reserved_at + LONG_LEASE, abs=CLOCK_TOLERANCE
        )

    def test_reserved_message_is_invisible_to_others(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        self.reserve_one(storage)
        assert storage.queue_size() == 0
        assert storage.enqueued_items() == []
        assert storage.dequeue() is None
        assert storage.reserve(LONG_LEASE) is None
        assert storage.in_flight_size() == 1

    def test_ack_removes_and_a_second_ack_fails(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage)
        assert storage.ack(reservation) is True
        assert storage.in_flight_size() == 0
        assert storage.queue_size() == 0
        assert storage.ack(reservation) is False
        assert self.expire_all(storage) == []
        assert storage.reserve(LONG_LEASE) is None

    def test_forged_reservations_are_refused(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        real = self.reserve_one(storage)
        wrong_token = Reservation(
            real.message_id, real.data, "not-the-token", 1, real.deadline, real.reserved_at
        )
        no_token = Reservation(real.message_id, real.data, "", 1, real.deadline, real.reserved_at)
        unknown = Reservation("no-such-message", real.data, real.token, 1, real.deadline, real.reserved_at)
        for forged in (wrong_token, no_token, unknown):
            assert storage.renew(forged, LONG_LEASE) is False
            assert storage.release(forged) is False
            assert storage.ack(forged) is False
            if Feature.DEAD_LETTERS in storage.features:
                assert storage.bury(forged, "test") is False
        assert storage.in_flight_size() == 1
        assert storage.queue_size() == 0
        assert storage.ack(real) is True

    def test_reservation_is_a_plain_value(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage)
        copy = pickle.loads(pickle.dumps(reservation))
        assert copy == reservation
        assert storage.renew(copy, LONG_LEASE) is True
        rebuilt = Reservation(**dataclasses.asdict(copy))
        assert storage.ack(rebuilt) is True
        assert storage.in_flight_size() == 0

    def test_tokens_are_fresh_and_message_id_is_stable(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        first = self.reserve_one(storage)
        assert storage.release(first) is True
        second = self.reserve_one(storage)
        assert self.expire_all(storage)
        third = self.reserve_one(storage)
        assert first.message_id == second.message_id == third.message_id
        assert len({first.token, second.token, third.token}) == 3
        assert storage.ack(third) is True

    def test_renew_extends_the_lease(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage, lease=SHORT_LEASE)
        old_deadline = reservation.deadline
        assert storage.renew(reservation, LONG_LEASE) is True
        (current,) = storage.in_flight_items()
        assert current.deadline > old_deadline + LONG_LEASE / 2
        assert current.token == reservation.token
        assert current.attempt == 1
        assert storage.requeue_expired(old_deadline + 0.05, 5) == []
        assert storage.requeue_expired(old_deadline + SHORT_LEASE * 2, 5) == []
        assert storage.in_flight_size() == 1
        assert storage.ack(reservation) is True

    def test_release_restores_position_without_counting_the_attempt(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        for i in range(3):
            storage.enqueue(msg(i))
        first = self.reserve_one(storage)
        assert first.data == msg(0)
        storage.enqueue(msg(3))
        assert storage.release(first) is True
        assert storage.release(first) is False
        assert storage.in_flight_size() == 0
        assert storage.enqueued_items() == [msg(i) for i in range(4)]
        again = self.reserve_one(storage)
        assert again.data == msg(0)
        assert again.attempt == 1
        assert again.token != first.token
        assert storage.ack(again) is True

    def test_release_counting_the_attempt_keeps_the_claim(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        first = self.reserve_one(storage)
        assert storage.release(first, count_attempt=True) is True
        assert storage.release(first, count_attempt=True) is False
        second = self.reserve_one(storage)
        assert second.data == msg(1)
        assert second.attempt == 2
        assert storage.ack(second) is True

    def test_release_keeps_priority(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require("supports_priority")
        storage.enqueue(b"high", 5)
        storage.enqueue(b"low", 0)
        high = self.reserve_one(storage)
        assert high.data == b"high"
        storage.enqueue(b"mid", 3)
        storage.enqueue(b"high-later", 5)
        assert storage.release(high) is True
        assert storage.enqueued_items() == [b"high", b"high-later", b"mid", b"low"]

    def test_lease_expires_in_real_time(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage, lease=SHORT_LEASE)
        assert storage.requeue_expired(time.time(), 5) == []  # not yet
        reclaimed: list[Any] = []
        assert eventually(
            lambda: bool(reclaimed.extend(storage.requeue_expired(time.time(), 5)) or reclaimed)
        )
        assert len(reclaimed) == 1
        assert reclaimed[0].dead_lettered is False
        assert reclaimed[0].reservation.message_id == reservation.message_id
        assert reclaimed[0].reservation.data == msg(1)
        assert storage.in_flight_size() == 0
        assert storage.queue_size() == 1
        again = self.reserve_one(storage)
        assert again.attempt == 2
        assert storage.ack(again) is True

    def test_requeue_expired_leaves_live_leases_alone(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        short = self.reserve_one(storage, lease=SHORT_LEASE)
        long = self.reserve_one(storage, lease=LONG_LEASE)
        reclaimed = storage.requeue_expired(short.deadline + 0.05, 5)
        assert [r.reservation.message_id for r in reclaimed] == [short.message_id]
        assert storage.in_flight_size() == 1
        assert storage.ack(long) is True
        assert storage.ack(short) is False

    def test_requeue_expired_restores_order_and_counts_the_attempt(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        for i in range(4):
            storage.enqueue(msg(i))
        first = self.reserve_one(storage)
        second = self.reserve_one(storage)
        assert (first.data, second.data) == (msg(0), msg(1))
        reclaimed = self.expire_all(storage)
        assert sorted(r.reservation.data for r in reclaimed) == [msg(0), msg(1)]
        assert not any(r.dead_lettered for r in reclaimed)
        assert storage.enqueued_items() == [msg(i) for i in range(4)]
        again = [self.reserve_one(storage) for _ in range(4)]
        assert [r.data for r in again] == [msg(i) for i in range(4)]
        assert [r.attempt for r in again] == [2, 2, 1, 1]
        for reservation in again:
            assert storage.ack(reservation) is True

    def test_fencing_stale_holder_cannot_touch_the_new_reservation(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        a = self.reserve_one(storage, lease=SHORT_LEASE)
        reclaimed = storage.requeue_expired(a.deadline + 0.01, 5)
        assert [r.reservation.token for r in reclaimed] == [a.token]
        b = self.reserve_one(storage)
        assert b.message_id == a.message_id
        assert b.token != a.token
        assert b.attempt == 2
        assert storage.ack(a) is False
        assert storage.renew(a, LONG_LEASE) is False
        assert storage.release(a) is False
        if Feature.DEAD_LETTERS in storage.features:
            assert storage.bury(a, "stale") is False
            assert storage.dead_letter_count() == 0
        (still,) = storage.in_flight_items()
        assert (still.message_id, still.token, still.attempt) == (b.message_id, b.token, 2)
        assert storage.queue_size() == 0
        assert storage.ack(b) is True
        assert storage.in_flight_size() == 0

    def test_ack_writes_the_result_atomically(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage)
        assert storage.ack(reservation, ("result:1", b"\x00answer", None)) is True
        assert storage.peek_data("result:1") == b"\x00answer"
        assert storage.in_flight_size() == 0
        if self.supports_results:
            assert storage.result_items() == {"result:1": b"\x00answer"}

    def test_stale_ack_writes_no_result(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        a = self.reserve_one(storage)
        self.expire_all(storage)
        b = self.reserve_one(storage)
        assert storage.ack(a, ("result:stale", b"from-a", None)) is False
        assert storage.peek_data("result:stale") is EmptyData
        assert storage.ack(b, ("result:stale", b"from-b", None)) is True
        assert storage.peek_data("result:stale") == b"from-b"

    def test_ack_and_reserve_acknowledges_and_claims_the_next(self, storage: BaseStorage) -> None:
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        first = self.reserve_one(storage)
        acked, second = storage.ack_and_reserve(first, ("result:1", b"one", None), LONG_LEASE)
        assert acked is True
        assert second is not None and second.data == msg(2) and second.attempt == 1
        assert storage.peek_data("result:1") == b"one"
        if Feature.RELIABLE in storage.features:
            assert second.token and second.token != first.token
            assert [r.message_id for r in storage.in_flight_items()] == [second.message_id]
        started = time.monotonic()
        acked, nothing = storage.ack_and_reserve(second, None, LONG_LEASE)
        assert (acked, nothing) == (True, None)
        assert time.monotonic() - started < (self.max_block if self.is_blocking and Feature.RELIABLE not in storage.features else 0.5)
        assert storage.queue_size() == 0 and storage.in_flight_size() == 0

    def test_ack_and_reserve_with_a_stale_reservation_still_claims(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        stale = self.reserve_one(storage)
        self.expire_all(storage)
        fresh = self.reserve_one(storage)
        assert fresh.data == msg(1)
        acked, following = storage.ack_and_reserve(stale, ("result:stale", b"from-stale", None), LONG_LEASE)
        assert acked is False
        assert following is not None and following.data == msg(2)
        assert storage.peek_data("result:stale") is EmptyData
        assert storage.ack(fresh) is True and storage.ack(following) is True
        assert storage.in_flight_size() == 0

    def test_ack_result_ttl(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require("supports_ttl")
        storage.enqueue(msg(1))
        reservation = self.reserve_one(storage)
        assert storage.ack(reservation, ("result:short", b"v", SHORT_TTL)) is True
        assert storage.peek_data("result:short") == b"v"
        assert eventually(lambda: storage.peek_data("result:short") is EmptyData)

    def test_attempt_cap_dead_letters_after_exactly_max_attempts(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        storage.enqueue(b"poison", 2)
        storage.enqueue(b"healthy")
        attempts = []
        for _ in range(10):
            reservation = self.reserve_one(storage)
            assert reservation.data == b"poison"  # it keeps its place ahead of the healthy message
            attempts.append(reservation.attempt)
            reclaimed = storage.requeue_expired(reservation.deadline + 0.01, 3)
            assert len(reclaimed) == 1
            if reclaimed[0].dead_lettered:
                break
        assert attempts == [1, 2, 3]
        assert reclaimed[0].reservation.attempt == 3
        assert storage.enqueued_items() == [b"healthy"]
        assert storage.in_flight_size() == 0
        (letter,) = storage.dead_letters()
        assert letter.data == b"poison"
        assert letter.reason == "max_attempts"
        assert letter.attempts == 3
        assert storage.dead_letter_count() == 1

    def test_a_worker_that_vanished_mid_task_is_capped_by_max_reclaims(self, storage: BaseStorage) -> None:
        """A reservation renewed well after its claim (its task was running when its worker vanished) counts
        against ``max_reclaims``; one renewed only right after its claim, or never, against ``max_attempts``."""
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        lease, span = 10.0, 12.5
        storage.enqueue(b"long", 2)
        storage.enqueue(b"crashes at once")

        def expire(renew_for: float, **caps: Any) -> Reclaimed:
            reservation = self.reserve_one(storage, lease)
            assert storage.renew(reservation, renew_for)
            (reclaimed,) = storage.requeue_expired(time.time() + 3600, **caps)
            assert reclaimed.reservation.attempt == reservation.attempt
            return reclaimed

        caps = {"max_attempts": 2, "max_reclaims": 4, "progress_span": span}
        outcomes = [expire(3 * lease, **caps) for _ in range(4)]  # renewed: deadline 30 s after the claim
        assert [(item.reservation.data, item.dead_lettered) for item in outcomes] == [
            (b"long", False),
            (b"long", False),
            (b"long", False),
            (b"long", True),
        ]
        assert outcomes[-1].reason == "max_reclaims"
        outcomes = [expire(lease, **caps) for _ in range(2)]  # renewed at once: not progress
        assert [(item.reservation.data, item.dead_lettered) for item in outcomes] == [
            (b"crashes at once", False),
            (b"crashes at once", True),
        ]
        assert outcomes[-1].reason == "max_attempts"
        assert storage.queue_size() == storage.in_flight_size() == 0
        letters = {letter.data: letter for letter in storage.dead_letters()}
        assert (letters[b"long"].reason, letters[b"long"].attempts) == ("max_reclaims", 4)
        assert "vanished" in letters[b"long"].detail and "4" in letters[b"long"].detail
        assert (letters[b"crashes at once"].reason, letters[b"crashes at once"].attempts) == ("max_attempts", 2)

    def test_without_max_reclaims_a_renewed_reservation_is_capped_by_max_attempts(
        self, storage: BaseStorage
    ) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        storage.enqueue(b"long")
        for attempt in (1, 2):
            reservation = self.reserve_one(storage, 10.0)
            assert storage.renew(reservation, 30.0)
            (reclaimed,) = storage.requeue_expired(time.time() + 3600, 2)
            assert reclaimed.dead_lettered is (attempt == 2)
        assert reclaimed.reason == "max_attempts"
        assert [letter.reason for letter in storage.dead_letters()] == ["max_attempts"]

    def test_no_attempt_cap_when_max_attempts_is_none(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        for expected_attempt in range(1, 8):
            reservation = self.reserve_one(storage)
            assert reservation.attempt == expected_attempt
            (reclaimed,) = self.expire_all(storage, max_attempts=None)
            assert reclaimed.dead_lettered is False
        assert storage.queue_size() == 1

    def test_bury_moves_to_dead_letters(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        storage.enqueue(b"\xffbad", 4)
        first = self.reserve_one(storage)
        self.expire_all(storage)
        reservation = self.reserve_one(storage)
        before = time.time()
        assert storage.bury(reservation, "bad_signature", "Traceback: ...") is True
        assert storage.bury(reservation, "bad_signature") is False
        assert storage.ack(reservation) is False
        assert storage.bury(first, "stale") is False
        assert storage.in_flight_size() == 0
        assert storage.queue_size() == 0
        (letter,) = storage.dead_letters()
        assert letter.data == b"\xffbad"
        assert letter.reason == "bad_signature"
        assert letter.detail == "Traceback: ..."
        assert letter.attempts == 2
        assert before - CLOCK_TOLERANCE <= letter.failed_at <= time.time() + CLOCK_TOLERANCE

    def test_in_flight_items_and_size(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        for i in range(3):
            storage.enqueue(msg(i))
        late = self.reserve_one(storage, lease=LONG_LEASE)
        early = self.reserve_one(storage, lease=SHORT_LEASE)
        middle = self.reserve_one(storage, lease=LONG_LEASE / 2)
        assert storage.in_flight_size() == 3
        items = storage.in_flight_items()
        assert [(r.message_id, r.token, r.data, r.attempt) for r in items] == [
            (r.message_id, r.token, r.data, r.attempt) for r in (early, middle, late)
        ]
        assert all(isinstance(r, Reservation) for r in items)
        assert [r.message_id for r in storage.in_flight_items(limit=2)] == [
            early.message_id,
            middle.message_id,
        ]
        assert storage.in_flight_items(limit=0) == []
        assert storage.queue_size() == 0
        for reservation in (late, early, middle):
            assert storage.ack(reservation) is True
        assert storage.in_flight_items() == []

    def test_dequeue_does_not_leave_anything_in_flight(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        assert storage.dequeue() == msg(1)
        assert storage.in_flight_size() == 0
        assert self.expire_all(storage) == []

    def test_flush_queue_keeps_reservations(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        storage.enqueue(msg(1))
        storage.enqueue(msg(2))
        reservation = self.reserve_one(storage)
        storage.flush_queue()
        assert storage.queue_size() == 0
        assert storage.in_flight_size() == 1
        assert storage.ack(reservation) is True

    def test_concurrent_reservers_get_each_message_exactly_once(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        total = 500
        for i in range(total):
            storage.enqueue(msg(i), i % 3)

        def work(s: BaseStorage, index: int) -> list[bytes]:
            got = []
            while True:
                reservation = s.reserve(LONG_LEASE)
                if reservation is None:
                    if s.queue_size() == 0:
                        return got
                    continue
                assert s.ack(reservation) is True
                got.append(reservation.data)

        results = self.run_threads(storage, 8, work)
        delivered = [data for got in results for data in got]
        assert len(delivered) == total
        assert sorted(delivered) == sorted(msg(i) for i in range(total))
        assert storage.queue_size() == 0
        assert storage.in_flight_size() == 0

    def test_concurrent_reapers_reclaim_each_reservation_once(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        total = 40
        for i in range(total):
            storage.enqueue(msg(i))
        held = [self.reserve_one(storage) for _ in range(total)]
        future = time.time() + 3600
        results = self.run_threads(storage, 8, lambda s, i: s.requeue_expired(future, 5))
        reclaimed_ids = [r.reservation.message_id for got in results for r in got]
        assert sorted(reclaimed_ids) == sorted(r.message_id for r in held)
        assert storage.queue_size() == total
        assert storage.in_flight_size() == 0
        assert storage.enqueued_items() == [msg(i) for i in range(total)]

    # ================================================================== dead letters

    def test_dead_letters_list_count_and_limit(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        before = time.time()
        ids = [
            storage.add_dead_letter(msg(i), f"reason-{i}", f"detail-{i}", attempts=i, priority=i)
            for i in range(4)
        ]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == 4
        assert storage.dead_letter_count() == 4
        letters = storage.dead_letters()
        assert [d.id for d in letters] == ids
        assert [(d.data, d.reason, d.detail, d.attempts) for d in letters] == [
            (msg(i), f"reason-{i}", f"detail-{i}", i) for i in range(4)
        ]
        assert all(before - CLOCK_TOLERANCE <= d.failed_at <= time.time() + CLOCK_TOLERANCE for d in letters)
        assert [d.id for d in storage.dead_letters(limit=2)] == ids[:2]
        assert storage.dead_letters(limit=0) == []
        assert storage.queue_size() == 0

    def test_dead_letters_are_binary_safe(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        for value in BINARY_VALUES:
            storage.add_dead_letter(value, "decode_error", "détail ✓")
        assert [d.data for d in storage.dead_letters()] == BINARY_VALUES

    def test_requeue_dead_letter_resets_attempts(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        dead_id = storage.add_dead_letter(b"again", "max_attempts", attempts=5)
        storage.add_dead_letter(b"stays", "bad_signature")
        assert storage.requeue_dead_letter("no-such-id") is False
        assert storage.requeue_dead_letter(dead_id) is True
        assert storage.requeue_dead_letter(dead_id) is False
        assert storage.dead_letter_count() == 1
        assert [d.data for d in storage.dead_letters()] == [b"stays"]
        assert storage.enqueued_items() == [b"again"]
        if Feature.RELIABLE in storage.features:
            reservation = self.reserve_one(storage)
            assert reservation.data == b"again"
            assert reservation.attempt == 1
            assert storage.ack(reservation) is True
        else:
            assert storage.dequeue() == b"again"

    def test_requeued_dead_letter_goes_to_the_back_of_its_priority(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        self.require("supports_priority")
        dead_id = storage.add_dead_letter(b"dead-high", "test", priority=5)
        storage.enqueue(b"low", 0)
        storage.enqueue(b"high", 5)
        assert storage.requeue_dead_letter(dead_id) is True
        assert storage.enqueued_items() == [b"high", b"dead-high", b"low"]

    def test_reaped_and_buried_letters_can_be_requeued(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.RELIABLE)
        self.require_feature(storage, Feature.DEAD_LETTERS)
        storage.enqueue(b"capped")
        reservation = self.reserve_one(storage)
        (reclaimed,) = self.expire_all(storage, max_attempts=1)
        assert reclaimed.dead_lettered is True
        (letter,) = storage.dead_letters()
        assert letter.attempts == 1
        assert storage.requeue_dead_letter(letter.id) is True
        again = self.reserve_one(storage)
        assert again.data == b"capped"
        assert again.attempt == 1
        assert storage.ack(reservation) is False
        assert storage.bury(again, "bad_signature") is True
        (letter,) = storage.dead_letters()
        assert (letter.reason, letter.attempts) == ("bad_signature", 1)
        assert storage.requeue_dead_letter(letter.id) is True
        assert storage.queue_size() == 1

    def test_purge_dead_letters_by_ids(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        ids = [storage.add_dead_letter(msg(i), "test") for i in range(4)]
        assert storage.purge_dead_letters(ids=[ids[0], ids[2], "unknown"]) == 2
        assert [d.id for d in storage.dead_letters()] == [ids[1], ids[3]]
        assert storage.purge_dead_letters(ids=[]) == 0
        assert storage.dead_letter_count() == 2

    def test_purge_dead_letters_by_age(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        old = storage.add_dead_letter(b"old", "test")
        assert eventually(lambda: time.time() > storage.dead_letters()[0].failed_at + 0.05)
        cutoff = time.time()
        assert eventually(lambda: time.time() > cutoff + 0.05)
        new = storage.add_dead_letter(b"new", "test")
        assert storage.purge_dead_letters(older_than=cutoff - 3600) == 0
        assert storage.purge_dead_letters(ids=[new], older_than=cutoff) == 0
        assert storage.purge_dead_letters(older_than=cutoff) == 1
        assert [d.id for d in storage.dead_letters()] == [new]
        assert old not in [d.id for d in storage.dead_letters()]

    def test_purge_all_dead_letters(self, storage: BaseStorage) -> None:
        self.require_feature(storage, Feature.DEAD_LETTERS)
        for i in range(3):
            storage.add_dead_letter(msg(i), "test")
        storage.enqueue(msg("ready"))
        assert storage.purge_dead_letters() == 3
        assert storage.dead_letter_count() == 0
        assert storage.purge_dead_letters() == 0
        assert storage.queue_size() == 1

    # ---- records the storage cannot read: set aside, never retried forever

    @staticmethod
    def unreadable_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
        return [record for record in caplog.records if UNREADABLE_RECORD in record.getMessage()]

    def assert_one_unreadable_letter(self, storage: BaseStorage, caplog: pytest.LogCaptureFixture) -> None:
        letters = storage.dead_letters()
        assert [letter.reason for letter in letters] == [UNREADABLE_RECORD]
        assert letters[0].detail, "the dead letter must say what was wrong with the record"
        logged = self.unreadable_logs(caplog)
        assert len(logged) == 1, [record.getMessage() for record in logged]
        assert logged[0].levelno == logging.WARNING

    def test_an_unreadable_ready_record_is_dead_lettered_and_the_queue_goes_on(
        self, storage: BaseStorage, unreadable_kind: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.require_unreadable(storage, unreadable_kind)
        caplog.set_level(logging.WARNING)
        for item in (msg(0), msg("bad"), msg(1), msg(2)):
            storage.enqueue(item)
        self.corrupt_record(storage, msg("bad"), unreadable_kind, in_flight=False)
        first = storage.reserve(LONG_LEASE)
        assert first is not None and first.data == msg(0)
        delivered = [first.data]
        current = first
        while True:
            acked, following = storage.ack_and_reserve(current, None, LONG_LEASE)
            assert acked, "the acknowledgement must not depend on the claim of the next message"
            if following is None:
                break
            delivered.append(following.data)
            current = following
        assert delivered == [msg(0), msg(1), msg(2)]
        assert storage.reserve(LONG_LEASE) is None, "the damaged record must not be retried"
        assert storage.queue_size() == 0
        assert storage.in_flight_size() == 0
        assert storage.requeue_expired(time.time() + 10 * LONG_LEASE, 5) == []
        self.assert_one_unreadable_letter(storage, caplog)
        storage.enqueue(msg(3))
        assert self.reserve_one(storage).data == msg(3)

    def test_an_unreadable_reserved_record_is_dead_lettered_by_the_reaper(
        self, storage: BaseStorage, unreadable_kind: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.require_unreadable(storage, unreadable_kind)
        caplog.set_level(logging.WARNING)
        for item in (msg(0), msg("bad"), msg(1)):
            storage.enqueue(item)
        held = [self.reserve_one(storage) for _ in range(3)]
        assert [r.data for r in held] == [msg(0), msg("bad"), msg(1)]
        self.corrupt_record(storage, msg("bad"), unreadable_kind, in_flight=True)
        reclaimed = storage.requeue_expired(time.time() + 10 * LONG_LEASE, None)
        assert [(r.reservation.data, r.dead_lettered) for r in reclaimed] == [(msg(0), False), (msg(1), False)]
        assert storage.ack(held[1]) is False
        assert storage.in_flight_size() == 0
        assert [self.reserve_one(storage).data for _ in range(2)] == [msg(0), msg(1)]
        assert storage.reserve(LONG_LEASE) is None
        self.assert_one_unreadable_letter(storage, caplog)
