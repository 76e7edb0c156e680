"""Run the real ``run_tasks`` command (and helper commands) in subprocesses for end-to-end tests.

:class:`Deployment` is one queue URL, one ledger file and one Django database shared by every process of a test;
:class:`Consumer` is one ``run_tasks`` process (in its own process group). The fixtures at the end of this module
are registered for every test by ``tests/conftest.py``: ``chaos_lab`` builds a deployment per persistent storage —
``redis`` (a private redis-server of the session, a fresh key prefix per deployment), ``sqlite``, ``file`` and
``orm`` (the ORM storage in a PostgreSQL database of its own, made from a template migrated once per session and
dropped afterwards). Missing services skip those tests on a laptop and fail them under ``CI``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import support
from tests.support.redis_servers import RedisServer, free_ports

REPO = Path(__file__).resolve().parents[2]

STORAGES = ("redis", "sqlite", "file", "orm")
"""The persistent storages every chaos test runs against (``orm``: on PostgreSQL)."""

PG_HOST = os.environ.get("TASKS_Q_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("TASKS_Q_PG_PORT", "5432")
PG_USER = os.environ.get("TASKS_Q_PG_USER", "postgres")


def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """:func:`tests.support.eventually` at a pace that suits reading other processes' ledgers and stores."""
    return support.eventually(check, timeout, interval, what)


def queue_url(kind: str, folder: Path, redis_url: str = "") -> str:
    """The queue URL of storage ``kind`` (redis, sqlite, file, orm): files in ``folder``, a private Redis prefix."""
    if kind == "redis":
        return f"{redis_url}?prefix=tq-{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return f"sqlite:///{folder / 'queue.db'}"
    if kind == "file":
        return f"file://{folder / 'queue'}"
    if kind == "orm":
        return "orm://"
    raise ValueError(f"unknown storage kind {kind!r}")


