"""Chaos tests of delivery and recovery (RELIABILITY R1-R8, R16, R19, R27) against every persistent storage.

Each test runs the real ``run_tasks`` command in subprocesses with a 2 s lease, kills or pauses them, and
checks the ledger (what each task wrote when it started and finished) and the store (what a fresh process sees).
See ``tests/support/deployments.py`` for the deployments and ``tests/ledgerapp`` for the tasks.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.deployments import (
    ChaosLab,
    Deployment,
    drained,
    eventually,
    process_exists,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(120)]


def finished_counts(deployment: Deployment) -> Counter:
    return Counter(event["n"] for event in deployment.events("finished"))


# ---------------------------------------------------------------------------------------------------------- R1


def test_r1_kill_9_of_the_consumer_mid_run_loses_nothing(chaos_lab: ChaosLab, kind: str) -> None:
    deployment = chaos_lab.deploy(kind)
    deployment.enqueue(200, "--sleep", "0.05")
    consumer = deployment.consumer("--workers", "4")
    eventually(lambda: len(deployment.events("started")) >= 20, 60, what="20 tasks started")
    consumer.kill_group()
    in_flight_at_kill = deployment.stats()["in_flight"]
    assert in_flight_at_kill <= 4

    restart = deployment.consumer("--workers", "4")
    eventually(lambda: deployment.finished() == set(range(200)), 60, what="every task finished")
    stats = drained(deployment)
    assert stats["dead"] == 0, stats
    duplicates = sum(count - 1 for count in finished_counts(deployment).values())
    assert duplicates <= in_flight_at_kill, (duplicates, in_flight_at_kill)
    redelivered = [event for event in deployment.events("started") if event["redelivered"]]
    assert len(redelivered) <= in_flight_at_kill  # (a redelivered periodic heartbeat writes no ledger line)
    assert all(event["attempt"] == 2 for event in redelivered)
    # R6: a fresh identity per process start
    assert restart.identity() != consumer.identity()
    stop(restart)


# ---------------------------------------------------------------------------------------------------- R2, R19


def test_r2_r19_crash_right_after_reserve_and_right_before_ack(chaos_lab: ChaosLab, kind: str) -> None:
    """``os._exit`` just after the claim (n=0) and just before the ack (n=1): both run again as attempt 2 with
    the same task id; a retried task (R19) keeps its id too. The crashes kill the whole consumer (thread
    workers), so a message could only survive in the store."""
    crash = json.dumps({"after_reserve": [0], "before_ack": [1]})
    deployment = chaos_lab.deploy(kind, TASKS_Q_CRASH=crash)
    ids = deployment.enqueue(2)["ids"]

    first = deployment.consumer("--workers", "1")
    assert first.wait(30) == 17, first.log()  # died in reserve() of n=0
    stats = deployment.stats()
    assert (stats["in_flight"], stats["in_flight_attempts"]) == (1, [1]), stats  # in the store, in flight

    second = deployment.consumer("--workers", "1")
    assert second.wait(30) == 17, second.log()  # died in ack() of n=1
    assert [event["point"] for event in deployment.events("crash")] == ["after_reserve", "before_ack"]

    flaky_id = deployment.enqueue(1, "--task", "flaky", "--start", "5")["ids"][0]
    third = deployment.consumer("--workers", "1")
    eventually(lambda: deployment.finished() == {0, 1, 5}, 30, what="every task finished")
    drained(deployment)
    stop(third)

    started = {n: [(e["id"], e["attempt"], e["redelivered"]) for e in deployment.events("started", n)] for n in (0, 1)}
    assert started[0] == [(ids[0], 2, True)]  # never started before the crash
    assert started[1] == [(ids[1], 1, False), (ids[1], 2, True)]  # finished, not acked, run again
    flaky = [(e["id"], e["retries"], e["attempt"]) for e in deployment.events("started", 5)]
    assert flaky == [(flaky_id, 1, 1), (flaky_id, 0, 1)]  # a retry is a new delivery of the same task id
    # R27: both reclaims logged with the task id, and signalled
    log = third.log() + second.log()
    for task_id in ids:
        assert f"task {task_id} reclaimed after its lease expired" in log
    reclaimed = {tuple(e["args"]) for e in deployment.events("signal") if e["signal"] == "reclaimed"}
    assert {args[0] for args in reclaimed} == set(ids)


# ---------------------------------------------------------------------------------------------------------- R3


def test_r3_a_task_three_leases_long_runs_once_with_two_consumers_up(chaos_lab: ChaosLab, kind: str) -> None:
    """The lease is renewed by the consumer: by its lease keeper for thread workers (A) and by the worker
    process's own keeper for process workers (B); the other consumer's reaper never takes the message."""
    deployment = chaos_lab.deploy(kind)
    # A worker process can take seconds to start on a loaded machine, so the process consumer proves its worker
    # is up (by running a short task, alone) before it is given the first long task; the thread consumer, whose
    # workers start right after its start-up summary, then gets the second while the first still runs.
    process_consumer = deployment.consumer("--workers", "1", "--worker-type", "process")
    deployment.enqueue(1, "--start", "2")
    eventually(lambda: deployment.finished() == {2}, 60, what="the process consumer's worker ran a task")
    deployment.enqueue(1, "--sleep", "6.5")
    eventually(lambda: deployment.events("started", 0), 30, what="the first long task started")
    thread_consumer = deployment.consumer("--workers", "1")
    eventually(lambda: "starting" in thread_consumer.log(), 30, what="the thread consumer started")
    deployment.enqueue(1, "--start", "1", "--sleep", "6.5")
    deployment.enqueue(9, "--start", "3")
    eventually(lambda: deployment.finished() == set(range(12)), 60, what="every task finished")
    drained(deployment)
    assert finished_counts(deployment) == Counter(range(12))
    assert len(deployment.events("started")) == 12
    long_runs = {event["pid"] for event in deployment.events("started") if event["n"] in (0, 1)}
    assert thread_consumer.pid in long_runs and len(long_runs) == 2  # one long task in each kind of worker
    assert deployment.events("signal") == []  # nothing reclaimed, no lease lost
    for consumer in (thread_consumer, process_consumer):
        assert "lost" not in consumer.log()
        stop(consumer)


# ------------------------------------------------------------------------------------------------ R4, R5, R6


def test_r4_r5_r6_a_frozen_consumer_loses_its_lease_and_its_stale_ack_is_a_no_op(
    chaos_lab: ChaosLab, kind: str
) -> None:
    """A runs a task and is frozen (SIGSTOP); every consumer/worker record is deleted; B reclaims the message
    within lease + reaper interval and runs it; A is thawed, finishes and acks with its stale token: a logged,
    signalled no-op that leaves B's reservation alone; B's ack removes the message."""
    deployment = chaos_lab.deploy(kind)
    task_id = deployment.enqueue(1, "--sleep", "3")["ids"][0]
    a = deployment.consumer("--workers", "1")
    eventually(lambda: deployment.events("started", 0), 30, what="A started the task")
    b = deployment.consumer("--workers", "1")
    eventually(lambda: " starting" in b.log(), 30, what="B started")
    frozen_at = deployment.freeze_and_forget(a)  # R6: recovery needs no record of A (what monitoring wrote is gone)

    second_run = eventually(
        lambda: [e for e in deployment.events("started", 0) if e["attempt"] == 2], 30, what="B runs attempt 2"
    )[0]
    assert second_run["pid"] == b.pid and second_run["id"] == task_id and second_run["redelivered"]
    # The reaper signals after it has put the message back, so a worker may start it before the line is written.
    [reclaim] = eventually(
        lambda: [e for e in deployment.events("signal") if e["signal"] == "reclaimed"], 30, what="the reclaim signal"
    )
    # R4: back in the queue within lease (2 s) + reaper interval (1 s) of the freeze (A renewed just before)
    assert reclaim["t"] - frozen_at <= 2.0 + 1.0 + 0.75, reclaim["t"] - frozen_at
    assert reclaim["pid"] == b.pid and reclaim["args"][0] == task_id

    a.signal_group(signal.SIGCONT)  # A's sleep is over: it finishes at once and acks with a stale token
    lost = eventually(
        lambda: [e for e in deployment.events("signal") if e["signal"] == "lost-lease"], 30, what="A's lost lease"
    )
    assert lost[0]["pid"] == a.pid and lost[0]["task_id"] == task_id
    assert f"(task {task_id}) was lost" in a.log()
    stats = deployment.stats()
    if not deployment.events("finished", 0)[1:]:  # B still runs: the message is still B's
        assert stats["in_flight_attempts"] == [2], stats
    eventually(lambda: len(deployment.events("finished", 0)) == 2, 30, what="B finished")
    assert drained(deployment)["dead"] == 0
    assert [e["attempt"] for e in deployment.events("finished", 0)] == [1, 2]
    stop(a)
    stop(b)


# ---------------------------------------------------------------------------------------------------------- R7


def test_r7_sigterm_hands_back_work_that_did_not_start(chaos_lab: ChaosLab, kind: str, tmp_path: Path) -> None:
    """SIGTERM while two tasks run and a third worker waits for work; messages arrive right after the signal.
    Nothing starts after the signal, the not-started messages are ready within a second (no attempt counted),
    the running tasks finish, the consumer exits 0, and nothing is lost."""
    deployment = chaos_lab.deploy(kind)
    trigger = tmp_path / f"go-{kind}"
    deployment.enqueue(2, "--sleep", "2")
    late = deployment.start_manage("ledger_enqueue", "4", "--start", "10", "--when-exists", str(trigger))
    deployment.start_manage("ledger_watch")
    # --no-periodic: a periodic task enqueued at start-up would be a fifth message and could occupy the idle worker
    consumer = deployment.consumer("--workers", "3", "--no-periodic")
    eventually(lambda: len(deployment.events("started")) == 2, 30, what="two tasks running")
    eventually(lambda: deployment.events("watching"), 30, what="the depth watcher")
    signalled = time.time()
    consumer.signal(signal.SIGTERM)
    eventually(lambda: "received SIGTERM" in consumer.log(), 5, interval=0.005, what="the signal handled")
    trigger.touch()  # the messages arrive while the idle worker waits in reserve()
    assert late.wait(30) == 0, late.log_path.read_text()
    assert consumer.wait(30) == 0, consumer.log()
    assert deployment.finished() == {0, 1}
    assert {e["n"] for e in deployment.events("started")} == {0, 1}, "a task started after SIGTERM"
    try:
        ready_at = eventually(
            lambda: [e["t"] for e in deployment.events("depth") if e["t"] > signalled and e.get("pending") == 4],
            10,
            what="four messages ready",
        )[0]
    except AssertionError as exc:
        samples = [e for e in deployment.events("depth") if e["t"] > signalled][-5:]
        raise AssertionError(
            f"{exc}; last depth samples {samples}; stats {deployment.stats()}; consumer log:\n{consumer.log()[-3000:]}"
        ) from exc
    assert ready_at - signalled < 1.0, ready_at - signalled
    stats = deployment.stats()
    assert (stats["pending"], stats["in_flight"]) == (4, 0), stats

    restart = deployment.consumer("--burst", "--workers", "2")
    assert restart.wait(60) == 0, restart.log()
    assert finished_counts(deployment) == Counter([0, 1, 10, 11, 12, 13])
    assert all(e["attempt"] == 1 for e in deployment.events("started"))  # handing back counted no attempt


# ---------------------------------------------------------------------------------------------------------- R8


def test_r8_worker_processes_exit_within_5_s_of_the_main_process_being_killed(chaos_lab: ChaosLab) -> None:
    """On Redis only: what ends an orphaned worker (the kernel's parent-death signal and the worker's parent watch)
    does not depend on the storage, and the recovery of its messages is R1's, proved on every storage."""
    deployment = chaos_lab.deploy("redis")
    deployment.enqueue(30, "--sleep", "0.3")
    consumer = deployment.consumer("--worker-type", "process", "--workers", "2")
    eventually(lambda: len({e["pid"] for e in deployment.events("started")}) == 2, 30, what="both workers busy")
    workers = consumer.worker_pids()
    assert {e["pid"] for e in deployment.events("started")} <= set(workers)
    consumer.kill_main()
    killed = time.monotonic()
    eventually(lambda: not any(process_exists(pid) for pid in workers), 5, interval=0.02, what="workers gone")
    assert time.monotonic() - killed < 5

    restart = deployment.consumer("--worker-type", "process", "--workers", "2")
    eventually(lambda: deployment.finished() == set(range(30)), 60, what="every task finished")
    drained(deployment)
    stop(restart)


