"""MemoryStorage: the storage contract, plus what only an in-process storage can promise."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from django_tasks_q.backends.base import BaseStorage, EmptyData
from django_tasks_q.backends.memory import MemoryStorage
from django_tasks_q.exceptions import ConfigurationError
from tests.support.storage_contract import StorageContract


class TestMemoryStorage(StorageContract):
    __test__ = True

    is_blocking = True
    max_block = 1.0
    supports_named_isolation = True

    @pytest.fixture
    def storage(self) -> Iterator[MemoryStorage]:
        storage = MemoryStorage("contract", block_timeout=0.05)
        yield storage
        storage.flush_all()
        storage.close()

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        return MemoryStorage(name, block_timeout=0.05)


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        box["started"] = time.monotonic()
        box["value"] = fn()
        box["returned"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


class TestMemoryBlocking:
    def test_blocking_reserve_wakes_promptly_on_enqueue(self) -> None:
        storage = MemoryStorage("blocking", block_timeout=5.0)
        thread, box = _in_thread(lambda: storage.reserve(30))
        time.sleep(0.1)  # let the thread start waiting
        assert thread.is_alive()
        enqueued_at = time.monotonic()
        storage.enqueue(b"wake up")
        thread.join(timeout=5)
        assert box["value"].data == b"wake up"
        assert box["returned"] - enqueued_at < 0.1  # typically well under 1 ms; slack for a loaded machine

    def test_blocking_dequeue_wakes_promptly_on_enqueue(self) -> None:
        storage = MemoryStorage("blocking", block_timeout=5.0)
        thread, box = _in_thread(storage.dequeue)
        time.sleep(0.1)
        enqueued_at = time.monotonic()
        storage.enqueue(b"wake up")
        thread.join(timeout=5)
        assert box["value"] == b"wake up"
        assert box["returned"] - enqueued_at < 0.1

    @pytest.mark.parametrize("method", ["enqueue_due", "release", "requeue_expired", "requeue_dead_letter"])
    def test_every_way_into_the_queue_wakes_a_waiter(self, method: str) -> None:
        storage = MemoryStorage("blocking", block_timeout=5.0)
        now = time.time()
        if method == "enqueue_due":
            storage.add_to_schedule(b"m", now - 1)
            trigger = lambda: storage.enqueue_due(now)  # noqa: E731
        elif method in ("release", "requeue_expired"):
            storage.enqueue(b"m")
            held = storage.reserve(30)
            assert held is not None
            if method == "release":
                trigger = lambda: storage.release(held)  # noqa: E731
            else:
                trigger = lambda: storage.requeue_expired(now + 3600, 5)  # noqa: E731
        else:
            dead_id = storage.add_dead_letter(b"m", "test")
            trigger = lambda: storage.requeue_dead_letter(dead_id)  # noqa: E731
        thread, box = _in_thread(lambda: storage.reserve(30))
        time.sleep(0.1)
        assert thread.is_alive()
        triggered_at = time.monotonic()
        trigger()
        thread.join(timeout=5)
        assert box["value"].data == b"m"
        assert box["returned"] - triggered_at < 0.1

    def test_empty_reserve_waits_for_block_timeout(self) -> None:
        storage = MemoryStorage("blocking", block_timeout=0.2)
        started = time.monotonic()
        assert storage.reserve(30) is None
        assert 0.15 <= time.monotonic() - started < 1.0

    def test_zero_block_timeout_does_not_wait(self) -> None:
        storage = MemoryStorage("blocking", block_timeout=0)
        started = time.monotonic()
        assert storage.dequeue() is None
        assert storage.reserve(30) is None
        assert time.monotonic() - started < 0.1

    def test_wait_result_wakes_promptly(self) -> None:
        storage = MemoryStorage("blocking")
        thread, box = _in_thread(lambda: storage.wait_result("k", timeout=5.0))
        time.sleep(0.1)
        written_at = time.monotonic()
        storage.put_data("k", b"v", is_result=True)
        thread.join(timeout=5)
        assert box["value"] == b"v"
        assert box["returned"] - written_at < 0.1

    def test_wait_result_without_timeout_wakes_on_ack_result(self) -> None:
        storage = MemoryStorage("blocking")
        storage.enqueue(b"m")
        held = storage.reserve(30)
        assert held is not None
        thread, box = _in_thread(lambda: storage.wait_result("k", timeout=None))
        time.sleep(0.05)
        assert storage.ack(held, ("k", b"done", None)) is True
        thread.join(timeout=5)
        assert box["value"] == b"done"


class TestMemorySpecifics:
    def test_instances_do_not_share_data(self) -> None:
        one, two = MemoryStorage("same-name"), MemoryStorage("same-name")
        one.enqueue(b"m")
        one.put_data("k", b"v")
        assert two.queue_size() == 0
        assert two.peek_data("k") is EmptyData

    def test_flags_and_defaults(self) -> None:
        storage = MemoryStorage()
        assert storage.name == "huey"
        assert storage.block_timeout == 1.0
        assert (MemoryStorage.blocking, MemoryStorage.priority) == (True, True)
        assert MemoryStorage.features == {
            "reliable", "dead_letters", "counters", "key_listing", "reap_by_progress", "process_local"
        }
        assert "MemoryStorage" in repr(storage)

    def test_unknown_options_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="MemoryStorage\\('x'\\): unknown option\\(s\\) some_option"):
            MemoryStorage("x", some_option=1)

    def test_negative_block_timeout_is_refused(self) -> None:
        with pytest.raises(ValueError):
            MemoryStorage(block_timeout=-1)

    @pytest.mark.parametrize("bad", ["text", bytearray(b"x"), None, 1])
    def test_non_bytes_are_refused(self, bad: Any) -> None:
        storage = MemoryStorage()
        with pytest.raises(TypeError):
            storage.enqueue(bad)
        with pytest.raises(TypeError):
            storage.add_to_schedule(bad, time.time())
        with pytest.raises(TypeError):
            storage.put_data("k", bad)
        with pytest.raises(TypeError):
            storage.put_if_empty("k", bad)
        assert storage.queue_size() == 0
        assert storage.schedule_size() == 0
        assert not storage.has_data_for_key("k")

    @pytest.mark.parametrize("bad", [float("nan"), "1", True])
    def test_non_int_priorities_are_refused(self, bad: Any) -> None:
        storage = MemoryStorage()
        with pytest.raises(TypeError):
            storage.enqueue(b"m", bad)
        assert storage.queue_size() == 0

    @pytest.mark.parametrize("ttl", [0, -1])
    def test_non_positive_ttl_is_refused(self, ttl: float) -> None:
        storage = MemoryStorage()
        with pytest.raises(ValueError):
            storage.put_data("k", b"v", ttl=ttl)
        assert not storage.has_data_for_key("k")

    def test_expired_entries_are_swept_on_writes(self) -> None:
        storage = MemoryStorage()
        for i in range(100):
            storage.put_data(f"lock-{i}", b"x", ttl=0.05)
            storage.incr(f"window-{i}", ttl=0.05)
        time.sleep(0.1)
        storage.put_data("trigger", b"y")
        assert set(storage._data) == {"trigger"}
        assert storage._counters == {}

    def test_close_is_harmless_twice(self) -> None:
        storage = MemoryStorage()
        storage.close()
        storage.close()
