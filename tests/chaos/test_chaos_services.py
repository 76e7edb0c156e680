"""Chaos tests of the services under a running consumer (RELIABILITY R9, R10, R11, R27): a private redis-server
SIGKILLed and restarted, PostgreSQL sessions terminated, a SQLite file locked; producers against a dead store;
``run_tasks --check`` against unreachable stores.

Redis runs as private ``redis-server`` processes on free loopback ports (``tests/support/redis_servers.py``), PostgreSQL
is the server on 127.0.0.1:5432 (a database per test, see ``tests/support/deployments.py``). Without them the tests
are skipped, or failed under ``CI``.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from django_tasks_q import RedisHuey
from django_tasks_q.exceptions import StorageError
from tests.support.deployments import (
    ChaosLab,
    Deployment,
    drained,
    eventually,
    stop,
)
from tests.support.redis_servers import RedisServer, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(120)]


def duplicates(deployment: Deployment) -> int:
    return sum(count - 1 for count in Counter(e["n"] for e in deployment.events("finished")).values())




# ---------------------------------------------------------------------------------------------------------- R9


def test_r9_redis_killed_and_restarted_mid_run_loses_nothing(chaos_lab: ChaosLab, synced_redis: RedisServer) -> None:
    deployment = chaos_lab.deploy(f"{synced_redis.url}?prefix=tq-r9")
    deployment.enqueue(150, "--sleep", "0.05")
    consumer = deployment.consumer("--workers", "4")
    pid = consumer.pid
    eventually(lambda: len(deployment.events("started")) >= 20, 30, what="20 tasks started")
    synced_redis.kill()
    # Redis errors reach the workers as StorageError (its message names the storage); they back off and retry,
    # and the outage is logged once for the queue, not once per worker and retry (workers that finished a task
    # meanwhile retry its acknowledgement instead of claiming)
    outage = "queue 'default': storage unavailable (StorageError: Redis storage 'default': "
    eventually(
        lambda: outage in (log := consumer.log()) or "acknowledgements are failing" in log,
        15,
        what="workers backing off",
    )
    assert consumer.alive, consumer.log()
    synced_redis.start()  # same port, same folder: the append-only file brings every message back
    restarted = time.monotonic()

    eventually(lambda: deployment.finished() == set(range(150)), 60, what="every task finished")
    resumed_in = time.monotonic() - restarted
    assert drained(deployment)["dead"] == 0
    assert consumer.alive and consumer.pid == pid
    assert duplicates(deployment) <= 4  # at most the tasks in flight when Redis died
    assert resumed_in < 30, resumed_in
    log = consumer.log()
    assert "without an append-only file" not in log
    # one ERROR when the trouble starts and one INFO when it ends: for the claims (the outage) and, when workers
    # held finished tasks, for their acknowledgements
    assert log.count(outage) <= 1, log
    assert log.count("queue 'default': storage available again after ") == log.count(outage), log
    failing = log.count("acknowledgements are failing")
    assert failing <= 1 and log.count("acknowledgements go through again") == failing, log
    assert log.count(outage) + failing >= 1, log
    stop(consumer)


def test_r9_startup_warns_when_redis_has_no_aof_or_evicts_keys(chaos_lab: ChaosLab, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    server = RedisServer(
        port, tmp_path / "redis", "--appendonly", "no", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"
    ).start()
    try:
        deployment = chaos_lab.deploy(f"{server.url}?prefix=tq-r9w")
        consumer = deployment.consumer("--burst")
        assert consumer.wait(30) == 0, consumer.log()
        warnings = [line for line in consumer.log().splitlines() if " WARNING " in line]
        assert any("without an append-only file" in line and "appendonly yes" in line for line in warnings), warnings
        assert any("evicts keys" in line and "allkeys-lru" in line for line in warnings), warnings
    finally:
        server.stop()


def test_r9_no_warning_for_a_durable_redis(chaos_lab: ChaosLab, synced_redis: RedisServer) -> None:
    deployment = chaos_lab.deploy(f"{synced_redis.url}?prefix=tq-r9ok")
    consumer = deployment.consumer("--burst")
    assert consumer.wait(30) == 0, consumer.log()
    assert " WARNING " not in consumer.log(), consumer.log()


def test_r9_startup_warnings_never_raise() -> None:
    from django_tasks_q.backends.base import BaseStorage
    from django_tasks_q.backends.redis import RedisStorage

    assert BaseStorage("q").startup_warnings() == []
    (port,) = free_ports(1)  # nothing listens there
    storage = RedisStorage("q", url=f"redis://127.0.0.1:{port}/0")
    try:
        [warning] = storage.startup_warnings()
    finally:
        storage.close()
    assert "could not check the server's persistence settings" in warning and "ConnectionError" in warning


# --------------------------------------------------------------------------------------------------------- R10


def test_r10_postgres_sessions_terminated_repeatedly(chaos_lab: ChaosLab) -> None:
    deployment = chaos_lab.deploy("orm")
    assert chaos_lab.postgres is not None
    database = chaos_lab.databases[-1]
    deployment.enqueue(120, "--sleep", "0.05")
    consumer = deployment.consumer("--workers", "4")
    pid = consumer.pid
    eventually(lambda: len(deployment.events("started")) >= 20, 30, what="20 tasks started")
    rounds = 0
    chaos_until = time.monotonic() + 4
    while time.monotonic() < chaos_until:  # the chaos itself: every session of the database, again and again
        rounds += chaos_lab.postgres.terminate_backends(database) > 0
        time.sleep(0.25)
    assert rounds >= 5

    eventually(lambda: deployment.finished() == set(range(120)), 60, what="every task finished")
    assert drained(deployment)["dead"] == 0
    assert consumer.alive and consumer.pid == pid
    # Each round can cost the acknowledgements of the (at most 4) tasks running on the killed sessions: they
    # run again. At least once, never lost.
    assert duplicates(deployment) <= 4 * rounds
    stop(consumer)


@pytest.mark.parametrize("kind", ["sqlite", "orm-sqlite"])
def test_r10_sqlite_locked_for_10_s(chaos_lab: ChaosLab, kind: str) -> None:
    deployment = chaos_lab.deploy(kind)
    path = deployment.folder / ("queue.db" if kind == "sqlite" else "django.sqlite3")
    deployment.enqueue(80, "--sleep", "0.05")
    consumer = deployment.consumer("--workers", "4")
    pid = consumer.pid
    eventually(lambda: len(deployment.events("started")) >= 10, 30, what="10 tasks started")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        started_before = len(deployment.events("started"))
        locked_until = time.monotonic() + 10
        while time.monotonic() < locked_until:  # the chaos itself: hold the lock for 10 s
            assert consumer.alive, consumer.log()
            time.sleep(0.25)
        assert len(deployment.events("started")) <= started_before + 4  # no claim got through the lock
        conn.execute("COMMIT")
    finally:
        conn.close()
    eventually(lambda: deployment.finished() == set(range(80)), 60, what="every task finished")
    assert drained(deployment)["dead"] == 0
    assert consumer.alive and consumer.pid == pid
    stop(consumer)


# --------------------------------------------------------------------------------------------------------- R11


def test_r11_enqueue_against_a_stopped_or_hung_redis_raises_storage_error(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    server = RedisServer(port, tmp_path / "redis").start()
    huey = RedisHuey("r11", url=server.url)

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        add(1, 2)
        assert huey.pending_count() == 1
        server.process.send_signal(signal.SIGSTOP)  # hung: connections are accepted, nothing answers
        started = time.monotonic()
        with pytest.raises(StorageError) as hung:
            add(3, 4)
        assert time.monotonic() - started < 5 + 1  # the default socket timeout
        assert isinstance(hung.value.__cause__, redis.exceptions.TimeoutError)
        server.process.send_signal(signal.SIGCONT)
        server.kill()  # stopped: connections are refused
        started = time.monotonic()
        with pytest.raises(StorageError) as stopped:
            add(5, 6)
        assert time.monotonic() - started < 2
        assert isinstance(stopped.value.__cause__, redis.exceptions.ConnectionError)
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()
        huey.storage.close()


def test_r11_orm_enqueue_is_part_of_the_callers_transaction(chaos_lab: ChaosLab) -> None:
    deployment = chaos_lab.deploy("orm")
    rolled_back = deployment.enqueue(3, "--atomic", "rollback")
    assert len(rolled_back["ids"]) == 3  # enqueued inside the transaction ...
    assert deployment.stats()["pending"] == 0  # ... and gone with its rollback
    deployment.enqueue(3, "--start", "10", "--atomic", "commit")
    assert deployment.stats()["pending"] == 3
    consumer = deployment.consumer("--burst")
    assert consumer.wait(30) == 0, consumer.log()
    assert deployment.finished() == {10, 11, 12}


# --------------------------------------------------------------------------------------------------------- R27


def test_r27_check_exits_non_zero_when_the_store_is_unreachable(
    chaos_lab: ChaosLab, synced_redis: RedisServer, tmp_path: Path
) -> None:
    redis_deployment = chaos_lab.deploy(f"{synced_redis.url}?prefix=tq-check")
    assert "reachable" in redis_deployment.manage("run_tasks", "--check").stdout
    synced_redis.kill()
    done = redis_deployment.manage("run_tasks", "--check", check=False, timeout=30)
    assert done.returncode != 0 and "StorageError" in done.stderr, done.stderr

    orm_deployment = chaos_lab.deploy("orm")
    assert "reachable" in orm_deployment.manage("run_tasks", "--check").stdout
    done = orm_deployment.manage("run_tasks", "--check", check=False, timeout=30, TASKS_Q_PG_PORT=str(free_ports(1)[0]))
    assert done.returncode != 0 and "StorageError" in done.stderr, done.stderr

    not_a_database = tmp_path / "not-a-database"
    not_a_database.write_bytes(b"this is not SQLite" * 100)
    sqlite_deployment = chaos_lab.deploy(f"sqlite:///{not_a_database}")
    done = sqlite_deployment.manage("run_tasks", "--check", check=False, timeout=30)
    assert done.returncode != 0 and "queue 'default'" in done.stderr, done.stderr


def test_r9_r27_consumer_keeps_running_while_redis_is_down_at_start(chaos_lab: ChaosLab, tmp_path: Path) -> None:
    """With --wait-for-storage, a consumer started while Redis is down logs the outage, keeps trying, and works
    once Redis is up (without the flag it exits at once: tests/consumer/test_consumer_outages.py)."""
    (port,) = free_ports(1)
    server = RedisServer(port, tmp_path / "redis", "--appendonly", "yes")
    deployment = chaos_lab.deploy(f"{server.url}?prefix=tq-late")
    consumer = deployment.consumer("--workers", "2", "--wait-for-storage")
    try:
        eventually(lambda: "ConnectionError" in consumer.log(), 15, what="the consumer seeing no Redis")
        assert consumer.alive, consumer.log()
        server.start()
        deployment.enqueue(5)
        eventually(lambda: deployment.finished() == set(range(5)), 30, what="tasks run after Redis came up")
        stop(consumer)
    finally:
        server.stop()
