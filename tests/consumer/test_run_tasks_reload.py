"""``run_tasks --reload`` and the default without it, with the real command in subprocesses.

Under ``--reload`` the command is a parent that starts the consumer as a child in a process group of its own:
a stop signal to the parent is forwarded once and the parent waits for the child's graceful stop; a code change
stops the child gracefully and starts a new one; a ``kill -9`` of the parent stops the child gracefully too.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.deployments import (
    ChaosLab,
    Consumer,
    Deployment,
    child_pids,
    eventually,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEDGER_TASKS = Path(__file__).resolve().parents[1] / "ledgerapp" / "tasks.py"


@pytest.fixture
def deployment(chaos_lab: ChaosLab) -> Deployment:
    """A SQLite queue with a ready Django database."""
    return chaos_lab.deploy("sqlite", lease=60.0)


def reloading(deployment: Deployment, *args: str) -> tuple[Consumer, int]:
    """Start ``run_tasks --reload``; returns the parent and, once it runs, its consumer child's pid."""
    parent = deployment.consumer("--reload", *args)
    [child] = eventually(lambda: child_pids(parent.pid), 30, what="the consumer child")
    eventually(lambda: parent.log().count(" starting") >= 1, 30, what="the consumer's start-up line")
    return parent, child


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def kill_if_running(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_to_the_reloading_parent_stops_the_consumer_gracefully(
    deployment: Deployment, signum: int
) -> None:
    parent, child = reloading(deployment)
    try:
        deployment.enqueue(1, "--sleep", "2")
        eventually(lambda: deployment.events("started"), 30, what="the task started")
        parent.signal(signum)
        assert parent.wait(30) == 0, parent.log()
        assert gone(child)
    finally:
        kill_if_running(child)
    log = parent.log()
    assert f"received {signal.Signals(signum).name}: stopping gracefully" in log
    assert log.count("received ") == 1, log  # forwarded once: not a second, "at once" signal
    assert deployment.finished() == {0}, log  # the running task was finished, not abandoned to its lease
    assert "handed back" not in log


def test_kill_9_of_the_reloading_parent_stops_its_consumer_gracefully(deployment: Deployment) -> None:
    parent, child = reloading(deployment)
    try:
        deployment.enqueue(1, "--sleep", "2")
        eventually(lambda: deployment.events("started"), 30, what="the task started")
        parent.kill_main()
        eventually(lambda: gone(child), 30, what="the orphaned consumer's exit")
    finally:
        kill_if_running(child)
    assert "received SIGTERM: stopping gracefully" in parent.log()
    assert deployment.finished() == {0}, parent.log()


def test_a_code_change_restarts_the_consumer_after_a_graceful_stop(deployment: Deployment) -> None:
    parent, child = reloading(deployment)
    children = [child]
    try:
        deployment.enqueue(1, "--sleep", "2")
        eventually(lambda: deployment.events("started"), 30, what="the task started")
        stat = LEDGER_TASKS.stat()
        os.utime(LEDGER_TASKS, (stat.st_atime, time.time() + 5))  # same content, newer: a change to the watcher
        try:
            eventually(lambda: parent.log().count(" starting") >= 2, 30, what="a second consumer")
        finally:
            os.utime(LEDGER_TASKS, (stat.st_atime, stat.st_mtime))
        [second] = eventually(lambda: child_pids(parent.pid), 30, what="the new consumer child")
        children.append(second)
        assert second != child and gone(child)
        log = parent.log()
        assert "tasks.py changed: stopping gracefully to load the new code" in log
        # the old consumer finished its task and said it stopped before the new one started
        assert log.index("stopped") < log.rindex(" starting"), log
        assert deployment.finished() == {0}, log
        deployment.enqueue(1, "--start", "1")
        eventually(lambda: deployment.finished() == {0, 1}, 30, what="a task run by the new consumer")
        # the admin shows one live consumer: the old one recorded its stop before the new one started
        def consumers() -> list[tuple[int, bool]]:
            with sqlite3.connect(deployment.folder / "django.sqlite3") as db:
                rows = db.execute("SELECT pid, stopped_at FROM django_tasks_q_consumer ORDER BY started_at")
                return [(pid, stopped is None) for pid, stopped in rows.fetchall()]

        eventually(lambda: len(consumers()) == 2, 30, what="the new consumer's heartbeat")
        assert consumers() == [(child, False), (second, True)]
        parent.signal(signal.SIGTERM)
        assert parent.wait(30) == 0, parent.log()
    finally:
        for pid in children:
            kill_if_running(pid)


def test_without_reload_the_consumer_is_one_process_even_with_debug(deployment: Deployment) -> None:
    (deployment.folder / "debug_settings.py").write_text("from tests.consumer_settings import *\n\nDEBUG = True\n")
    deployment.env["PYTHONPATH"] += os.pathsep + str(deployment.folder)
    deployment.env["DJANGO_SETTINGS_MODULE"] = "debug_settings"
    consumer = deployment.start_manage("run_tasks")  # no --reload, no --no-reload
    log = consumer.log_path  # type: ignore[attr-defined]
    eventually(lambda: " starting" in log.read_text(), 30, what="the start-up line")
    assert child_pids(consumer.pid) == []
    assert "watching for code changes" not in log.read_text()
    consumer.send_signal(signal.SIGINT)
    assert consumer.wait(30) == 0, log.read_text()
    assert "received SIGINT: stopping gracefully" in log.read_text()
