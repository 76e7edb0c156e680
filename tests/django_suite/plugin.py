"""pytest plugin for Django's ``tests/tasks`` modules: the queue behind TasksQBackend, per module.

Django tests its immediate backend (tasks run inside ``enqueue()``) and its dummy backend (tasks are only
recorded) with the same assertions a real backend must meet. With the backend path swapped to ours, the
immediate backend's module runs on an immediate memory queue and every other module on a memory queue that
no consumer reads, which is what each module's assertions expect of the backend they name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

IMMEDIATE_MODULES = {"tasks.test_immediate_backend"}


def queue_settings(module: str) -> dict[str, Any]:
    """TASKS_Q for the Django test module ``module``."""
    conf: dict[str, Any] = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}
    if module in IMMEDIATE_MODULES:
        conf["IMMEDIATE"] = True
    return {"default": conf}


@pytest.fixture(autouse=True)
def tasks_q_queue(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test of the module gets its queue afresh."""
    with override_settings(TASKS_Q=queue_settings(request.module.__name__)):
        yield
