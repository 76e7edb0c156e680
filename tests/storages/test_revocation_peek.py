"""The revocation check folded into the claim (Redis and ORM storages): no read of its own per task until a
revocation exists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from django_tasks_q import RedisHuey, TaskQueue
from django_tasks_q.backends.base import EmptyData, Feature, Reservation
from django_tasks_q.backends.orm import OrmStorage
from django_tasks_q.backends.redis import RedisStorage
from django_tasks_q.consumer import Consumer, ConsumerOptions
from django_tasks_q.hub.keyspace import REVOCATIONS_MADE

ORM = pytest.param("orm", marks=[pytest.mark.db_backends, pytest.mark.django_db(transaction=True)])


@pytest.fixture(params=["redis", ORM])
def hub(request: pytest.FixtureRequest) -> Iterator[TaskQueue]:
    name = f"peek-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        queue: TaskQueue = RedisHuey(name, url=request.getfixturevalue("redis_url"), blocking=False)
    else:
        queue = TaskQueue(name, storage_class=OrmStorage)
    assert Feature.PEEK_ON_RESERVE in queue.storage.features
    yield queue
    queue.storage.flush_all()
    queue.storage.close()


def count_peeks(hub: TaskQueue, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every ``peek_many`` the hub makes (that is how it reads revocations)."""
    calls: list[Any] = []
    original = hub.storage.peek_many

    def recording(keys: list[str]) -> list[Any]:
        calls.append(list(keys))
        return original(keys)

    monkeypatch.setattr(hub.storage, "peek_many", recording)
    return calls


def test_the_claim_carries_the_peeked_values(hub: TaskQueue) -> None:
    storage = hub.storage
    storage.put_data("present", b"value")
    storage.enqueue(b"one")
    storage.enqueue(b"two")
    first = storage.reserve(30, peek=["present", "absent"])
    assert first is not None and first.peeked == (b"value", EmptyData)
    acked, second = storage.ack_and_reserve(first, None, 30, peek=["absent", "present"])
    assert acked and second is not None and second.data == b"two" and second.peeked == (EmptyData, b"value")
    acked, none = storage.ack_and_reserve(second, ("r", b"v", None), 30, peek=["present"])
    assert acked and none is None and storage.peek_data("r") == b"v"
    storage.enqueue(b"three")
    plain = storage.reserve(30)
    assert plain is not None and plain.peeked is None  # nothing asked, nothing read


def test_no_revocation_read_per_task_until_one_is_made(hub: TaskQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []

    @hub.task()
    def work(n: int) -> None:
        ran.append(n)

    for n in range(3):
        work(n)
    peeks = count_peeks(hub, monkeypatch)
    reservation = hub.reserve()
    while reservation is not None:
        reservation = hub.process(reservation, reserve_next=True)
    assert ran == [0, 1, 2]
    assert peeks == []  # the claims said that nothing was ever revoked on this queue
    assert hub.storage.peek_data(REVOCATIONS_MADE) is EmptyData


@pytest.mark.parametrize("how", ["by_id", "all"])
def test_revocations_are_still_seen_once_one_exists(hub: TaskQueue, how: str) -> None:
    ran: list[int] = []

    @hub.task()
    def work(n: int) -> None:
        ran.append(n)

    first, second = work(1), work(2)
    if how == "by_id":
        first.revoke()
    else:
        work.revoke()
    assert hub.storage.peek_data(REVOCATIONS_MADE) == b"1"
    reservation = hub.reserve()
    while reservation is not None:
        reservation = hub.process(reservation, reserve_next=True)
    assert ran == ([2] if how == "by_id" else [])
    assert second.id != first.id and hub.pending_count() == 0


class RedisWithoutPeek(RedisStorage):
    """A custom storage written before ``peek=`` existed: it overrides the claims without the parameter, and so
    declares its parent's features without ``peek_on_reserve``."""

    features = RedisStorage.features - {Feature.PEEK_ON_RESERVE}

    def reserve(self, lease: float) -> Reservation | None:  # type: ignore[override]
        return super().reserve(lease)

    def ack_and_reserve(  # type: ignore[override]
        self, reservation: Reservation, result: Any, lease: float
    ) -> tuple[bool, Reservation | None]:
        return super().ack_and_reserve(reservation, result, lease)


def test_a_subclass_that_keeps_peek_on_reserve_but_whose_claims_take_no_peek_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Unchanged declares the feature 'peek_on_reserve' but its reserve\(\) takes no peek"):

        class Unchanged(RedisStorage):
            def reserve(self, lease: float) -> Reservation | None:  # type: ignore[override]
                return super().reserve(lease)


def test_a_subclass_whose_claims_take_no_peek_still_works_and_checks_revocations(redis_url: str) -> None:
    queue = TaskQueue(f"old-style-{uuid.uuid4().hex[:8]}", storage_class=RedisWithoutPeek, url=redis_url, blocking=False)
    ran: list[int] = []

    @queue.task()
    def work(n: int) -> None:
        ran.append(n)

    work(1).revoke()
    work(2)
    reservation = queue.reserve()
    while reservation is not None:
        reservation = queue.process(reservation, reserve_next=True)
    assert ran == [2]
    queue.storage.flush_all()


def test_revocations_stored_without_the_marker_are_marked_when_a_consumer_starts(hub: TaskQueue) -> None:
    ran: list[int] = []

    @hub.task()
    def work(n: int) -> None:
        ran.append(n)

    revoked = work(1)
    revoked.revoke()
    work(2)
    hub.storage.delete_data(REVOCATIONS_MADE)  # as a version that wrote no marker left it
    assert hub.mark_existing_revocations() is True
    assert hub.mark_existing_revocations() is False  # already there
    reservation = hub.reserve()
    while reservation is not None:
        reservation = hub.process(reservation, reserve_next=True)
    assert ran == [2]


def test_the_consumer_marks_stored_revocations_at_start(redis_url: str) -> None:
    queue = RedisHuey(f"consumer-mark-{uuid.uuid4().hex[:8]}", url=redis_url, blocking=False)

    @queue.task()
    def work() -> None:
        raise AssertionError("revoked: must not run")

    work.revoke()
    queue.storage.delete_data(REVOCATIONS_MADE)
    work()
    consumer = Consumer([queue], ConsumerOptions(initial_delay=0.01, max_delay=0.05), burst=True,
                        install_signal_handlers=False)
    assert consumer.run() == 0
    assert queue.storage.peek_data(REVOCATIONS_MADE) == b"1"
    assert queue.pending_count() == 0
    queue.storage.flush_all()
