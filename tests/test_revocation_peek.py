"""The revocation check folded into the claim (Redis): no read of its own per task until a revocation exists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from django_tasks_q import RedisHuey
from django_tasks_q.backends.base import EmptyData
from django_tasks_q.queue import REVOCATIONS_MADE


@pytest.fixture
def hub(redis_url: str) -> Iterator[RedisHuey]:
    queue = RedisHuey(f"peek-{uuid.uuid4().hex[:8]}", url=redis_url, blocking=False)
    yield queue
    queue.storage.flush_all()
    queue.storage.close()


def count_peeks(hub: RedisHuey, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every ``peek_many`` the hub makes (that is how it reads revocations)."""
    calls: list[Any] = []
    original = hub.storage.peek_many

    def recording(keys: list[str]) -> list[Any]:
        calls.append(list(keys))
        return original(keys)

    monkeypatch.setattr(hub.storage, "peek_many", recording)
    return calls


def test_the_claim_carries_the_peeked_values(hub: RedisHuey) -> None:
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


def test_no_revocation_read_per_task_until_one_is_made(hub: RedisHuey, monkeypatch: pytest.MonkeyPatch) -> None:
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
def test_revocations_are_still_seen_once_one_exists(hub: RedisHuey, how: str) -> None:
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
