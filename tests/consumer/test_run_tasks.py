"""The real ``run_tasks`` command in subprocesses, against each persistent storage (issue: consumer).

What kills and freezes consumers (kill -9, SIGTERM mid-task, worker deaths) is in ``tests/chaos/test_chaos_*.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections import Counter

import pytest

from tests.support.deployments import (
    ChaosLab,
    Deployment,
    eventually,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STORAGES = ["redis", "sqlite", "file", "orm"]


@pytest.fixture(params=STORAGES)
def deployment(request: pytest.FixtureRequest, chaos_lab: ChaosLab) -> Deployment:
    """A deployment of the storage under test, its Django database copied from a migrated template."""
    return chaos_lab.deploy("orm-sqlite" if request.param == "orm" else request.param)


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


def test_check_reports_a_reachable_storage(deployment: Deployment) -> None:
    done = deployment.manage("run_tasks", "--check")
    assert "queue 'default':" in done.stdout and "reachable" in done.stdout


def test_check_fails_on_a_stopped_redis(chaos_lab: ChaosLab) -> None:
    deployment = chaos_lab.deploy("redis://127.0.0.1:1/0")
    done = deployment.manage("run_tasks", "--check", check=False, timeout=30)
    assert done.returncode != 0
    assert "queue 'default'" in done.stderr and "StorageError" in done.stderr


def test_sigterm_to_the_whole_process_group_lets_process_workers_finish(chaos_lab: ChaosLab) -> None:
    """systemd's KillMode=control-group and Ctrl-C signal the workers too: that must not count twice."""
    deployment = chaos_lab.deploy("sqlite")
    deployment.enqueue(2, "--sleep", "1.5")
    consumer = deployment.consumer("--worker-type", "process", "--workers", "2")
    eventually(lambda: len(deployment.events("started")) == 2, 60, what="both tasks started")
    os.killpg(consumer.pid, signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()
    assert deployment.finished() == {0, 1}
    assert "handed back" not in consumer.log()


def test_a_second_sigterm_stops_at_once_and_hands_the_running_task_back(chaos_lab: ChaosLab) -> None:
    """RELIABILITY R7: the first signal waits for running tasks; a second one exits now, losing nothing."""
    deployment = chaos_lab.deploy("sqlite")
    deployment.enqueue(1, "--sleep", "60")
    consumer = deployment.consumer("--no-periodic")
    eventually(lambda: deployment.events("started"), 30, what="the long task started")
    consumer.signal(signal.SIGTERM)
    eventually(lambda: "received SIGTERM" in consumer.log(), 10, interval=0.01, what="the first signal handled")
    second = time.monotonic()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(10) == 1, consumer.log()
    assert time.monotonic() - second < 5
    assert "second stop signal: stopping at once" in consumer.log()
    assert "handed back to queue 'default'" in consumer.log()
    assert deployment.finished() == set()
    stats = deployment.stats()
    assert (stats["pending"], stats["in_flight"]) == (1, 0), stats
