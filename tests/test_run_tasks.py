"""The real ``run_tasks`` command in subprocesses, against each persistent storage (issue: consumer)."""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consumer_harness import Deployment, eventually, queue_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STORAGES = ["redis", "sqlite", "file", "orm"]


def _available(kind: str) -> bool:
    import importlib.util

    module = {"redis": "redis", "sqlite": "sqlite", "file": "file", "orm": "orm"}[kind]
    return importlib.util.find_spec(f"django_tasks_q.backends.{module}") is not None


@pytest.fixture(params=STORAGES)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    kind = request.param
    if not _available(kind):
        pytest.skip(f"the {kind} storage is not built yet")
    url = queue_url(kind, tmp_path, request.getfixturevalue("fresh_redis_url") if kind == "redis" else "")
    deployment = Deployment(tmp_path, url)
    yield deployment
    deployment.close()


def test_burst_runs_everything_due_then_exits(deployment: Deployment) -> None:
    deployment.enqueue(30)
    deployment.enqueue(2, "--start", "100", "--delay", "3600")
    consumer = deployment.consumer("--burst", "--workers", "2")
    assert consumer.wait(60) == 0, consumer.log()
    assert deployment.finished() == set(range(30))
    stats = deployment.stats()
    assert (stats["pending"], stats["scheduled"], stats["in_flight"]) == (0, 2, 0)


def test_long_running_consumer_fed_while_running_stops_cleanly(deployment: Deployment) -> None:
    consumer = deployment.consumer("--workers", "2")
    deployment.enqueue(10)
    eventually(lambda: deployment.finished() == set(range(10)), 30, what="first batch finished")
    deployment.enqueue(10, "--start", "10")
    eventually(lambda: deployment.finished() == set(range(20)), 30, what="second batch finished")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()
    assert "stopped" in consumer.log()


def test_delayed_tasks_run_within_a_second_of_their_time(deployment: Deployment) -> None:
    consumer = deployment.consumer()
    enqueued_at = time.time()
    deployment.enqueue(3, "--delay", "2")
    eventually(lambda: deployment.finished() == {0, 1, 2}, 30, what="delayed tasks finished")
    starts = [event["t"] for event in deployment.events("started")]
    assert min(starts) >= enqueued_at + 2.0
    assert max(starts) <= time.time()
    consumer.signal(signal.SIGTERM)
    consumer.wait(30)


def test_two_consumers_fire_a_periodic_task_once_per_minute(deployment: Deployment) -> None:
    first = deployment.consumer(TASKS_Q_LEDGER_HEARTBEAT="1")
    second = deployment.consumer(TASKS_Q_LEDGER_HEARTBEAT="1")
    eventually(lambda: deployment.events("heartbeat"), 30, what="a heartbeat")
    time.sleep(1.5)
    for consumer in (first, second):
        consumer.signal(signal.SIGTERM)
    for consumer in (first, second):
        consumer.wait(30)
    minutes = Counter(
        dt.datetime.fromtimestamp(event["t"], dt.UTC).strftime("%H:%M") for event in deployment.events("heartbeat")
    )
    assert minutes and all(count == 1 for count in minutes.values()), minutes


def test_sigterm_during_work_loses_nothing(deployment: Deployment) -> None:
    deployment.enqueue(8, "--sleep", "0.6")
    consumer = deployment.consumer("--workers", "2")
    eventually(lambda: len(deployment.events("started")) >= 2, 30, what="two tasks started")
    started_before = {event["n"] for event in deployment.events("started")}
    signalled = time.monotonic()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()
    assert time.monotonic() - signalled < 5
    assert started_before <= deployment.finished()
    restart = deployment.consumer("--burst", "--workers", "2")
    assert restart.wait(60) == 0, restart.log()
    assert deployment.finished() == set(range(8))
    finished = Counter(event["n"] for event in deployment.events("finished"))
    assert max(finished.values()) == 1, finished


def test_worker_process_death_is_recovered_and_crash_loop_dead_lettered(deployment: Deployment) -> None:
    deployment.env["TASKS_Q_MAX_ATTEMPTS"] = "2"
    deployment.enqueue(10, "--killer")
    consumer = deployment.consumer("--worker-type", "process", "--workers", "2")
    eventually(lambda: deployment.finished() == set(range(10)), 60, what="other tasks finished")
    eventually(lambda: deployment.stats()["dead"] == 1, 60, what="the crash-looping task dead-lettered")
    assert deployment.stats()["dead_reasons"] == ["max_attempts"]
    killer_attempts = [event["attempt"] for event in deployment.events("started") if event["n"] == -99]
    assert killer_attempts == [1, 2]
    assert consumer.process.poll() is None, "the consumer's main process must survive worker deaths"
    assert "not running (exit code -9)" in consumer.log()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()


def test_kill_9_of_the_whole_consumer_loses_nothing(deployment: Deployment) -> None:
    deployment.enqueue(120, "--sleep", "0.02")
    consumer = deployment.consumer("--workers", "4")
    eventually(lambda: len(deployment.events("started")) >= 20, 60, what="20 tasks started")
    consumer.kill_group()
    in_flight_at_kill = len({e["n"] for e in deployment.events("started")} - deployment.finished())
    restart = deployment.consumer("--burst", "--workers", "4")
    assert restart.wait(90) == 0, restart.log()
    assert deployment.finished() == set(range(120))
    finished = Counter(event["n"] for event in deployment.events("finished"))
    duplicates = sum(count - 1 for count in finished.values())
    assert duplicates <= max(in_flight_at_kill, 4)


def test_check_reports_a_reachable_storage(deployment: Deployment) -> None:
    done = deployment.manage("run_tasks", "--check")
    assert "queue 'default':" in done.stdout and "reachable" in done.stdout


def test_check_fails_on_a_stopped_redis(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, "redis://127.0.0.1:1/0")
    done = deployment.manage("run_tasks", "--check", check=False, timeout=30)
    assert done.returncode != 0
    assert "queue 'default'" in done.stderr and "StorageError" in done.stderr


def test_sigterm_to_the_whole_process_group_lets_process_workers_finish(tmp_path: Path) -> None:
    """systemd's KillMode=control-group and Ctrl-C signal the workers too: that must not count twice."""
    import os

    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        deployment.enqueue(2, "--sleep", "1.5")
        consumer = deployment.consumer("--worker-type", "process", "--workers", "2")
        eventually(lambda: len(deployment.events("started")) == 2, 60, what="both tasks started")
        os.killpg(consumer.pid, signal.SIGTERM)
        assert consumer.wait(30) == 0, consumer.log()
        assert deployment.finished() == {0, 1}
        assert "handed back" not in consumer.log()
    finally:
        deployment.close()
