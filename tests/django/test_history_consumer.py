"""History and heartbeats written by the real ``run_tasks`` (thread and process workers), end to end (issue #7)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.deployments import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_run_tasks_records_history_and_heartbeats(tmp_path: Path, worker_type: str) -> None:
    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        deployment.enqueue(12)
        consumer = deployment.consumer("--burst", "--workers", "2", "--worker-type", worker_type)
        assert consumer.wait(60) == 0, consumer.log()
    finally:
        deployment.close()
    assert deployment.finished() == set(range(12))
    with sqlite3.connect(tmp_path / "django.sqlite3") as db:
        rows = db.execute("SELECT status, attempts, worker, result FROM django_tasks_q_history WHERE name = ?",
                          ("tests.ledgerapp.tasks.record",)).fetchall()
        beats = db.execute("SELECT pid, workers, worker_type, tasks_run, stopped_at FROM django_tasks_q_consumer").fetchall()
        counted = db.execute("SELECT SUM(succeeded), SUM(failed) FROM django_tasks_q_minute").fetchone()
        periodic = db.execute("SELECT enqueued_at FROM django_tasks_q_history WHERE name = ?",
                              ("ledger.heartbeat",)).fetchall()
    assert len(rows) == 12 and {row[0] for row in rows} == {"complete"} and {row[1] for row in rows} == {1}
    assert all(" default-" in row[2] for row in rows), rows
    assert sorted(int(row[3]) for row in rows) == list(range(12))
    [(pid, workers, kind, tasks_run, stopped_at)] = beats
    assert pid == consumer.pid and workers == 2 and kind == worker_type
    # The ledger's every-minute periodic task runs once for each minute the run touched (none, one or two).
    minutes = [str(row[0])[:16] for row in periodic]
    assert len(minutes) == len(set(minutes)) <= 2, minutes
    assert tasks_run == 12 + len(minutes) and stopped_at is not None
    assert counted[0] == tasks_run and counted[1] == 0
