"""pytest fixtures for projects that use django-tasks-q (registered through the ``pytest11`` entry point).

- ``tasks_q_immediate``: every queue runs tasks at once, in memory.
- ``tasks_q_memory``: every queue keeps tasks in memory; the fixture's value is
  :func:`django_tasks_q.testing.drain`, so ``tasks_q_memory()`` runs what is pending.
- ``tasks_q_captured``: the list of task calls enqueued during the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def tasks_q_immediate() -> Iterator[None]:
    """Run every queue immediately, in memory, for this test."""
    from .testing import immediate_queues

    with immediate_queues():
        yield


@pytest.fixture
def tasks_q_memory() -> Iterator[Callable[..., int]]:
    """Keep every queue in memory for this test; call the value to drain the queues."""
    from .testing import drain, memory_queues

    with memory_queues():
        yield drain


@pytest.fixture
def tasks_q_captured() -> Iterator[list]:
    """The task calls enqueued during this test (a ``CapturedTasks`` list)."""
    from .testing import capture_tasks

    with capture_tasks() as captured:
        yield captured
