"""Ledger tasks for end-to-end consumer tests."""

from __future__ import annotations

import os
import signal
import time

from django_tasks_q import crontab
from django_tasks_q.decorators import periodic_task, task

from . import ledger


@task(context=True)
def record(n: int, sleep: float = 0.0, task=None) -> int:
    """Write "started", sleep, write "finished"."""
    ledger.write("started", n=n, id=task.id, attempt=task.attempt)
    if sleep:
        time.sleep(sleep)
    ledger.write("finished", n=n, id=task.id, attempt=task.attempt)
    return n


@task(context=True)
def kill_own_worker(n: int, task=None) -> None:
    """SIGKILL the process running this task (a crash-looping message)."""
    ledger.write("started", n=n, id=task.id, attempt=task.attempt)
    os.kill(os.getpid(), signal.SIGKILL)


@periodic_task(crontab(), name="ledger.heartbeat")
def heartbeat() -> None:
    """Every minute."""
    if os.environ.get("TASKS_Q_LEDGER_HEARTBEAT"):
        ledger.write("heartbeat", n=-1)
