"""SqliteStorage across processes: crashes at chosen statements, and many processes at once.

Child processes are started with multiprocessing's ``spawn`` method (never ``fork``); each opens its own
storage on the shared file. A crash is ``os._exit`` called from the connection's trace callback just as the
chosen statement starts, i.e. inside the open write transaction: SQLite must roll it back, so nothing is
half-written and nothing is lost.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django_tasks_q.backends.base import EmptyData
from django_tasks_q.backends.sqlite import SqliteStorage

CTX = multiprocessing.get_context("spawn")
CRASH = 17
MISSED = 3  # the child finished without reaching its crash point
NAME = "procs"


# ---------------------------------------------------------------------------- code run in the children


def _wait_for(path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def _guarded(out: str, work: Callable[[], list[bytes]]) -> None:
    """Run ``work``; write what it returns to ``out``, or the traceback to ``out + '.error'``."""
    try:
        got = work()
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise
    Path(out).write_bytes(b"\n".join(got))


def consume(filename: str, out: str, ready_dir: str, go: str, stop: str) -> None:
    """Reserve and ack until ``stop`` exists and the queue is empty; write every message received."""

    def work() -> list[bytes]:
        storage = SqliteStorage(NAME, filename=filename)
        storage.queue_size()  # connected
        Path(ready_dir, str(os.getpid())).touch()
        _wait_for(go)
        got = []
        while True:
            reservation = storage.reserve(60)
            if reservation is None:
                if os.path.exists(stop) and storage.queue_size() == 0:
                    return got
                time.sleep(0.002)
                continue
            if not storage.ack(reservation):
                raise AssertionError(f"ack of a live reservation failed: {reservation.message_id}")
            got.append(reservation.data)

    _guarded(out, work)


def produce(filename: str, out: str, ready_dir: str, go: str, prefix: str, count: int) -> None:
    """Enqueue ``count`` messages ``<prefix>-<i>`` (priorities 0..2) as fast as possible."""

    def work() -> list[bytes]:
        storage = SqliteStorage(NAME, filename=filename)
        storage.queue_size()
        Path(ready_dir, str(os.getpid())).touch()
        _wait_for(go)
        sent = []
        for i in range(count):
            data = f"{prefix}-{i}".encode()
            storage.enqueue(data, i % 3)
            sent.append(data)
        return sent

    _guarded(out, work)


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
    assert _run(crash, filename, "ack_with_result", "INSERT OR REPLACE INTO tasks_q_kv") == CRASH
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


def _start_all(
    targets: list[tuple[Callable[..., None], tuple[Any, ...]]], ready_dir: Path, go: Path
) -> list[Any]:
    processes = [CTX.Process(target=target, args=args) for target, args in targets]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 60
    while len(list(ready_dir.iterdir())) < len(processes):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.is_alive() or p.exitcode == 0 for p in processes), "a child died while starting"
        time.sleep(0.01)
    go.touch()  # all of them start at once
    return processes


def _join(processes: list[Any], outputs: list[Path]) -> None:
    for process in processes:
        process.join(timeout=90)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join()
    errors = [out.with_name(out.name + ".error") for out in outputs]
    details = "\n".join(e.read_text() for e in errors if e.exists())
    assert [p.exitcode for p in processes] == [0] * len(processes), details


def _received(outputs: list[Path]) -> list[bytes]:
    return [line for out in outputs for line in out.read_bytes().split(b"\n") if line]


def test_eight_producer_and_consumer_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    filename = str(tmp_path / "busy.db")  # not created yet: the processes race to create it and its tables
    ready_dir, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
    ready_dir.mkdir()
    per_producer = 400
    producers = [tmp_path / f"producer-{i}" for i in range(4)]
    consumers = [tmp_path / f"consumer-{i}" for i in range(4)]
    targets: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (produce, (filename, str(out), str(ready_dir), str(go), f"p{i}", per_producer))
        for i, out in enumerate(producers)
    ]
    targets += [(consume, (filename, str(out), str(ready_dir), str(go), str(stop))) for out in consumers]
    processes = _start_all(targets, ready_dir, go)
    _join(processes[:4], producers)
    stop.touch()
    _join(processes[4:], consumers)
    sent = _received(producers)
    received = _received(consumers)
    assert len(sent) == 4 * per_producer
    assert len(received) == len(sent), "a message was lost or delivered twice"
    assert sorted(received) == sorted(sent)
    storage = SqliteStorage(NAME, filename=filename)
    assert (storage.queue_size(), storage.in_flight_size()) == (0, 0)
    storage.close()


def test_four_processes_reserve_two_thousand_messages_exactly_once(tmp_path: Path) -> None:
    filename = str(tmp_path / "drain.db")
    storage = SqliteStorage(NAME, filename=filename)
    sent = [f"m-{i}".encode() for i in range(2000)]
    for i, data in enumerate(sent):
        storage.enqueue(data, i % 4)
    ready_dir, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
    ready_dir.mkdir()
    stop.touch()  # nothing more will come: stop once the queue is empty
    outputs = [tmp_path / f"consumer-{i}" for i in range(4)]
    processes = _start_all(
        [(consume, (filename, str(out), str(ready_dir), str(go), str(stop))) for out in outputs],
        ready_dir,
        go,
    )
    _join(processes, outputs)
    received = _received(outputs)
    assert len(received) == 2000
    assert sorted(received) == sorted(sent)
    assert sum(1 for out in outputs if out.read_bytes()) >= 2, "the work was not shared between processes"
    assert (storage.queue_size(), storage.in_flight_size()) == (0, 0)
    storage.close()
