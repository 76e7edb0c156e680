"""Custom storages built on BaseStorage: the defaults of the contract, and what a storage author sees.

Three subjects:

* ``CustomSqliteStorage``, the custom-storage example of the seed (``storage-backends.md``), unchanged except
  for being a subclass of our ``BaseStorage``: it implements only ``enqueue`` / ``dequeue`` / ``queue_size``.
* ``SeedOnlyStorage``: a complete huey-style storage (the seed list and ``result_items``, no priorities, no
  reliable delivery, no dead letters, no ``incr``), declaring no features, run through the whole contract suite;
  it shows that the suite's flags and skips work and that the base class's defaults suffice.
* The base module itself: ``EmptyData``, the dataclasses and the declaration of features.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import heapq
import itertools
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from django_tasks_q.backends.base import (
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Feature,
    Reclaimed,
    Reservation,
    new_token,
    normalize_priority,
)
from django_tasks_q.exceptions import ConfigurationError
from tests.support.storage_contract import StorageContract

# ---------------------------------------------------------------------------- the seed's example


class CustomSqliteStorage(BaseStorage):
    def __init__(self, name, filename="custom.db"):
        super().__init__(name)
        self.filename = filename
        self._initialize_db()

    def _initialize_db(self):
        conn = sqlite3.connect(self.filename)
        conn.execute("""
            CREATE TABLE IF NOT EXISTS tasks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                data TEXT NOT NULL,
                priority INTEGER DEFAULT 0,
                created_at REAL NOT NULL
            )
        """)
        conn.commit()
        conn.close()

    def enqueue(self, data, priority=None):
        conn = sqlite3.connect(self.filename)
        conn.execute(
            "INSERT INTO tasks (data, priority, created_at) VALUES (?, ?, ?)",
            (data.decode("utf-8"), priority or 0, time.time()),
        )
        conn.commit()
        conn.close()

    def dequeue(self):
        conn = sqlite3.connect(self.filename)
        cursor = conn.execute("""
            SELECT id, data FROM tasks
            ORDER BY priority DESC, created_at ASC
            LIMIT 1
        """)
        row = cursor.fetchone()
        if row:
            task_id, data = row
            conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            conn.commit()
            conn.close()
            return data.encode("utf-8")
        conn.close()
        return None

    def queue_size(self):
        conn = sqlite3.connect(self.filename)
        cursor = conn.execute("SELECT COUNT(*) FROM tasks")
        count = cursor.fetchone()[0]
        conn.close()
        return count


@pytest.fixture
def custom(tmp_path: Any) -> CustomSqliteStorage:
    return CustomSqliteStorage("custom-app", filename=str(tmp_path / "custom_tasks.db"))


class TestCustomSqliteStorage:
    def test_queue_methods_work(self, custom: CustomSqliteStorage) -> None:
        assert custom.name == "custom-app"
        assert custom.queue_size() == 0
        assert custom.dequeue() is None
        custom.enqueue(b"normal")
        custom.enqueue(b"urgent", 10)
        assert custom.queue_size() == 2
        assert custom.dequeue() == b"urgent"
        assert custom.dequeue() == b"normal"
        assert custom.dequeue() is None
        assert custom.queue_size() == 0

    def test_flags_are_the_base_defaults(self) -> None:
        assert CustomSqliteStorage.blocking is False
        assert CustomSqliteStorage.priority is True
        assert CustomSqliteStorage.features == frozenset()

    def test_reserve_falls_back_to_at_most_once(self, custom: CustomSqliteStorage) -> None:
        custom.enqueue(b"task")
        before = time.time()
        reservation = custom.reserve(60)
        assert reservation is not None
        assert reservation.data == b"task"
        assert reservation.token == ""
        assert reservation.message_id == ""
        assert reservation.attempt == 1
        assert reservation.priority is None
        assert reservation.reserved_at >= before
        assert reservation.deadline == pytest.approx(reservation.reserved_at + 60)
        assert custom.queue_size() == 0  # gone from the store already: at most once
        assert custom.in_flight_size() == 0
        assert custom.in_flight_items() == []
        assert custom.renew(reservation, 60) is True
        assert custom.ack(reservation) is True
        assert custom.requeue_expired(time.time() + 3600, 5) == []
        assert custom.reserve(60) is None

    def test_release_falls_back_to_enqueue(self, custom: CustomSqliteStorage) -> None:
        custom.enqueue(b"task")
        reservation = custom.reserve(60)
        assert reservation is not None
        assert custom.release(reservation) is True
        assert custom.queue_size() == 1
        assert custom.dequeue() == b"task"

    @pytest.mark.parametrize(
        ("method", "args"),
        [
            ("enqueued_items", ()),
            ("flush_queue", ()),
            ("add_to_schedule", (b"x", 0.0)),
            ("read_schedule", (0.0,)),
            ("scheduled_items", ()),
            ("schedule_size", ()),
            ("flush_schedule", ()),
            ("put_data", ("k", b"v")),
            ("peek_data", ("k",)),
            ("pop_data", ("k",)),
            ("has_data_for_key", ("k",)),
            ("put_if_empty", ("k", b"v")),
            ("delete_data", ("k",)),
            ("flush_all", ()),
            ("result_items", ()),
            ("incr", ("k",)),
            ("add_dead_letter", (b"x", "reason")),
            ("dead_letters", ()),
            ("requeue_dead_letter", ("id",)),
            ("purge_dead_letters", ()),
        ],
    )
    def test_unimplemented_methods_say_so_clearly(
        self, custom: CustomSqliteStorage, method: str, args: tuple[Any, ...]
    ) -> None:
        with pytest.raises(NotImplementedError) as info:
            getattr(custom, method)(*args)
        message = str(info.value)
        assert f"CustomSqliteStorage does not implement {method}()" in message
        assert f"BaseStorage.{method}" in message

    @pytest.mark.parametrize(
        ("call", "missing"),
        [
            (lambda s: s.result_store_size(), "result_items"),
            (lambda s: s.flush_results(), "result_items"),
            (lambda s: s.dead_letter_count(), "dead_letters"),
            (lambda s: s.enqueue_due(time.time()), "read_schedule"),
            (lambda s: s.wait_result("k", 0.01), "peek_data"),
            (lambda s: s.ack(Reservation("", b"x", "", 1, 0.0, 0.0), ("k", b"v", None)), "put_data"),
            (lambda s: s.bury(Reservation("", b"x", "", 1, 0.0, 0.0), "bad_signature"), "add_dead_letter"),
        ],
    )
    def test_defaults_built_on_missing_methods_name_the_missing_one(
        self, custom: CustomSqliteStorage, call: Any, missing: str
    ) -> None:
        with pytest.raises(NotImplementedError, match=rf"does not implement {missing}\(\)"):
            call(custom)


# ---------------------------------------------------------------------------- a huey-style complete storage


class SeedOnlyStorage(BaseStorage):
    """The seed list plus ``result_items``, thread-safe, FIFO only: everything else from the base defaults."""

    priority = False

    def __init__(self, name: str = "huey", **storage_kwargs: Any) -> None:
        super().__init__(name, **storage_kwargs)
        self._lock = threading.Lock()
        self._queue: collections.deque[bytes] = collections.deque()
        self._schedule: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._data: dict[str, tuple[bytes, bool, float | None]] = {}

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        with self._lock:
            self._queue.append(data)

    def dequeue(self) -> bytes | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def queue_size(self) -> int:
        return len(self._queue)

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        with self._lock:
            return list(self._queue)[:limit]

    def flush_queue(self) -> None:
        with self._lock:
            self._queue.clear()

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        with self._lock:
            heapq.heappush(self._schedule, (timestamp, next(self._seq), data))

    def read_schedule(self, timestamp: float) -> list[bytes]:
        with self._lock:
            due = []
            while self._schedule and self._schedule[0][0] <= timestamp:
                due.append(heapq.heappop(self._schedule)[2])
            return due

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        with self._lock:
            return [item[2] for item in sorted(self._schedule)][:limit]

    def schedule_size(self) -> int:
        return len(self._schedule)

    def flush_schedule(self) -> None:
        with self._lock:
            self._schedule.clear()

    def _get(self, key: str) -> tuple[bytes, bool, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[2] is not None and item[2] <= time.time():
            del self._data[key]
            return None
        return item

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        with self._lock:
            self._data[key] = (value, is_result, None if ttl is None else time.time() + ttl)

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        with self._lock:
            item = self._get(key)
            return EmptyData if item is None else item[0]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        with self._lock:
            item = self._get(key)
            if item is None:
                return EmptyData
            del self._data[key]
            return item[0]

    def has_data_for_key(self, key: str) -> bool:
        with self._lock:
            return self._get(key) is not None

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._lock:
            if self._get(key) is not None:
                return False
            self._data[key] = (value, False, None if ttl is None else time.time() + ttl)
            return True

    def delete_data(self, key: str) -> bool:
        with self._lock:
            return self._get(key) is not None and self._data.pop(key) is not None

    def flush_all(self) -> None:
        with self._lock:
            self._queue.clear()
            self._schedule.clear()
            self._data.clear()

    def result_items(self) -> dict[str, bytes]:
        with self._lock:
            items = {key: self._get(key) for key in list(self._data)}
            return {key: item[0] for key, item in items.items() if item is not None}


class TestSeedOnlyStorageContract(StorageContract):
    __test__ = True

    supports_priority = False
    accepts_huey_argument_types = False
    keeps_result_flag = False
    supports_schedule_priority = False

    @pytest.fixture
    def storage(self) -> Iterator[SeedOnlyStorage]:
        storage = SeedOnlyStorage("contract")
        yield storage
        storage.flush_all()


class TestBaseDefaults:
    def test_a_subclass_overriding_peek_data_reads_many_keys_through_it(self) -> None:
        from django_tasks_q import TaskQueue
        from django_tasks_q.backends.blackhole import BlackHoleStorage

        class Audited(BlackHoleStorage):  # its parent reads many keys in a batch of its own
            def peek_data(self, key: str) -> bytes | EmptyDataType:
                seen.append(key)
                return EmptyData

        class Batched(Audited):
            def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
                return [b"batched" for _ in keys]

        seen: list[str] = []
        assert Audited("audited").peek_many(["a", "b"]) == [EmptyData, EmptyData] and seen == ["a", "b"]
        # The hub's revocation check (the one made before each run) goes through the override too.
        queue = TaskQueue("audited", storage_class=Audited)
        call = queue.task(name="noop")(lambda: None).s()
        seen.clear()
        assert queue.is_revoked(call) is False and len(seen) == 2 and any(call.id in key for key in seen)
        # A subclass that gives its own peek_many keeps it.
        seen.clear()
        assert Batched("batched").peek_many(["a"]) == [b"batched"] and seen == []

    def test_default_wait_result_polls_until_written(self) -> None:
        storage = SeedOnlyStorage()
        timer = threading.Timer(0.1, storage.put_data, args=("k", b"v"))
        timer.start()
        try:
            started = time.monotonic()
            assert storage.wait_result("k", timeout=5) == b"v"
            assert time.monotonic() - started < 1.0
        finally:
            timer.join()
        assert storage.peek_data("k") == b"v"

    def test_default_enqueue_due_loses_priority_as_documented(self) -> None:
        storage = SeedOnlyStorage()
        now = time.time()
        storage.add_to_schedule(b"a", now - 2, 9)
        storage.add_to_schedule(b"b", now - 1, 1)
        storage.add_to_schedule(b"later", now + 100)
        assert storage.enqueue_due(now) == 2
        assert storage.enqueued_items() == [b"a", b"b"]
        assert storage.scheduled_items() == [b"later"]

    def test_default_release_enqueues_at_the_back(self) -> None:
        storage = SeedOnlyStorage()
        storage.enqueue(b"first")
        storage.enqueue(b"second")
        reservation = storage.reserve(30)
        assert reservation is not None
        assert storage.release(reservation) is True
        assert storage.enqueued_items() == [b"second", b"first"]

    def test_default_ack_writes_the_result(self) -> None:
        storage = SeedOnlyStorage()
        storage.enqueue(b"m")
        reservation = storage.reserve(30)
        assert reservation is not None
        assert storage.ack(reservation, ("result", b"42", None)) is True
        assert storage.result_items() == {"result": b"42"}

    def test_default_result_helpers(self) -> None:
        storage = SeedOnlyStorage()
        storage.put_data("r", b"1", is_result=True)
        storage.put_data("lock", b"x")
        assert storage.result_store_size() == 2
        # Without a result flag of its own, a huey-style storage's values all count as task results.
        assert storage.task_results() == {"r": b"1", "lock": b"x"}
        assert storage.task_result_count() == 2
        storage.flush_task_results()
        assert storage.result_items() == {}
        storage.put_data("lock", b"x")
        storage.flush_results()
        assert storage.peek_data("lock") is EmptyData

    def test_default_bury_uses_add_dead_letter(self) -> None:
        recorded: list[tuple[Any, ...]] = []

        class WithDeadLetters(SeedOnlyStorage):
            features = frozenset({"dead_letters"})

            def add_dead_letter(self, data, reason, detail="", attempts=0, priority=None):  # type: ignore[override]
                recorded.append((data, reason, detail, attempts, priority))
                return "dl-1"

            def dead_letters(self, limit=None):  # type: ignore[override]
                return []

            def requeue_dead_letter(self, dead_letter_id):  # type: ignore[override]
                return False

            def purge_dead_letters(self, ids=None, older_than=None):  # type: ignore[override]
                return 0

        assert WithDeadLetters.features == {Feature.DEAD_LETTERS}
        storage = WithDeadLetters()
        storage.enqueue(b"bad")
        reservation = storage.reserve(30)
        assert reservation is not None
        assert storage.bury(reservation, "bad_signature", "detail") is True
        assert recorded == [(b"bad", "bad_signature", "detail", 1, None)]
        assert storage.dead_letter_count() == 0


# ---------------------------------------------------------------------------- the base module


class TestBaseModule:
    def test_empty_data_is_a_distinct_singleton(self) -> None:
        assert EmptyData is not None
        assert EmptyData != b""
        assert EmptyData != None  # noqa: E711
        assert not isinstance(EmptyData, bytes)
        assert repr(EmptyData) == "EmptyData"
        assert str(EmptyData) == "EmptyData"
        assert not EmptyData
        assert isinstance(EmptyData, EmptyDataType)
        assert list(EmptyDataType) == [EmptyData]
        assert pickle.loads(pickle.dumps(EmptyData)) is EmptyData
        assert copy.copy(EmptyData) is EmptyData
        assert copy.deepcopy(EmptyData) is EmptyData

    def test_dataclasses_are_frozen_values(self) -> None:
        reservation = Reservation("id", b"data", "token", 1, 10.0, 5.0)
        assert reservation.priority is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            reservation.token = "other"  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(reservation)) == reservation
        letter = DeadLetter("dl", b"x", "bad_signature", "trace", 2, 1.0)
        assert letter.priority is None
        reclaimed = Reclaimed(reservation, dead_lettered=False)
        assert reclaimed.reservation == reservation
        for obj in (reservation, letter, reclaimed):
            assert not hasattr(obj, "__dict__")  # slots
        assert [f.name for f in dataclasses.fields(Reservation)] == [
            "message_id",
            "data",
            "token",
            "attempt",
            "deadline",
            "reserved_at",
            "priority",
            "peeked",
        ]
        assert reservation.peeked is None
        assert [f.name for f in dataclasses.fields(DeadLetter)] == [
            "id",
            "data",
            "reason",
            "detail",
            "attempts",
            "failed_at",
            "priority",
        ]
        assert [f.name for f in dataclasses.fields(Reclaimed)] == ["reservation", "dead_lettered", "reason"]

    def test_base_storage_accepts_name_and_options(self) -> None:
        storage = BaseStorage()
        assert storage.name == "huey"
        assert BaseStorage("app").name == "app"
        with pytest.raises(ConfigurationError, match=r"BaseStorage\('app'\): unknown option\(s\) host, port"):
            BaseStorage("app", host="refused", port=1)
        assert (BaseStorage.blocking, BaseStorage.priority, BaseStorage.features) == (False, True, frozenset())
        assert repr(BaseStorage("app")) == "<BaseStorage name='app'>"
        storage.close()
        storage.close()

    def test_base_storage_methods_raise_naming_the_class(self) -> None:
        with pytest.raises(NotImplementedError, match=r"^BaseStorage does not implement enqueue\(\)"):
            BaseStorage().enqueue(b"x")

    def test_an_unknown_feature_is_refused_when_the_class_is_defined(self) -> None:
        with pytest.raises(TypeError, match=r"Typo\.features: unknown feature 'relaible' \(known: reliable, "):

            class Typo(SeedOnlyStorage):
                features = frozenset({"relaible"})

        with pytest.raises(TypeError, match=r"Bare\.features must be a frozenset of feature names"):

            class Bare(SeedOnlyStorage):
                features = "reliable"  # type: ignore[assignment]

    def test_a_feature_without_its_methods_is_refused_naming_class_feature_and_method(self) -> None:
        with pytest.raises(TypeError, match=r"^Counting declares the feature 'counters' but does not implement "
                           r"delete_counter\(\) \(it inherits BaseStorage's default\)$"):

            class Counting(SeedOnlyStorage):
                features = frozenset({Feature.COUNTERS})

                def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
                    return amount

    def test_a_feature_whose_method_lacks_its_parameter_is_refused(self) -> None:
        from django_tasks_q.backends.memory import MemoryStorage

        with pytest.raises(TypeError, match=r"OldReaper declares the feature 'reap_by_progress' but its "
                           r"requeue_expired\(\) takes no max_reclaims, progress_span parameter"):

            class OldReaper(MemoryStorage):  # inherits the declaration, overrides the method without the keywords
                def requeue_expired(self, now: float, max_attempts: int | None) -> list[Reclaimed]:  # type: ignore[override]
                    return []

        class DeclaredWithout(MemoryStorage):
            features = MemoryStorage.features - {Feature.REAP_BY_PROGRESS}

            def requeue_expired(self, now: float, max_attempts: int | None) -> list[Reclaimed]:  # type: ignore[override]
                return []

        assert Feature.REAP_BY_PROGRESS not in DeclaredWithout.features

    def test_building_blocks_declare_nothing_and_the_class_that_joins_them_is_checked(self) -> None:
        class Counters(BaseStorage):  # a part: no declaration, nothing to check
            def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
                return amount

            def delete_counter(self, key: str) -> None:
                return None

        class Listing(BaseStorage):
            def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
                return []

        class Joined(Counters, Listing, SeedOnlyStorage):
            features = frozenset({"counters", "key_listing"})

            def flush_counters(self) -> None:
                return None

        assert Counters.features == frozenset()
        assert Joined.features == {Feature.COUNTERS, Feature.KEY_LISTING}
        assert all(type(feature) is Feature for feature in Joined.features)  # names become members

    def test_helpers(self) -> None:
        assert normalize_priority(None) == 0
        assert normalize_priority(-3) == -3
        with pytest.raises(TypeError):
            normalize_priority(True)
        # huey's storages truncate a fractional priority rather than refuse it; NaN and infinity have no int.
        assert normalize_priority(2.9) == 2
        assert normalize_priority(-1.5) == -1
        for bad in (float("nan"), float("inf"), "1"):
            with pytest.raises(TypeError):
                normalize_priority(bad)  # type: ignore[arg-type]
        token, other = new_token(), new_token()
        assert len(token) == 32 and token != other
