"""Reliable delivery on the four Redis storages with several processes (RELIABILITY R1, R2, R4, R5, R16).

Processes are forked from a storage that the parent has already used, so these tests also show that the
storages are fork-safe (redis-py's pool opens fresh connections in the child).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from django_tasks_q.backends.redis import (
    PriorityRedisExpireStorage,
    PriorityRedisStorage,
    RedisExpireStorage,
    RedisStorage,
)

pytestmark = pytest.mark.redis

ALL_CLASSES = [RedisStorage, RedisExpireStorage, PriorityRedisStorage, PriorityRedisExpireStorage]


def _context() -> Any:
    """``fork`` (which also proves fork safety) when this process has one thread, else ``spawn``."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@pytest.fixture(params=ALL_CLASSES, ids=lambda cls: cls.__name__)
def storage(request: pytest.FixtureRequest, redis_url: str) -> Iterator[RedisStorage]:
    prefix = f"tqtest-{uuid.uuid4().hex[:12]}"
    storage = request.param("reliability", url=redis_url, prefix=prefix, block_timeout=0.05)
    yield storage
    storage.flush_all()
    storage.close()


def _open(cls_name: str, url: str, prefix: str) -> RedisStorage:
    classes = {cls.__name__: cls for cls in ALL_CLASSES}
    return classes[cls_name]("reliability", url=url, prefix=prefix, block_timeout=0.05)


def _consume_all(
    storage: RedisStorage | None, spec: tuple[str, str, str], ready: Any, start: Any, out: Any
) -> None:
    """Reserve and ack until the queue is empty; report ``[(data, attempt, acked)]``."""
    if storage is None:  # spawned: build our own
        storage = _open(*spec)
    storage.queue_size()  # connected
    ready.put(os.getpid())
    start.wait(20)
    got: list[tuple[bytes, int, bool]] = []
    while True:
        reservation = storage.reserve(30)
        if reservation is None:
            if storage.queue_size() == 0:
                break
            continue
        got.append((reservation.data, reservation.attempt, storage.ack(reservation)))
    out.put(got)


def _reserve_and_die(storage: RedisStorage | None, spec: tuple[str, str, str], lease: float) -> None:
    """Claim one message and die before acknowledging it (a worker killed mid-task)."""
    if storage is None:
        storage = _open(*spec)
    reservation = storage.reserve(lease)
    os._exit(0 if reservation is not None else 3)


def _spec(storage: RedisStorage, url: str) -> tuple[str, str, str]:
    return type(storage).__name__, url, storage.prefix


def _run(
    ctx: Any, target: Callable[..., None], storage: RedisStorage, spec: tuple[str, str, str], *args: Any
) -> Any:
    inherited = storage if ctx.get_start_method() == "fork" else None
    return ctx.Process(target=target, args=(inherited, spec, *args), daemon=True)


class TestSeveralProcesses:
    def test_four_processes_deliver_2000_messages_exactly_once(
        self, storage: RedisStorage, redis_url: str
    ) -> None:
        total = 2000
        for i in range(total):
            storage.enqueue(f"message-{i}".encode(), i % 5)
        assert storage.queue_size() == total
        ctx = _context()
        ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        spec = _spec(storage, redis_url)
        workers = [_run(ctx, _consume_all, storage, spec, ready, start, out) for _ in range(4)]
        for worker in workers:
            worker.start()
        for _worker in workers:  # all connected before any starts: else the first one up may take everything
            ready.get(timeout=60)
        start.set()
        reports = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
            assert worker.exitcode == 0
        delivered = [data for report in reports for data, _, _ in report]
        assert len(delivered) == total
        assert sorted(delivered) == sorted(f"message-{i}".encode() for i in range(total))
        assert all(attempt == 1 and acked for report in reports for _, attempt, acked in report)
        assert sum(1 for report in reports if report) >= 2, [len(r) for r in reports]
        assert storage.queue_size() == 0
        assert storage.in_flight_size() == 0
        assert storage.requeue_expired(time.time() + 3600, 5) == []

    def test_a_worker_that_dies_leaves_the_message_to_be_redelivered(
        self, storage: RedisStorage, redis_url: str
    ) -> None:
        storage.enqueue(b"crash-me")
        storage.enqueue(b"next")
        ctx = _context()
        worker = _run(ctx, _reserve_and_die, storage, _spec(storage, redis_url), 0.3)
        worker.start()
        worker.join(timeout=20)
        assert worker.exitcode == 0
        # the claim is in the store, not in the dead process's memory (R2)
        (held,) = storage.in_flight_items()
        assert (held.data, held.attempt) == (b"crash-me", 1)
        assert storage.enqueued_items() == [b"next"]
        # the lease runs out for real; the reaper puts it back in its original place (R4)
        reclaimed: list[Any] = []
        deadline = time.monotonic() + 5
        while not reclaimed and time.monotonic() < deadline:
            reclaimed = storage.requeue_expired(time.time(), 5)
            time.sleep(0.02)
        assert [r.reservation.data for r in reclaimed] == [b"crash-me"]
        assert storage.enqueued_items() == [b"crash-me", b"next"]
        again = storage.reserve(30)
        assert (again.data, again.attempt, again.message_id) == (b"crash-me", 2, held.message_id)
        assert storage.ack(again)

    def test_a_message_that_keeps_killing_workers_is_dead_lettered(
        self, storage: RedisStorage, redis_url: str
    ) -> None:
        max_attempts = 3
        storage.enqueue(b"poison")
        for i in range(50):
            storage.enqueue(f"healthy-{i}".encode())
        ctx = _context()
        spec = _spec(storage, redis_url)
        for _ in range(max_attempts):
            worker = _run(ctx, _reserve_and_die, storage, spec, 30.0)  # claims the poison (first in line)
            worker.start()
            worker.join(timeout=20)
            assert worker.exitcode == 0
            storage.requeue_expired(time.time() + 3600, max_attempts)
        (letter,) = storage.dead_letters()
        assert (letter.data, letter.reason, letter.attempts) == (b"poison", "max_attempts", max_attempts)
        ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        worker = _run(ctx, _consume_all, storage, spec, ready, start, out)
        worker.start()
        start.set()
        report = out.get(timeout=60)
        worker.join(timeout=10)
        assert sorted(data for data, _, _ in report) == sorted(f"healthy-{i}".encode() for i in range(50))


