"""OrmStorage between processes: 4 processes reserve from one queue of 2,000 messages; each is delivered once.

The workers are real processes (``python -m tests.storages.test_orm_concurrency work ...``) that call ``django.setup()``
with ``DJANGO_SETTINGS_MODULE=tests.settings`` and ``TASKS_Q_TEST_DB`` set to the database to use:

* PostgreSQL and MariaDB: the test database pytest-django created (its NAME is passed in). The test commits for
  real (``transaction=True``), so the processes see the tables and the rows.
* SQLite: pytest-django's SQLite test database lives in memory, where no other process can reach it; the test
  makes a SQLite *file* database in a temporary folder instead and migrates it with one more process
  (``migrate``), so the claim is still tested between processes, on SQLite's file locking.

Seeding (one transaction of 2,000 ``enqueue`` calls) and the final count also run in a process, the same way on
every database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.support.child_process import collect_json, database_url, finish, release_together, start_module

pytestmark = [pytest.mark.db_backends, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKERS = 4
MESSAGES = 2000
LEASE = 60.0


def child(mode: str, db_url: str, *args: str, stdin: Any = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TASKS_Q_TEST_DB": db_url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return start_module("tests.storages.test_orm_concurrency", [mode, *args], env, stdin)


def run_child(mode: str, db_url: str, *args: str) -> str:
    return finish(child(mode, db_url, *args), mode, timeout=60)


def test_four_processes_each_message_delivered_exactly_once() -> None:
    queue = f"procs-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as folder:
        if connection.vendor == "sqlite":
            db_url = "sqlite:///" + str(Path(folder) / "procs.sqlite3")
            run_child("migrate", db_url)
        else:
            db_url = database_url()
        run_child("seed", db_url, queue, str(MESSAGES))
        assert json.loads(run_child("stats", db_url, queue)) == {"ready": MESSAGES, "in_flight": 0}

        with ExitStack() as stack:  # leaving it closes every pipe and waits for every process
            workers = [
                stack.enter_context(child("work", db_url, queue, stdin=subprocess.PIPE))
                for _ in range(WORKERS)
            ]
            stack.callback(lambda: [worker.kill() for worker in workers if worker.poll() is None])
            release_together(workers, "worker")  # every process is set up and connected before any starts
            started = time.monotonic()
            outputs = collect_json(workers, "worker", timeout=100)
            elapsed = time.monotonic() - started

        delivered = [item for out in outputs for item in out["got"]]
        counts = Counter(delivered)
        duplicates = {item: n for item, n in counts.items() if n > 1}
        assert not duplicates, f"delivered more than once: {sorted(duplicates)[:10]}"
        assert sorted(counts) == sorted(f"m{i}" for i in range(MESSAGES)), "some messages were not delivered"
        per_worker = [len(out["got"]) for out in outputs]
        assert sum(per_worker) == MESSAGES
        assert sum(1 for n in per_worker if n) >= 2, f"the processes did not overlap: {per_worker}"
        assert all(out["acks_refused"] == 0 for out in outputs)
        assert json.loads(run_child("stats", db_url, queue)) == {"ready": 0, "in_flight": 0}
        print(f"{connection.vendor}: {MESSAGES} messages, {WORKERS} processes {per_worker}, {elapsed:.2f} s")


def test_a_process_that_dies_holding_a_reservation_loses_nothing() -> None:
    """R2 on the ORM storage: the claim is committed before the task runs, so a dead worker's message waits in
    flight, and the reaper gives it back in its place with the attempt counted."""
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as folder:
        if connection.vendor == "sqlite":
            db_url = "sqlite:///" + str(Path(folder) / "crash.sqlite3")
            run_child("migrate", db_url)
        else:
            db_url = database_url()
        run_child("seed", db_url, queue, "2")
        first = crash(db_url, queue)
        assert (first["data"], first["attempt"]) == ("m1", 1)  # seeded with priority i % 3
        assert json.loads(run_child("stats", db_url, queue)) == {"ready": 1, "in_flight": 1}
        assert json.loads(run_child("reap", db_url, queue)) == [first["message_id"]]
        assert json.loads(run_child("stats", db_url, queue)) == {"ready": 2, "in_flight": 0}
        second = crash(db_url, queue)
        assert (second["message_id"], second["data"], second["attempt"]) == (first["message_id"], "m1", 2)


def crash(db_url: str, queue: str) -> dict[str, Any]:
    """Run a process that reserves one message and dies (``os._exit``) before acknowledging it."""
    with child("crash", db_url, queue) as process:
        out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    return json.loads(out)


# ------------------------------------------------------------------------------------------------ the children


def main(argv: list[str]) -> None:
    """Entry point of the child processes: ``migrate`` | ``seed QUEUE N`` | ``stats QUEUE`` | ``work QUEUE``."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections, transaction

    from django_tasks_q.backends.orm import OrmStorage

    mode = argv[0]
    try:
        if mode == "migrate":
            call_command("migrate", verbosity=0, interactive=False)
            return
        storage = OrmStorage(argv[1], purge_interval=None)
        if mode == "seed":
            with transaction.atomic():
                for i in range(int(argv[2])):
                    storage.enqueue(f"m{i}".encode(), i % 3)
        elif mode == "crash":  # reserve, then die before acknowledging
            reservation = storage.reserve(LEASE)
            assert reservation is not None
            print(
                json.dumps(
                    {
                        "message_id": reservation.message_id,
                        "data": reservation.data.decode(),
                        "attempt": reservation.attempt,
                    }
                ),
                flush=True,
            )
            os._exit(3)
        elif mode == "reap":
            reclaimed = storage.requeue_expired(time.time() + LEASE + 1, 5)
            print(json.dumps([r.reservation.message_id for r in reclaimed]))
        elif mode == "stats":
            print(json.dumps({"ready": storage.queue_size(), "in_flight": storage.in_flight_size()}))
        elif mode == "work":
            storage.queue_size()  # connect now, before the start signal
            print("ready", flush=True)
            sys.stdin.readline()
            got: list[str] = []
            refused = 0
            while True:
                reservation = storage.reserve(LEASE)
                if reservation is None:
                    if storage.queue_size() == 0:
                        break
                    continue
                got.append(reservation.data.decode())
                if not storage.ack(reservation):
                    refused += 1
                time.sleep(
                    0.0005
                )  # a task takes some time; without it SQLite's unfair lock starves processes
            print(json.dumps({"pid": os.getpid(), "got": got, "acks_refused": refused}))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        connections.close_all()


if __name__ == "__main__":
    main(sys.argv[1:])
