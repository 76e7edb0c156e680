"""Run the real ``run_tasks`` command (and helper commands) in subprocesses for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


class Deployment:
    """One queue URL, one ledger and one Django database shared by every process of a test."""

    def __init__(self, folder: Path, url: str, lease: float = 2.0, **env: str) -> None:
        self.folder = folder
        self.url = url
        self.ledger = folder / "ledger.jsonl"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.consumer_settings",
            "PYTHONPATH": str(REPO),
            "TASKS_Q_URL": url,
            "TASKS_Q_LEASE": str(lease),
            "TASKS_Q_LEDGER": str(self.ledger),
            "TASKS_Q_DB_PATH": str(folder / "django.sqlite3"),
            **env,
        }
        self.consumers: list[Consumer] = []
        self.manage("migrate", "--noinput", "-v", "0")

    def manage(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a management command to completion."""
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def enqueue(self, count: int, *extra: str) -> None:
        """Enqueue ``count`` ledger tasks."""
        self.manage("ledger_enqueue", str(count), *extra)

    def stats(self) -> dict[str, Any]:
        """Queue counts as seen by a fresh process."""
        return json.loads(self.manage("ledger_stats").stdout)

    def consumer(self, *args: str, **env: str) -> Consumer:
        """Start ``run_tasks`` with ``args`` in its own process group."""
        consumer = Consumer(self, list(args), env)
        self.consumers.append(consumer)
        return consumer

    def finished(self) -> set[int]:
        """Task numbers with a "finished" ledger line."""
        from tests.ledgerapp.ledger import count

        return set(count(self.ledger, "finished"))

    def events(self, event: str) -> list[dict[str, Any]]:
        """Ledger lines of one kind."""
        from tests.ledgerapp.ledger import read

        return [e for e in read(self.ledger) if e["event"] == event]

    def close(self) -> None:
        """Stop every consumer still running."""
        for consumer in self.consumers:
            consumer.kill_group()


class Consumer:
    """A ``run_tasks`` subprocess."""

    def __init__(self, deployment: Deployment, args: list[str], env: dict[str, str]) -> None:
        self.log_path = deployment.folder / f"consumer-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "run_tasks", "--no-reload", *args],
            env={**deployment.env, **env},
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The consumer's main process id."""
        return self.process.pid

    def log(self) -> str:
        """What the consumer printed so far."""
        self._log.flush()
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        """Send a signal to the main process."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for exit; returns the exit status."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(f"consumer did not exit within {timeout} s; log:\n{self.log()}") from None

    def kill_group(self) -> None:
        """SIGKILL the consumer and every process of its group."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._log.close()
