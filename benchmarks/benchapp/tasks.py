"""The benchmark task of django-tasks-q (autodiscovered by ``run_tasks``)."""

from __future__ import annotations

from benchmarks.body import record
from django_tasks_q.decorators import task


@task("bench")
def noop(n: int) -> None:
    """Append a record to the ledger (see :mod:`benchmarks.body`)."""
    record(n)