def drained(deployment: Deployment) -> dict:
    """The store once nothing is pending or in flight (polled)."""
    return eventually(
        lambda: (stats := deployment.stats()) and stats["pending"] == stats["in_flight"] == 0 and stats,
        30,
        interval=0.2,
        what="an empty queue",
    )


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def child_pids(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` (Linux ``/proc``)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            children.append(int(entry.name))
    return children


class Deployment:
    """One queue URL, one ledger and one Django database shared by every process of a test.

    ``migrate=False`` when the Django database is ready already (copied from a migrated template);
    ``env`` adds environment variables for every process (``TASKS_Q_DJANGO_DB=postgres`` ...).
    """

    def __init__(self, folder: Path, url: str, lease: float = 2.0, *, migrate: bool = True, **env: str) -> None:
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
        if migrate:
            self.manage("migrate", "--noinput", "-v", "0")

    def manage(self, *args: str, check: bool = True, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        """Run a management command to completion."""
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            env={**self.env, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start_manage(self, *args: str) -> subprocess.Popen:
        """Start a management command without waiting for it (it is killed at close, if still running).

        Its output goes to ``<folder>/<command>-<random>.log`` (the process's ``log_path`` attribute).
        """
        log_path = self.folder / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "django", *args],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process.log_path = log_path  # type: ignore[attr-defined]
        self._helpers.append(process)
        return process

    @property
    def _helpers(self) -> list[subprocess.Popen]:
        if not hasattr(self, "_helper_processes"):
            self._helper_processes: list[subprocess.Popen] = []
        return self._helper_processes

    def enqueue(self, count: int, *extra: str) -> dict[str, Any]:
        """Enqueue ``count`` ledger tasks; returns ``{"count": ..., "ids": [...]}``."""
        return json.loads(self.manage("ledger_enqueue", str(count), *extra).stdout)

    def stats(self) -> dict[str, Any]:
        """Queue counts as seen by a fresh process."""
        return json.loads(self.manage("ledger_stats").stdout)

    def poison(self, marker: Path, *extra: str) -> list[dict[str, str]]:
        """Push poison straight into the store (``ledger_poison``); returns label, reason and sha of each."""
        return json.loads(self.manage("ledger_poison", "--marker", str(marker), *extra, timeout=120).stdout)

    def results(self, *ids: str, plant: str | None = None) -> dict[str, Any]:
        """Stored results of task ids, read by a fresh process (``ledger_result``)."""
        extra = ("--plant-error", plant) if plant else ()
        return json.loads(self.manage("ledger_result", *ids, *extra).stdout)

    def freeze_and_forget(self, consumer: Consumer, attempts: int = 40) -> float:
        """Freeze ``consumer`` (SIGSTOP) and delete every consumer/worker record the monitoring keeps; return when
        it was frozen.

        A consumer frozen in the middle of a write to the Django database holds its write lock until thawed, so
        no other process can delete anything meanwhile. Then it is thawed for a moment and frozen again.
        """
        for _ in range(attempts):
            frozen_at = time.time()
            consumer.signal_group(signal.SIGSTOP)
            done = self.manage("ledger_forget_workers", "--lock-timeout", "0.5", check=False)
            if done.returncode == 0:
                return frozen_at
            if done.returncode != 3:  # 3: the database was locked (see ledger_forget_workers)
                raise AssertionError(f"ledger_forget_workers exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
            consumer.signal_group(signal.SIGCONT)
            time.sleep(0.05)
        raise AssertionError(f"the consumer held the database's write lock at each of {attempts} freezes")

    def consumer(self, *args: str, **env: str) -> Consumer:
        """Start ``run_tasks`` with ``args`` in its own process group."""
        consumer = Consumer(self, list(args), env)
        self.consumers.append(consumer)
        return consumer

    def finished(self) -> set[int]:
        """Task numbers with a "finished" ledger line."""
        from tests.ledgerapp.ledger import count

        return set(count(self.ledger, "finished"))

    def events(self, event: str, n: int | None = None) -> list[dict[str, Any]]:
        """Ledger lines of one kind (of task number ``n`` only, when given)."""
        from tests.ledgerapp.ledger import read

        return [e for e in read(self.ledger) if e["event"] == event and (n is None or e.get("n") == n)]

    def close(self) -> None:
        """Stop every consumer and helper process still running."""
        for consumer in self.consumers:
            consumer.kill_group()
        for process in self._helpers:
            if process.poll() is None:
                process.kill()
                process.wait(10)


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

    @property
    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.process.poll() is None

    def log(self) -> str:
        """What the consumer printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def identity(self) -> str:
        """The consumer identity it logged at start (``host:pid:random``)."""
        for line in self.log().splitlines():
            if "consumer " in line and line.endswith(" starting"):
                return line.rsplit("consumer ", 1)[1].removesuffix(" starting")
        raise AssertionError(f"no start-up line in the log:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """Process ids of the consumer's live child processes (its process workers)."""
        return child_pids(self.pid)

    def signal(self, signum: int) -> None:
        """Send a signal to the main process."""
        self.process.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """Send a signal to every process of the consumer's group (SIGSTOP / SIGCONT ...)."""
        os.killpg(self.process.pid, signum)

    def kill_main(self) -> None:
        """SIGKILL the main process only (its workers are left to notice, RELIABILITY R8)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float = 30) -> int:
        """Wait for exit; returns the exit status."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(f"consumer did not exit within {timeout} s; log:\n{self.log()}") from None

    def kill_group(self) -> None:
        """SIGKILL the consumer and every process of its group."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        self._log.close()


# ---------------------------------------------------------------------------------------------- chaos fixtures


def stop(consumer: Consumer) -> None:
    """Stop ``consumer`` with SIGTERM, as a service manager does; it must exit cleanly within 30 s."""
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.log()


def _unavailable(message: str) -> None:
    """Skip on a developer's machine; fail under CI (``CI`` set), where every test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so these tests may not be skipped)", pytrace=False)
    pytest.skip(message)


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.consumer_settings", "PYTHONPATH": str(REPO),
             "TASKS_Q_URL": "file:///nonexistent", "TASKS_Q_LEDGER": os.devnull, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session", name="django_sqlite_template")
def fixture_django_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database for the consumers' Django settings, copied by every chaos deployment."""
    path = tmp_path_factory.mktemp("django-template") / "django.sqlite3"
    _migrate({"TASKS_Q_DB_PATH": str(path)})
    with sqlite3.connect(path) as conn:  # fold the WAL into the file, so a plain copy holds everything
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


class Postgres:
    """The PostgreSQL server of the chaos tests: an admin connection helper and per-test databases."""

    def __init__(self) -> None:
        self.conninfo = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres connect_timeout=3"
        password = os.environ.get("TASKS_Q_PG_PASSWORD")
        if password:
            self.conninfo += f" password={password}"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode on the ``postgres`` database; return its rows."""
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` every session connected to ``database``; returns how many."""
        rows = self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        return sum(1 for (done,) in rows if done)

    def create(self, name: str, template: str | None = None) -> None:
        """Create a database (from ``template`` when given)."""
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{suffix}')

    def drop(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self.terminate_backends(name)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", name="postgres")
def fixture_postgres() -> Postgres:
    """The PostgreSQL server on 127.0.0.1:5432 (``TASKS_Q_PG_HOST`` / ``_PORT`` / ``_USER``), or a skip."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed — pip install psycopg[binary]")
    server = Postgres()
    try:
        server.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}".strip())
    return server


