"""Helpers shared by the test folders; fixtures live in the ``conftest.py`` of the folder that uses them.

- this module: :func:`eventually`, the one way a test waits for a condition;
- ``hub``: a fresh memory queue, a signal recorder and a hand-cranked worker (``run_next``, ``drain``);
- ``deployments``: the real ``run_tasks`` in subprocesses against a throwaway project (``Deployment``,
  ``Consumer``, ``stop``, ``ChaosLab`` and their fixtures);
- ``redis_servers``: private ``redis-server`` processes on free loopback ports;
- ``child_process`` and ``process_drain``: Python children started by module and storages drained by several
  processes at once;
- ``storage_contract``: the storage contract as a reusable test class;
- ``admin``: tasks, settings, users and pages for the admin tests;
- ``expected_failures``: the expected-failure lists of the huey and Django suites.

Django's side of a test (queues in memory, running what was enqueued, capturing calls) is
``django_tasks_q.testing``, which the tests use as a project would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)
