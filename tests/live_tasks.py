"""A schedulable task for the live schedule tests (``tests/django/test_schedules_live.py``).

This module is an app of its own (``tests.live_settings`` adds it to ``INSTALLED_APPS``), so that consumers
started with those settings register its task; the pytest process never imports it, so the task is not
registered beside the tasks of the other tests.
"""

from __future__ import annotations

from django_tasks_q.decorators import task
from tests.ledgerapp import ledger


@task(name="live.beat", schedulable=True, context=True)
def beat(label: str, task=None) -> str:
    """Write a "beat" ledger line with ``label`` and the task id."""
    ledger.write("beat", n=-1, label=label, id=task.id)
    return label
