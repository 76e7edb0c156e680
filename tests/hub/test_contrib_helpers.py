"""django_tasks_q.contrib.helpers: huey's RedisSemaphore and lock_task_semaphore, on a real Redis server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from django_tasks_q import MemoryHuey, RedisHuey
from django_tasks_q.contrib.helpers import RedisSemaphore, lock_task_semaphore
from django_tasks_q.exceptions import ConfigurationError, TaskLockedException


@pytest.fixture
def queue(fresh_redis_url: str) -> Iterator[Any]:
    hub = RedisHuey("semaphores", url=fresh_redis_url)
    yield hub
    hub.storage.flush_all()
    hub.storage.close()


def test_at_most_value_holders_and_release_frees_a_place(queue: Any) -> None:
    semaphore = RedisSemaphore(queue, "lock_a", 2)
    first, second = semaphore.acquire(), semaphore.acquire()
    assert first and second and first != second
    assert semaphore.acquire() is None
    assert semaphore.release(second) == 1
    assert semaphore.release(second) == 0
    assert semaphore.acquire(second) == second
    assert semaphore.acquire(second) == second  # a holder acquiring again keeps its one place
    assert semaphore.acquire() is None
    queue.storage.flush_all()  # the holders live under the queue's keys
    assert semaphore.acquire() is not None


def test_a_holder_older_than_timeout_stops_counting(queue: Any) -> None:
    semaphore = RedisSemaphore(queue, "short", 1, timeout=0.2)
    assert semaphore.acquire("dead-worker") == "dead-worker"
    assert semaphore.acquire() is None
    got = None
    for _ in range(100):
        got = semaphore.acquire("next")
        if got:
            break
        threading.Event().wait(0.02)
    assert got == "next"


def test_concurrent_acquires_never_exceed_the_value(queue: Any) -> None:
    semaphore = RedisSemaphore(queue, "race", 3)
    winners: list[str] = []
    barrier = threading.Barrier(12)

    def race() -> None:
        barrier.wait()
        holder = semaphore.acquire()
        if holder:
            winners.append(holder)

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(winners) == 3


def test_lock_task_semaphore_refuses_a_call_when_full_and_frees_its_place(queue: Any) -> None:
    calls: list[str] = []

    @lock_task_semaphore(queue, "one-at-a-time", 1)
    def work(tag: str) -> str:
        calls.append(tag)
        if tag == "nested":
            with pytest.raises(TaskLockedException, match="'one-at-a-time' is held by 1 call"):
                work("inner")
        if tag == "boom":
            raise RuntimeError(tag)
        return tag

    assert work("nested") == "nested"
    with pytest.raises(RuntimeError):
        work("boom")
    assert work("after") == "after"
    assert calls == ["nested", "boom", "after"]


def test_bad_arguments_are_refused(queue: Any) -> None:
    with pytest.raises(ConfigurationError, match="must be a Redis storage, not MemoryStorage"):
        RedisSemaphore(MemoryHuey("m"), "x")
    for kwargs in ({"value": 0}, {"value": True}, {"timeout": 0}, {"timeout": float("nan")}):
        with pytest.raises(ConfigurationError):
            RedisSemaphore(queue, "x", **kwargs)