class TestFencing:
    def test_stale_holder_in_another_process_cannot_ack(self, storage: RedisStorage, redis_url: str) -> None:
        """R5: A reserves, the lease expires, B reserves, A acks: still B's. B acks: done."""
        cls = type(storage)
        a = cls("reliability", url=redis_url, prefix=storage.prefix)
        b = cls("reliability", url=redis_url, prefix=storage.prefix)
        try:
            storage.enqueue(b"contested")
            held_a = a.reserve(0.2)
            time.sleep(0.25)
            assert held_a.deadline < time.time()
            assert a.renew(held_a, 30) is True  # expired but not reclaimed yet: still A's
            assert storage.requeue_expired(time.time() + 31, 5)
            held_b = b.reserve(30)
            assert held_b.message_id == held_a.message_id and held_b.attempt == 2
            assert a.ack(held_a, ("result", b"from-a", None)) is False
            assert a.renew(held_a, 30) is False
            assert a.release(held_a) is False
            assert a.bury(held_a, "stale") is False
            assert not storage.has_data_for_key("result")
            assert [r.token for r in storage.in_flight_items()] == [held_b.token]
            assert b.ack(held_b, ("result", b"from-b", None)) is True
            assert storage.peek_data("result") == b"from-b"
            assert storage.in_flight_size() == 0
        finally:
            a.close()
            b.close()

    def test_concurrent_reapers_in_several_clients(self, storage: RedisStorage, redis_url: str) -> None:
        for i in range(300):
            storage.enqueue(f"m{i}".encode())
        held = [storage.reserve(30) for _ in range(300)]
        future = time.time() + 3600
        peers = [type(storage)("reliability", url=redis_url, prefix=storage.prefix) for _ in range(4)]
        results: list[list[Any]] = [[] for _ in peers]
        barrier = threading.Barrier(len(peers))

        def reap(index: int) -> None:
            barrier.wait(timeout=10)
            results[index] = peers[index].requeue_expired(future, 5)

        threads = [threading.Thread(target=reap, args=(i,)) for i in range(len(peers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        for peer in peers:
            peer.close()
        reclaimed = sorted(r.reservation.message_id for got in results for r in got)
        assert reclaimed == sorted(r.message_id for r in held)
        assert storage.queue_size() == 300
        assert storage.in_flight_size() == 0


def test_storage_error_does_not_lose_queued_messages(redis_url: str) -> None:
    """A client whose connections die mid-way sees StorageError (or a transparent retry), never data loss."""
    prefix = f"tqtest-{uuid.uuid4().hex[:12]}"
    storage = RedisStorage("reliability", url=redis_url, prefix=prefix, client_name=prefix)
    admin = redis.Redis.from_url(redis_url)
    try:
        for i in range(20):
            storage.enqueue(f"m{i}".encode())
            if i % 5 == 4:
                for entry in admin.client_list():
                    if entry.get("name") == prefix:
                        admin.client_kill_filter(_id=entry["id"])
        assert storage.enqueued_items() == [f"m{i}".encode() for i in range(20)]
    finally:
        storage.flush_all()
        storage.close()
        admin.close()
