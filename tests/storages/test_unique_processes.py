"""Unique keys under concurrent enqueue from 4 processes, on every persistent storage (docs/operations.md).

Four processes start together and enqueue the same unique calls, round after round: calls of a
``unique=True`` task (the key comes from the arguments), calls of a plain task given ``unique_key=`` (with
arguments that differ between calls), a unique call scheduled an hour ahead, and a key of each process's
own. Every process must get the same task id for a key, and the queue must hold exactly one message per key.
After one more process drains the queue, the keys of the calls that ran are released (the scheduled call
keeps its key) and four processes racing again get one new id per key.

Redis is a private ``redis-server`` of the session (``chaos_redis`` of ``tests/support/deployments.py``), not
the shared database 15 that other test sessions flush.

The processes are real (``python -m tests.storages.test_unique_processes MODE URL QUEUE ...``); each builds its own
:class:`~django_tasks_q.hub.queue.TaskQueue` on the storage URL and registers the tasks. ``django.setup()`` runs
with ``tests.settings`` and ``TASKS_Q_TEST_DB`` naming the database of the ORM storage: pytest-django's test
database on PostgreSQL or MariaDB (the test commits for real, ``transactional_db``), or, on SQLite, whose
test database lives in memory, a SQLite file in the test's folder that one more process migrates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.child_process import collect_json, database_url, finish, release_together, start_module

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PROCESSES = 4
SHARED = 100  # keys of each kind every process enqueues (half of them forwards, half backwards)
ROUNDS = 3  # how many times each process goes through all of its calls
SCHEDULED = "report:scheduled"


@dataclass
class Target:
    """A storage URL, the queue name and the database the child processes use."""

    url: str
    queue: str
    db_url: str | None = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONDONTWRITEBYTECODE": "1"}
        if self.db_url:
            env["TASKS_Q_TEST_DB"] = self.db_url
        return env


ORM = pytest.param("orm", marks=[pytest.mark.db_backends, pytest.mark.django_db(transaction=True)])


@pytest.fixture(params=["redis", "sqlite", "file", ORM])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    kind = request.param
    queue = f"uniq-{uuid.uuid4().hex[:10]}"
    if kind == "redis":
        server = request.getfixturevalue("chaos_redis")
        yield Target(f"{server.url}?prefix=tq-{queue}", queue)
    elif kind == "sqlite":
        yield Target(f"sqlite:///{tmp_path / 'queue.db'}", queue)
    elif kind == "file":
        yield Target(f"file://{tmp_path / 'queue'}", queue)
    else:
        from django.db import connection

        if connection.vendor == "sqlite":
            target = Target("orm://", queue, "sqlite:///" + str(tmp_path / "django.sqlite3"))
            run_child(target, "migrate")
        else:  # the test database, committed for real (the mark of the ORM parameter)
            target = Target("orm://", queue, database_url())
        yield target


# ------------------------------------------------------------------------------------------------ the parent


def child(target: Target, mode: str, *args: str, stdin: Any = None) -> subprocess.Popen[str]:
    return start_module("tests.storages.test_unique_processes", [mode, target.url, target.queue, *args], target.env(), stdin)


def run_child(target: Target, mode: str, *args: str) -> Any:
    """Run one child to completion; returns the JSON it printed."""
    out = finish(child(target, mode, *args), mode, timeout=90)
    return json.loads(out) if out.strip() else None


def enqueue_together(target: Target, rounds: int) -> list[dict[str, Any]]:
    """Start :data:`PROCESSES` enqueuers and let them go at once; what each one printed.

    That is ``{"ids": {key: [task id of each call]}, "sent": [ids of the calls this process wrote]}``.
    """
    with ExitStack() as stack:  # leaving it closes every pipe and waits for every process
        workers = [
            stack.enter_context(child(target, "enqueue", str(index), str(rounds), stdin=subprocess.PIPE))
            for index in range(PROCESSES)
        ]
        stack.callback(lambda: [worker.kill() for worker in workers if worker.poll() is None])
        release_together(workers, "enqueuer")  # every process has its storage open before any starts
        return collect_json(workers, "enqueuer", timeout=90)


def one_id_per_key(outputs: list[dict[str, Any]], rounds: int) -> dict[str, str]:
    """The id every call of a key got; fails when two calls of one key (in any processes) got different ids."""
    ids: dict[str, set[str]] = {}
    for output in outputs:
        for key, calls in output["ids"].items():
            assert len(calls) == rounds, (key, calls)
            ids.setdefault(key, set()).update(calls)
    split = {key: sorted(found) for key, found in ids.items() if len(found) != 1}
    assert not split, f"{len(split)} key(s) got more than one task id, e.g. {sorted(split.items())[:3]}"
    return {key: found.pop() for key, found in ids.items()}


def written(outputs: list[dict[str, Any]]) -> list[str]:
    """Ids of the calls the processes wrote to the storage (those that were no duplicate), all together."""
    return sorted(task_id for output in outputs for task_id in output["sent"])


def test_four_processes_enqueue_each_unique_key_once(target: Target) -> None:
    shared = {f"report:{i}" for i in range(SHARED)} | {f"sync:{i}" for i in range(SHARED)}
    own = {f"own:{index}" for index in range(PROCESSES)}

    outputs = enqueue_together(target, ROUNDS)
    first = one_id_per_key(outputs, ROUNDS)
    assert set(first) == shared | own | {SCHEDULED}
    assert len(set(first.values())) == len(first), "two keys got the same task id"
    assert written(outputs) == sorted(first.values()), "not exactly one call written per key"
    winners = [len(output["sent"]) for output in outputs]
    print(f"{target.url.split(':', 1)[0]}: calls written by each process (the others got duplicates): {winners}")

    state = run_child(target, "drain")
    before = state["before"]
    # Exactly one message per key, all in the queue (a call with a future eta is enqueued too).
    assert sorted(before["pending"]) == sorted(first.values())
    assert before["scheduled"] == []
    assert sorted(before["held"]) == sorted(first.values())
    # The calls that ran released their keys; the scheduled call, taken before its eta and moved to the
    # schedule, still holds its own.
    assert state["ran"] == len(first)
    assert state["after"] == {"pending": [], "scheduled": [first[SCHEDULED]], "held": [first[SCHEDULED]]}

    outputs = enqueue_together(target, 2)
    again = one_id_per_key(outputs, 2)
    assert set(again) == set(first)
    assert again[SCHEDULED] == first[SCHEDULED]
    renewed = {key: task_id for key, task_id in again.items() if task_id != first[key]}
    assert set(renewed) == set(first) - {SCHEDULED}, "a released key did not get a new call"
    assert written(outputs) == sorted(renewed.values()), "not exactly one call written per released key"
    final = run_child(target, "inspect")
    assert sorted(final["pending"]) == sorted(renewed.values())
    assert final["scheduled"] == [first[SCHEDULED]]
    assert sorted(final["held"]) == sorted(again.values())


# ------------------------------------------------------------------------------------------------ the children


def build(url: str, queue: str) -> Any:
    """A hub on the storage at ``url`` with the tasks of this test registered."""
    from django_tasks_q.conf import resolve_backend
    from django_tasks_q.hub.queue import TaskQueue

    storage_class, options = resolve_backend(queue, {"URL": url})
    hub = TaskQueue(queue, storage_class=storage_class, **options)

    @hub.task(name="uniq.report", unique=True)
    def report(account: int, period: str = "month") -> str:
        return f"{account}/{period}"

    @hub.task(name="uniq.sync")
    def sync(account: int, full: bool = False) -> int:
        return account

    return hub, report, sync


def state(hub: Any) -> dict[str, list[str]]:
    """Ids of the pending and scheduled calls and of the holders of the unique keys."""
    return {
        "pending": sorted(task.id for task in hub.pending()),
        "scheduled": sorted(task.id for task in hub.scheduled()),
        "held": sorted(row["holder"] for row in hub.unique_keys_held()),
    }


def main(argv: list[str]) -> None:
    """``migrate`` | ``enqueue URL QUEUE INDEX ROUNDS`` | ``drain URL QUEUE`` | ``inspect URL QUEUE``."""
    import django

    django.setup()
    mode = argv[0]
    if mode == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        return
    from django_tasks_q.signals import SIGNAL_ENQUEUED

    hub, report, sync = build(argv[1], argv[2])
    if mode == "enqueue":
        index, rounds = int(argv[3]), int(argv[4])
        hub.storage.queue_size()  # connected (folders and tables made) before the start signal
        print("ready", flush=True)
        sys.stdin.readline()
        sent: list[str] = []  # the calls this process wrote (not a duplicate of a held key)
        hub.signal(SIGNAL_ENQUEUED)(lambda signal, task, *args: sent.append(task.id))
        ids: dict[str, list[str]] = {}
        for round_ in range(rounds):
            # Half of the processes go through the keys forwards, half backwards: each key is raced for.
            for i in range(SHARED) if index % 2 == 0 else reversed(range(SHARED)):
                ids.setdefault(f"report:{i}", []).append(report(i, period="week").id)
                # The key given at the call wins over the arguments, which differ from call to call.
                ids.setdefault(f"sync:{i}", []).append(sync(i, full=bool(round_ % 2), unique_key=f"account-{i}").id)
            ids.setdefault(SCHEDULED, []).append(report.schedule((-1,), delay=3600).id)
            ids.setdefault(f"own:{index}", []).append(sync(-1, unique_key=f"process-{index}").id)
        print(json.dumps({"ids": ids, "sent": sent}))
    elif mode == "drain":
        before = state(hub)
        ran = 0
        while (reservation := hub.reserve()) is not None:
            hub.process(reservation)
            ran += 1
        print(json.dumps({"before": before, "ran": ran, "after": state(hub)}))
    elif mode == "inspect":
        print(json.dumps(state(hub)))
    hub.storage.close()


if __name__ == "__main__":
    main(sys.argv[1:])
