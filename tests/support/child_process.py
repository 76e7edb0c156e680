"""Run a test module as a child process (``python -m <module> <mode> ...``) and read what it printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def start_module(module: str, args: list[str], env: dict[str, str], stdin: Any = None) -> subprocess.Popen[str]:
    """Start ``python -m module *args`` in the repository root with ``env``; output is captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], what: str, timeout: float) -> str:
    """Wait for ``process`` (at most ``timeout`` seconds), assert it exited 0, and return its standard output."""
    with process:
        out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{what} process failed:\n{err}"
    return out


def database_url() -> str:
    """The URL of pytest-django's test database (PostgreSQL or MariaDB), for a child's ``TASKS_Q_TEST_DB``."""
    from django.db import connection

    settings = connection.settings_dict
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"{scheme}://{auth}{settings.get('HOST') or '127.0.0.1'}{port}/{settings['NAME']}"


def release_together(workers: list[subprocess.Popen[str]], what: str) -> None:
    """Wait until every worker printed ``ready`` (set up, connected), then tell them all ``go``."""
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline().strip()
        if line != "ready":
            worker.kill()
            raise AssertionError(f"{what} did not start: {line!r}\n{worker.communicate(timeout=30)[1]}")
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()


def collect_json(workers: list[subprocess.Popen[str]], what: str, timeout: float) -> list[Any]:
    """Wait for every worker to exit 0 and return the JSON each printed, in order."""
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, f"{what} failed:\n{err}"
        outputs.append(json.loads(out))
    return outputs