# --------------------------------------------------------------------------------------------------- R16, R27


def test_r16_a_task_that_kills_its_worker_is_dead_lettered_after_exactly_max_attempts(
    chaos_lab: ChaosLab, kind: str
) -> None:
    deployment = chaos_lab.deploy(kind, lease=1.0, TASKS_Q_MAX_ATTEMPTS="3")
    killer_id = deployment.enqueue(50, "--killer", "--sleep", "0.02")["ids"][0]
    consumer = deployment.consumer("--worker-type", "process", "--workers", "2")
    eventually(lambda: deployment.finished() == set(range(50)), 60, what="the 50 others finished")
    stats = eventually(lambda: (s := deployment.stats())["dead"] == 1 and s, 60, interval=0.2, what="a dead letter")
    assert stats["dead_letters"][0]["reason"] == "max_attempts"
    assert stats["dead_letters"][0]["attempts"] == 3
    assert [e["attempt"] for e in deployment.events("started", -99)] == [1, 2, 3]
    assert {e["id"] for e in deployment.events("started", -99)} == {killer_id}
    assert finished_counts(deployment) == Counter(range(50))  # the others ran once each
    assert consumer.alive
    log = consumer.log()
    assert f"task {killer_id} dead-lettered after 3 attempts" in log
    assert log.count(f"task {killer_id} reclaimed after its lease expired") == 2
    [dead] = [e["args"] for e in deployment.events("signal") if e["signal"] == "dead-lettered"]
    assert dead[0] == "max_attempts" and killer_id in dead[1], dead
    stop(consumer)
