"""A finished task whose acknowledgement fails is acknowledged again, never run again nor dead-lettered.

Each case runs a real consumer (thread workers, in this process) against a real store that fails for real: a
private redis-server killed with SIGKILL and restarted from its append-only file, the PostgreSQL backend of the
worker's connection terminated, and a file storage on a full tmpfs (a real ENOSPC) that gets its space back.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

from django_tasks_q import FileHuey, RedisHuey, TaskQueue
from django_tasks_q.consumer import Consumer, ConsumerOptions
from tests.support.deployments import eventually
from tests.support.redis_servers import RedisServer, unavailable

FAST = {"initial_delay": 0.01, "max_delay": 0.2, "scheduler_interval": 0.05, "health_check_interval": 0.1}
CONSUMER_LOG = "django_tasks_q.consumer"


class Running:
    """A consumer of ``queue`` running in a background thread (no signal handlers, no monitoring)."""

    def __init__(self, queue: TaskQueue, **options: Any) -> None:
        self.consumer = Consumer(
            [queue], ConsumerOptions(**(FAST | options)), install_signal_handlers=False, monitor=False
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run()
        finally:
            connections.close_all()  # this thread's (the consumer's start-up checks ran on it)

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "consumer did not stop"


def ack_log_lines(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """How many times the workers said acknowledgements fail, and that they go through again."""
    messages = [r.getMessage() for r in caplog.records if r.name == CONSUMER_LOG]
    return (
        sum(m.startswith("acknowledgements are failing") for m in messages),
        sum(m == "acknowledgements go through again" for m in messages),
    )


def renewed_past_first_lease(queue: TaskQueue, count: int) -> bool:
    """``count`` reservations in flight, each still held well after the lease it was claimed with ran out."""
    items = queue.storage.in_flight_items()
    return len(items) == count and all(item.deadline - item.reserved_at > 3 * queue.lease for item in items)


# ------------------------------------------------------------------------------------------------ Redis




def test_an_acknowledgement_lost_to_a_redis_restart_is_retried_and_the_task_runs_once(
    synced_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    queue = RedisHuey(f"acks-{uuid.uuid4().hex[:8]}", url=synced_redis.url, lease=2.0)
    started, finish = threading.Event(), threading.Event()
    runs: list[int] = []

    @queue.task()
    def slow(n: int) -> int:
        runs.append(n)
        started.set()
        assert finish.wait(20)
        return n * 2

    result = slow(21)
    running = Running(queue)
    try:
        assert started.wait(10)
        synced_redis.kill()
        finish.set()  # the task returns while Redis is down: its acknowledgement fails
        eventually(lambda: ack_log_lines(caplog)[0] >= 1, 10, what="an error logged about the acknowledgement")
        synced_redis.start()
        assert result.get(blocking=True, timeout=20) == 42
        eventually(lambda: queue.storage.in_flight_size() == 0, 10, what="nothing in flight")
        assert runs == [21]
        assert queue.storage.queue_size() == 0 and queue.storage.dead_letter_count() == 0
        assert ack_log_lines(caplog) == (1, 1)
    finally:
        running.stop()
        queue.storage.flush_all()
        queue.storage.close()


# ------------------------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.db_backends
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a PostgreSQL backend to terminate")
def test_an_acknowledgement_lost_to_a_terminated_postgresql_backend_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    queue = TaskQueue(
        f"acks-{uuid.uuid4().hex[:8]}", storage_class=_orm_storage(), lease=2.0, purge_interval=None
    )
    runs: list[int] = []
    killer = psycopg_connection()

    @queue.task()
    def then_lose_the_connection(n: int) -> int:
        runs.append(n)
        # The worker's own connection (this thread's: the one its storage acknowledges on) dies now, after the
        # work and before the acknowledgement.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (backend,) = cursor.fetchone()
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        return n * 2

    results = [then_lose_the_connection(n) for n in range(3)]
    running = Running(queue)
    try:
        assert [r.get(blocking=True, timeout=20) for r in results] == [0, 2, 4]
        eventually(lambda: queue.storage.in_flight_size() == 0, 10, what="nothing in flight")
        assert sorted(runs) == [0, 1, 2]
        assert queue.storage.queue_size() == 0 and queue.storage.dead_letter_count() == 0
        failing, recovered = ack_log_lines(caplog)
        assert failing == recovered >= 1
    finally:
        running.stop()
        queue.storage.flush_all()
        queue.storage.close()
        killer.close()


def _orm_storage() -> type:
    from django_tasks_q.backends.orm import OrmStorage

    return OrmStorage


def psycopg_connection() -> Any:
    """A connection of its own to the test database (autocommit), outside Django's per-thread connections."""
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    )


# ------------------------------------------------------------------------------------------------ full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own: a disk that really fills up (ENOSPC). Needs the right to mount (root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        unavailable("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the disk is full; return it (delete it to give the space back)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for size in (65536, 1):  # big blocks, then what is left byte by byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def test_on_a_full_disk_finished_tasks_wait_for_space_and_none_is_dead_lettered(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    queue = FileHuey("full-disk", path=str(small_disk / "queue"), lease=1.0, max_attempts=2)
    runs: list[int] = []

    @queue.task()
    def payload(n: int) -> str:
        runs.append(n)
        return f"result {n} " * 50  # a result to write: it needs space

    results = [payload(n) for n in range(8)]
    filler = fill(small_disk)
    running = Running(queue, workers=2)
    try:
        eventually(lambda: len(runs) == 2, 10, what="two tasks run")
        # The two finished tasks stay reserved, renewed well past the lease they were claimed with; nothing
        # else is claimed meanwhile.
        eventually(lambda: renewed_past_first_lease(queue, 2), 15, what="two reservations held past their lease")
        assert sorted(runs) == sorted(set(runs)) and len(runs) == 2
        assert queue.storage.dead_letter_count() == 0
        os.unlink(filler)
        assert [r.get(blocking=True, timeout=20) for r in results] == [f"result {n} " * 50 for n in range(8)]
        eventually(lambda: queue.storage.in_flight_size() == 0, 10, what="nothing in flight")
        assert sorted(runs) == list(range(8))
        assert queue.storage.dead_letter_count() == 0
        assert ack_log_lines(caplog) == (1, 1)
    finally:
        running.stop()


def test_on_a_full_disk_the_reaper_keeps_a_message_it_cannot_dead_letter_with_its_reason(small_disk: Path) -> None:
    storage = FileHuey("full-disk-reaper", path=str(small_disk / "queue")).storage
    storage.enqueue(b"at its limit", 1)
    storage.enqueue(b"below its limit")
    first = storage.reserve(30.0)
    assert first is not None and storage.release(first, count_attempt=True)
    capped = storage.reserve(30.0)  # its second delivery
    below = storage.reserve(30.0)
    assert capped is not None and below is not None and (capped.data, capped.attempt) == (b"at its limit", 2)
    filler = fill(small_disk)
    # Both leases ran out; with max_attempts 2 the first must become a dead letter, which needs space.
    (reclaimed,) = storage.requeue_expired(time.time() + 3600, 2)
    assert reclaimed.reservation.data == b"below its limit" and reclaimed.dead_lettered is False
    assert storage.dead_letter_count() == 0
    assert [item.data for item in storage.in_flight_items()] == [b"at its limit"]
    os.unlink(filler)
    (reclaimed,) = storage.requeue_expired(time.time() + 3600, 2)
    assert reclaimed.dead_lettered and reclaimed.reason == "max_attempts"
    (letter,) = storage.dead_letters()
    assert (letter.data, letter.reason, letter.attempts) == (b"at its limit", "max_attempts", 2)
