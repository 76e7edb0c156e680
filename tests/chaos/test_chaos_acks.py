"""Acknowledgements lost to a dropped connection, under the real ``run_tasks`` consumer: no task runs twice.

Redis is SIGKILLed and restarted three times mid-run (its append-only file synced at every write, so the store
itself loses nothing). Tasks that finish while it is away keep their reservations and are acknowledged once it
is back; none runs again, none is dead-lettered. (The PostgreSQL case is proved in process, where the
termination can be placed between a task and its acknowledgement: ``tests/chaos/test_ack_retries.py``.)
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.support.deployments import (
    ChaosLab,
    Deployment,
    drained,
    eventually,
)
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(180)]

TASKS = 80


def finished_twice(deployment: Deployment) -> dict[int, int]:
    """Task numbers that finished more than once, with how often."""
    counts = Counter(event["n"] for event in deployment.events("finished"))
    return {n: count for n, count in counts.items() if count > 1}


def acknowledgements_failed(log: str) -> int:
    """How often the consumer reported acknowledgements failing (or, before they were retried, a task that
    "could not be finished")."""
    return log.count("acknowledgements are failing") + log.count("could not be finished")




def test_redis_killed_three_times_mid_run_runs_no_task_twice(chaos_lab: ChaosLab, synced_redis: RedisServer) -> None:
    deployment = chaos_lab.deploy(f"{synced_redis.url}?prefix=tq-{uuid.uuid4().hex[:8]}")
    deployment.enqueue(TASKS, "--sleep", "0.1")
    consumer = deployment.consumer("--workers", "4")
    for outage in range(1, 4):
        eventually(lambda outage=outage: len(deployment.finished()) >= 15 * outage, 60, what=f"{15 * outage} done")
        synced_redis.kill()
        eventually(lambda outage=outage: acknowledgements_failed(consumer.log()) >= outage, 10, what="a failed ack")
        synced_redis.start()
    eventually(lambda: deployment.finished() == set(range(TASKS)), 60, what="every task finished")
    assert drained(deployment)["dead"] == 0
    assert finished_twice(deployment) == {}
    assert consumer.log().count("acknowledgements go through again") >= 3
    assert consumer.alive
