"""A worker killed while its task runs well (the out-of-memory killer, a pre-empted node) is not a crash loop.

The real ``run_tasks`` consumer runs a task several leases long in a worker process; the test SIGKILLs that
process more often than ``MAX_ATTEMPTS`` allows, each time after the lease keeper renewed the lease (the task was
making progress). The message must come back each time and finally run to the end: such reclaims count against
``MAX_RECLAIMS``, not ``MAX_ATTEMPTS``. A task that kills its worker at once is still dead-lettered after exactly
``MAX_ATTEMPTS`` deliveries (``tests/chaos/test_chaos_delivery.py::test_r16_*``).
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.deployments import (
    ChaosLab,
    eventually,
)

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(180)]

LEASE = 2.0  # long enough for the lease keeper to renew on time on a loaded two-core machine
MAX_ATTEMPTS = 2
KILLS = 3  # more than MAX_ATTEMPTS


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_worker_killed_while_its_task_runs_well_is_not_a_crash_loop(chaos_lab: ChaosLab, kind: str) -> None:
    deployment = chaos_lab.deploy(kind, lease=LEASE, TASKS_Q_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    (task_id,) = deployment.enqueue(1, "--sleep", "6")["ids"]
    consumer = deployment.consumer("--worker-type", "process", "--workers", "1")
    for kill in range(KILLS):
        started = eventually(
            lambda kill=kill: len(runs := deployment.events("started", 0)) > kill and runs[kill],
            30,
            what=f"run {kill + 1} started",
        )
        # The lease keeper renewed the lease after the task had run a while: it was making progress.
        eventually(
            lambda: any(held > LEASE * 1.25 for held in deployment.stats()["in_flight_held_for"]),
            20,
            interval=0.1,
            what=f"the lease of run {kill + 1} renewed",
        )
        assert not deployment.events("finished", 0)
        os.kill(started["pid"], signal.SIGKILL)  # what the out-of-memory killer does to the worker process
    finished = eventually(lambda: deployment.events("finished", 0), 60, what="the task finished")
    assert [event["attempt"] for event in deployment.events("started", 0)] == [1, 2, 3, 4]
    assert [event["attempt"] for event in finished] == [4]
    assert {event["id"] for event in deployment.events("started", 0)} == {task_id}
    stats = eventually(
        lambda: (s := deployment.stats())["pending"] == s["in_flight"] == 0 and s, 30, interval=0.2, what="empty"
    )
    assert stats["dead"] == 0, stats["dead_letters"]
    assert consumer.alive
    assert consumer.log().count(f"task {task_id} reclaimed after its lease expired") == KILLS
