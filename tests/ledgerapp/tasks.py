"""Ledger tasks for end-to-end consumer tests."""

from __future__ import annotations

import os
import signal
import time

from django_tasks_q import crontab
from django_tasks_q.decorators import periodic_task, task

from . import ledger


class LedgerError(Exception):
    """What ``fail_with`` raises (its stored result reads back as a TaskException, RELIABILITY R23)."""


def _context(task) -> dict:
    return {"id": task.id, "attempt": task.attempt, "redelivered": task.redelivered}


@task(context=True)
def record(n: int, sleep: float = 0.0, task=None) -> int:
    """Write "started", sleep, write "finished"."""
    ledger.write("started", n=n, **_context(task))
    if sleep:
        time.sleep(sleep)
    ledger.write("finished", n=n, **_context(task))
    return n


@task(context=True)
def kill_own_worker(n: int, task=None) -> None:
    """SIGKILL the process running this task (a crash-looping message)."""
    ledger.write("started", n=n, **_context(task))
    os.kill(os.getpid(), signal.SIGKILL)


@task(context=True, retries=1)
def flaky(n: int, task=None) -> int:
    """Fail on the first run of ``n`` (one retry left), succeed on the second (RELIABILITY R19)."""
    runs = sum(1 for event in ledger.read(ledger.ledger_path()) if event["event"] == "started" and event["n"] == n)
    ledger.write("started", n=n, retries=task.retries, **_context(task))
    if runs == 0:
        raise LedgerError(f"flaky {n} fails its first run")
    ledger.write("finished", n=n, retries=task.retries, **_context(task))
    return n


@task(context=True)
def unserializable(n: int, task=None) -> object:
    """Return a value that JSON cannot hold (RELIABILITY R17)."""
    ledger.write("started", n=n, **_context(task))
    ledger.write("finished", n=n, **_context(task))
    return object()


@task(context=True)
def fail_with(n: int, task=None) -> None:
    """Raise LedgerError (its result must be stored as text, RELIABILITY R23)."""
    ledger.write("started", n=n, **_context(task))
    ledger.write("finished", n=n, **_context(task))
    raise LedgerError(f"ledger task {n} failed on purpose")


TASKS = {"record": record, "flaky": flaky, "unserializable": unserializable, "fail_with": fail_with}


@periodic_task(crontab(), name="ledger.heartbeat")
def heartbeat() -> None:
    """Every minute."""
    if os.environ.get("TASKS_Q_LEDGER_HEARTBEAT"):
        ledger.write("heartbeat", n=-1)
