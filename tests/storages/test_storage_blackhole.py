"""BlackHoleStorage: accepts every write, keeps nothing, and says so."""

from __future__ import annotations

import time

import pytest

from django_tasks_q.backends.base import BaseStorage, EmptyData, Reservation
from django_tasks_q.backends.blackhole import BlackHoleStorage
from django_tasks_q.exceptions import ConfigurationError


@pytest.fixture
def storage() -> BlackHoleStorage:
    return BlackHoleStorage("void")


def _fill(storage: BlackHoleStorage) -> None:
    now = time.time()
    storage.enqueue(b"m", 5)
    storage.enqueue(b"")
    storage.add_to_schedule(b"s", now - 10, 3)
    storage.put_data("k", b"v")
    storage.put_data("r", b"result", is_result=True, ttl=60)
    storage.add_dead_letter(b"d", "test")


def test_is_a_storage_with_documented_flags() -> None:
    assert issubclass(BlackHoleStorage, BaseStorage)
    assert BlackHoleStorage.blocking is False
    assert BlackHoleStorage.priority is True
    assert BlackHoleStorage.features == {
        "dead_letters", "counters", "key_listing", "wait_for_messages", "reap_by_progress", "process_local"
    }
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) anything"):
        BlackHoleStorage("x", anything="refused")


def test_every_method_is_implemented() -> None:
    methods = [
        name
        for name, value in vars(BaseStorage).items()
        if callable(value) and not name.startswith("_")
    ]
    assert methods
    missing = [name for name in methods if getattr(BlackHoleStorage, name) is getattr(BaseStorage, name)]
    assert missing == ["close"]  # nothing to release: the base no-op is right


def test_writes_are_accepted_and_discarded(storage: BlackHoleStorage) -> None:
    _fill(storage)
    now = time.time()
    assert storage.queue_size() == 0
    assert storage.enqueued_items() == []
    assert storage.dequeue() is None
    assert storage.schedule_size() == 0
    assert storage.scheduled_items() == []
    assert storage.read_schedule(now + 3600) == []
    assert storage.enqueue_due(now + 3600) == 0
    assert storage.peek_data("k") is EmptyData
    assert storage.pop_data("k") is EmptyData
    assert storage.has_data_for_key("k") is False
    assert storage.delete_data("k") is False
    assert storage.result_items() == {}
    assert storage.result_store_size() == 0
    assert storage.dead_letters() == []
    assert storage.dead_letter_count() == 0


def test_put_if_empty_always_succeeds(storage: BlackHoleStorage) -> None:
    assert storage.put_if_empty("lock", b"a") is True
    assert storage.put_if_empty("lock", b"b", ttl=5) is True


def test_incr_returns_the_amount(storage: BlackHoleStorage) -> None:
    assert storage.incr("c") == 1
    assert storage.incr("c", 5) == 5
    assert storage.incr("c", -3, ttl=1) == -3


def test_wait_result_returns_at_once(storage: BlackHoleStorage) -> None:
    started = time.monotonic()
    assert storage.wait_result("r", timeout=10) is EmptyData
    assert storage.wait_result("r", timeout=None) is EmptyData
    assert time.monotonic() - started < 0.5


def test_reliable_delivery_finds_nothing(storage: BlackHoleStorage) -> None:
    _fill(storage)
    assert storage.reserve(30) is None
    assert storage.in_flight_items() == []
    assert storage.in_flight_size() == 0
    assert storage.requeue_expired(time.time() + 3600, 1) == []
    fake = Reservation("id", b"m", "token", 1, time.time() + 30, time.time())
    assert storage.ack(fake) is True
    assert storage.ack(fake, ("k", b"v", None)) is True
    assert storage.peek_data("k") is EmptyData
    assert storage.renew(fake, 30) is True
    assert storage.release(fake) is True
    assert storage.bury(fake, "test") is True
    assert storage.queue_size() == 0


def test_dead_letter_operations(storage: BlackHoleStorage) -> None:
    first = storage.add_dead_letter(b"d", "test", "detail", attempts=2, priority=1)
    second = storage.add_dead_letter(b"d", "test")
    assert isinstance(first, str) and first
    assert first != second
    assert storage.requeue_dead_letter(first) is False
    assert storage.purge_dead_letters() == 0
    assert storage.purge_dead_letters(ids=[first], older_than=time.time()) == 0


def test_flushes_and_close_are_harmless(storage: BlackHoleStorage) -> None:
    _fill(storage)
    storage.flush_queue()
    storage.flush_schedule()
    storage.flush_results()
    storage.flush_all()
    storage.close()
    storage.close()
