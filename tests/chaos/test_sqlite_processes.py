"""SqliteStorage across processes: crashes at chosen statements, and many processes at once.

Child processes are started with multiprocessing's ``spawn`` method (never ``fork``); each opens its own
storage on the shared file. A crash is ``os._exit`` called from the connection's trace callback just as the
chosen statement starts, i.e. inside the open write transaction: SQLite must roll it back, so nothing is
half-written and nothing is lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from django_tasks_q.backends.base import EmptyData
from django_tasks_q.backends.sqlite import SqliteStorage
from tests.support.process_drain import CTX, drain_exactly_once, produce_and_consume_exactly_once

CRASH = 17
MISSED = 3  # the child finished without reaching its crash point
NAME = "procs"


# ---------------------------------------------------------------------------- code run in the children


def crash(filename: str, scenario: str, statement: str) -> None:
    """Run ``scenario`` and die (``os._exit``) as soon as a statement starting with ``statement`` begins."""
    storage = SqliteStorage(NAME, filename=filename)
    conn = storage._connection()

    def trace(sql: str) -> None:
        if statement and " ".join(sql.split()).startswith(statement):
            os._exit(CRASH)

    conn.set_trace_callback(trace)
    if scenario == "enqueue":
        storage.enqueue(b"never committed")
    elif scenario == "enqueue_due":
        storage.enqueue_due(time.time())
    elif scenario in ("reserve_and_die", "ack_with_result"):
        reservation = storage.reserve(60)
        assert reservation is not None
        if scenario == "reserve_and_die":
            os._exit(CRASH)  # the worker dies with the message claimed
        storage.ack(reservation, ("result:1", b"done", None))
    elif scenario == "reap_to_dead_letters":
        storage.requeue_expired(time.time() + 3600, 1)
    os._exit(MISSED)


# ---------------------------------------------------------------------------- the tests


def _run(target: Callable[..., None], *args: Any) -> int:
    process = CTX.Process(target=target, args=args)
    process.start()
    process.join(timeout=60)
    assert not process.is_alive(), "child hung"
    assert process.exitcode is not None
    return process.exitcode


def test_a_worker_dying_after_its_claim_gets_the_message_back_as_attempt_two(tmp_path: Path) -> None:
    filename = str(tmp_path / "crash.db")
    storage = SqliteStorage(NAME, filename=filename)
    storage.enqueue(b"task")
    assert _run(crash, filename, "reserve_and_die", "") == CRASH
    (held,) = storage.in_flight_items()
    assert (held.data, held.attempt) == (b"task", 1)
    assert storage.queue_size() == 0
    assert [r.dead_lettered for r in storage.requeue_expired(time.time() + 3600, 5)] == [False]
    again = storage.reserve(30)
    assert again is not None
    assert (again.data, again.attempt, again.message_id) == (b"task", 2, held.message_id)
    assert storage.ack(again)
    storage.close()


def test_crash_inside_enqueue_writes_nothing(tmp_path: Path) -> None:
    filename = str(tmp_path / "crash.db")
    assert _run(crash, filename, "enqueue", "COMMIT") == CRASH
    storage = SqliteStorage(NAME, filename=filename)
    assert storage.queue_size() == 0
    storage.enqueue(b"ok")
    assert storage.enqueued_items() == [b"ok"]
    storage.close()


def test_crash_inside_enqueue_due_moves_nothing(tmp_path: Path) -> None:
    filename = str(tmp_path / "crash.db")
    storage = SqliteStorage(NAME, filename=filename)
    now = time.time()
    for i in range(3):
        storage.add_to_schedule(f"due-{i}".encode(), now - 10 + i, i)
    assert _run(crash, filename, "enqueue_due", "DELETE FROM tasks_q_schedule") == CRASH
    assert storage.schedule_size() == 3  # the INSERT into the queue was rolled back with the rest
    assert storage.queue_size() == 0
    assert storage.enqueue_due(time.time()) == 3
    assert storage.enqueued_items() == [b"due-2", b"due-1", b"due-0"]
    storage.close()


def test_crash_inside_ack_keeps_the_message_and_writes_no_result(tmp_path: Path) -> None:
    filename = str(tmp_path / "crash.db")
    storage = SqliteStorage(NAME, filename=filename)
    storage.enqueue(b"task")
    assert _run(crash, filename, "ack_with_result", "INSERT INTO tasks_q_kv") == CRASH
    assert storage.in_flight_size() == 1  # the DELETE of the ack was rolled back
    assert storage.peek_data("result:1") is EmptyData
    storage.requeue_expired(time.time() + 3600, 5)
    again = storage.reserve(30)
    assert again is not None and again.attempt == 2
    assert storage.ack(again, ("result:1", b"done", None))
    assert storage.peek_data("result:1") == b"done"
    storage.close()


def test_crash_while_dead_lettering_loses_nothing(tmp_path: Path) -> None:
    filename = str(tmp_path / "crash.db")
    storage = SqliteStorage(NAME, filename=filename)
    storage.enqueue(b"poison")
    assert storage.reserve(30) is not None
    assert _run(crash, filename, "reap_to_dead_letters", "DELETE FROM tasks_q_message") == CRASH
    assert storage.in_flight_size() == 1
    assert storage.dead_letter_count() == 0  # the copy into the dead letters was rolled back
    (reclaimed,) = storage.requeue_expired(time.time() + 3600, 1)
    assert reclaimed.dead_lettered
    assert [d.data for d in storage.dead_letters()] == [b"poison"]
    assert storage.in_flight_size() == 0
    storage.close()


def test_eight_producer_and_consumer_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    filename = str(tmp_path / "busy.db")  # not created yet: the processes race to create it and its tables
    produce_and_consume_exactly_once(
        tmp_path, partial(SqliteStorage, NAME, filename=filename), producers=4, consumers=4, per_producer=400
    )
    storage = SqliteStorage(NAME, filename=filename)
    assert (storage.queue_size(), storage.in_flight_size()) == (0, 0)
    storage.close()


def test_four_processes_reserve_two_thousand_messages_exactly_once(tmp_path: Path) -> None:
    make_storage = partial(SqliteStorage, NAME, filename=str(tmp_path / "drain.db"))
    drain_exactly_once(tmp_path, make_storage, messages=2000, consumers=4)