@pytest.fixture(scope="session", name="postgres_template")
def fixture_postgres_template(postgres: Postgres) -> Iterator[str]:
    """A database ``tasks_q_chaos_<random>`` migrated once per session; each test gets a copy of it."""
    name = f"tasks_q_chaos_{uuid.uuid4().hex[:10]}"
    postgres.create(name)
    try:
        _migrate({"TASKS_Q_DJANGO_DB": "postgres", "TASKS_Q_DJANGO_DB_NAME": name})
        yield name
    finally:
        postgres.drop(name)


@pytest.fixture(scope="session", name="chaos_redis")
def fixture_chaos_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (append-only file on) for this session's chaos tests, on a free loopback port.

    Private, so that no other test session flushing the shared server's database can touch its data.
    """
    (port,) = free_ports(1)
    server = RedisServer(port, tmp_path_factory.mktemp("chaos-redis"), "--appendonly", "yes")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ChaosLab:
    """Builds deployments of one test against the persistent storages (see the module docstring)."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request = request
        self.folder = folder
        self.deployments: list[Deployment] = []
        self.databases: list[str] = []
        self.postgres: Postgres | None = None

    def deploy(self, kind: str, lease: float = 2.0, *, django_db: str = "sqlite", **env: str) -> Deployment:
        """A deployment of storage ``kind`` (one of :data:`STORAGES`) with a ready Django database.

        ``kind`` may also be a queue URL (a private Redis server's ...). ``django_db``: ``"sqlite"`` or
        ``"postgres"`` for the consumers' Django database; the ``orm`` storage always uses PostgreSQL
        (``orm-sqlite`` is the ORM storage on SQLite).
        """
        label = kind.split("://", 1)[0] if "://" in kind else kind
        folder = self.folder / f"{label}-{len(self.deployments)}"
        folder.mkdir()
        if kind == "redis":
            url = queue_url(kind, folder, self.request.getfixturevalue("chaos_redis").url)
        elif kind in ("sqlite", "file"):
            url = queue_url(kind, folder)
        elif kind in ("orm", "orm-sqlite"):
            url = "orm://"
            django_db = "postgres" if kind == "orm" else "sqlite"
        elif "://" in kind:
            url = kind
        else:
            raise ValueError(f"unknown storage kind {kind!r}")
        if django_db == "postgres":
            template = self.request.getfixturevalue("postgres_template")
            self.postgres = self.request.getfixturevalue("postgres")
            name = f"{template}_{len(self.databases)}"
            self.postgres.create(name, template=template)
            self.databases.append(name)
            env = {"TASKS_Q_DJANGO_DB": "postgres", "TASKS_Q_DJANGO_DB_NAME": name, **env}
        else:
            shutil.copyfile(self.request.getfixturevalue("django_sqlite_template"), folder / "django.sqlite3")
        deployment = Deployment(folder, url, lease, migrate=False, **env)
        self.deployments.append(deployment)
        return deployment

    def close(self) -> None:
        """Stop every process and drop the databases of this test; print the consumer logs' tails.

        (pytest shows what a test printed only when it fails.)
        """
        for deployment in self.deployments:
            deployment.close()
            for consumer in deployment.consumers:
                tail = "\n".join(consumer.log().splitlines()[-60:])
                print(f"---- {deployment.url} consumer {consumer.pid} (exit {consumer.process.returncode}):\n{tail}")
        if self.postgres is not None:
            for name in self.databases:
                self.postgres.drop(name)


@pytest.fixture(name="chaos_lab")
def fixture_chaos_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChaosLab]:
    """Deployments for this test; every process they started is killed afterwards."""
    lab = ChaosLab(request, tmp_path)
    try:
        yield lab
    finally:
        lab.close()
