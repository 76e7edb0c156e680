"""FileStorage across processes: crash points, and several processes at once.

Child processes are started with multiprocessing's ``spawn`` method (never ``fork``). A crash is ``os._exit``
at a chosen system call of a chosen operation (the child replaces ``os.write`` / ``os.fsync`` / ``os.rename`` /
``os.unlink`` / ``os.utime`` by a version that dies at the n-th matching call). After each crash the parent
checks that no half-written message is visible and that no message was lost or doubled.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from django_tasks_q.backends.base import EmptyData
from django_tasks_q.backends.file import FileStorage

CTX = multiprocessing.get_context("spawn")
CRASH = 17
MISSED = 3  # the child finished without reaching its crash point
NAME = "procs"
BIG = b"0123456789abcdef" * 4096  # 64 KiB: large enough for a visible half


# ---------------------------------------------------------------------------- code run in the children


def _die_at(function: str, nth: int = 1, when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Replace ``os.<function>`` so that its ``nth`` call for which ``when(*args)`` holds exits the process."""
    original = getattr(os, function)
    calls = [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            calls[0] += 1
            if calls[0] == nth:
                if function == "write":  # write half of it first: a torn write
                    fd, data = args
                    original(fd, bytes(data)[: len(data) // 2])
                os._exit(CRASH)
        return original(*args, **kwargs)

    setattr(os, function, dying)


def _touches(folder: str) -> Callable[..., bool]:
    return lambda *args, **kwargs: any(f"/{NAME}/{folder}/" in str(arg) for arg in args)


def crash(path: str, scenario: str) -> None:
    """Set up the crash point of ``scenario``, run its operation, and die there."""
    storage = FileStorage(NAME, path=path)
    storage.queue_size()  # folders exist before any patching
    if scenario == "enqueue-torn-write":
        _die_at("write")
        storage.enqueue(BIG)
    elif scenario == "enqueue-before-fsync":
        _die_at("fsync")
        storage.enqueue(BIG)
    elif scenario == "enqueue-before-rename":
        _die_at("rename")
        storage.enqueue(BIG)
    elif scenario == "enqueue-after-rename":
        _die_at("open", when=lambda *a, **k: str(a[0]).endswith("/ready"))  # opening ready/ to fsync it
        storage.enqueue(BIG)
    elif scenario == "put-torn-write":
        _die_at("write")
        storage.put_data("key", b"new" * 10000)
    elif scenario == "reserve-before-rename":
        _die_at("rename")
        storage.reserve(60)
    elif scenario == "reserve-after-rename":
        _die_at("utime", nth=2)  # the second utime comes right after the rename into inflight/
        storage.reserve(60)
    elif scenario == "ack-after-result":
        reservation = storage.reserve(60)
        assert reservation is not None
        _die_at("unlink", when=_touches("inflight"))
        storage.ack(reservation, ("result:1", b"done", None))
    elif scenario == "bury-before-reason":
        reservation = storage.reserve(60)
        assert reservation is not None
        _die_at("rename", when=_touches("tmp"))  # the reason file is staged in tmp/ and renamed into dead/
        storage.bury(reservation, "bad_signature", "never written")
    elif scenario == "enqueue-due-midway":
        _die_at("rename", nth=2)
        storage.enqueue_due(time.time())
    elif scenario == "reap-midway":
        _die_at("rename", nth=2)
        storage.requeue_expired(time.time() + 3600, 5)
    os._exit(MISSED)


def _wait_for(path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def consume(path: str, out: str, ready_dir: str, go: str, stop: str) -> None:
    """Reserve and ack until ``stop`` exists and the queue is empty; write every message received."""
    try:
        storage = FileStorage(NAME, path=path)
        storage.queue_size()
        Path(ready_dir, str(os.getpid())).touch()
        _wait_for(go)
        got = []
        while True:
            reservation = storage.reserve(60)
            if reservation is None:
                if os.path.exists(stop) and storage.queue_size() == 0:
                    break
                time.sleep(0.002)
                continue
            if not storage.ack(reservation):
                raise AssertionError(f"ack of a live reservation failed: {reservation.message_id}")
            got.append(reservation.data)
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise
    Path(out).write_bytes(b"\n".join(got))


def produce(path: str, out: str, ready_dir: str, go: str, prefix: str, count: int) -> None:
    """Enqueue ``count`` messages ``<prefix>-<i>`` (priorities 0..2)."""
    try:
        storage = FileStorage(NAME, path=path)
        storage.queue_size()
        Path(ready_dir, str(os.getpid())).touch()
        _wait_for(go)
        sent = []
        for i in range(count):
            data = f"{prefix}-{i}".encode()
            storage.enqueue(data, i % 3)
            sent.append(data)
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise
    Path(out).write_bytes(b"\n".join(sent))


# ---------------------------------------------------------------------------- crash points


def _crash(path: Path, scenario: str) -> None:
    process = CTX.Process(target=crash, args=(str(path), scenario))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == CRASH, f"the child did not reach its crash point (exit {process.exitcode})"


def _everything(storage: FileStorage) -> list[bytes]:
    """Every message the storage holds, wherever it is."""
    return sorted(
        storage.enqueued_items()
        + [r.data for r in storage.in_flight_items()]
        + [d.data for d in storage.dead_letters()]
        + storage.scheduled_items()
    )


@pytest.mark.parametrize(
    "scenario",
    ["enqueue-torn-write", "enqueue-before-fsync", "enqueue-before-rename", "enqueue-after-rename"],
)
def test_a_crash_while_enqueueing_never_exposes_half_a_message(tmp_path: Path, scenario: str) -> None:
    _crash(tmp_path, scenario)
    storage = FileStorage(NAME, path=tmp_path)
    items = storage.enqueued_items()
    if scenario == "enqueue-after-rename":
        assert items == [BIG]  # renamed into place: whole, and kept
    else:
        assert items == []  # never renamed into place: invisible
    leftovers = list((tmp_path / NAME / "tmp").iterdir())
    assert all(len(p.read_bytes()) <= len(BIG) for p in leftovers)
    storage.orphan_age = 0
    storage.purge_expired()
    assert list((tmp_path / NAME / "tmp").iterdir()) == []
    assert storage.enqueued_items() == items


def test_a_torn_write_of_a_value_leaves_the_old_value(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    storage.put_data("key", b"old")
    _crash(tmp_path, "put-torn-write")
    assert storage.peek_data("key") == b"old"


def test_a_crash_before_the_claim_leaves_the_message_ready(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    storage.enqueue(b"task")
    _crash(tmp_path, "reserve-before-rename")
    assert storage.enqueued_items() == [b"task"]
    reservation = storage.reserve(30)
    assert reservation is not None and reservation.attempt == 1


def test_a_crash_right_after_the_claim_redelivers_as_attempt_two(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    storage.enqueue(b"task")
    _crash(tmp_path, "reserve-after-rename")
    (held,) = storage.in_flight_items()
    assert held.attempt == 1 and held.deadline > time.time() + 30  # the lease was set before the rename
    assert storage.requeue_expired(time.time(), 5) == []
    (reclaimed,) = storage.requeue_expired(time.time() + 3600, 5)
    assert not reclaimed.dead_lettered
    again = storage.reserve(30)
    assert again is not None
    assert (again.data, again.attempt, again.message_id) == (b"task", 2, held.message_id)


def test_a_crash_between_result_and_ack_redelivers_and_keeps_the_result(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    storage.enqueue(b"task")
    _crash(tmp_path, "ack-after-result")
    assert storage.peek_data("result:1") == b"done"
    assert storage.in_flight_size() == 1  # not acknowledged: at least once, never lost
    storage.requeue_expired(time.time() + 3600, 5)
    again = storage.reserve(30)
    assert again is not None and again.attempt == 2
    assert storage.ack(again, ("result:1", b"done again", None))
    assert storage.peek_data("result:1") == b"done again"


def test_a_crash_while_burying_keeps_the_dead_letter(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    storage.enqueue(b"poison", 4)
    _crash(tmp_path, "bury-before-reason")
    assert storage.in_flight_size() == 0
    (letter,) = storage.dead_letters()
    assert (letter.data, letter.reason, letter.attempts, letter.priority) == (b"poison", "unknown", 1, 4)
    assert "not recorded" in letter.detail
    assert storage.requeue_dead_letter(letter.id)
    assert storage.enqueued_items() == [b"poison"]


def test_a_crash_midway_through_enqueue_due_loses_and_doubles_nothing(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    now = time.time()
    for i in range(3):
        storage.add_to_schedule(f"due-{i}".encode(), now - 10 + i, i)
    _crash(tmp_path, "enqueue-due-midway")
    assert storage.enqueued_items() == [b"due-0"]
    assert storage.schedule_size() == 2
    assert storage.enqueue_due(time.time()) == 2
    assert storage.enqueued_items() == [b"due-2", b"due-1", b"due-0"]
    assert storage.schedule_size() == 0


def test_a_crash_midway_through_reaping_loses_and_doubles_nothing(tmp_path: Path) -> None:
    storage = FileStorage(NAME, path=tmp_path)
    for i in range(3):
        storage.enqueue(f"m{i}".encode())
    for _ in range(3):
        assert storage.reserve(30) is not None
    _crash(tmp_path, "reap-midway")
    assert (storage.queue_size(), storage.in_flight_size()) == (1, 2)
    assert _everything(storage) == [b"m0", b"m1", b"m2"]
    assert len(storage.requeue_expired(time.time() + 3600, 5)) == 2
    assert storage.enqueued_items() == [b"m0", b"m1", b"m2"]


# ---------------------------------------------------------------------------- several processes


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
    go.touch()
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


def test_four_processes_reserve_two_thousand_messages_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "queues")
    storage = FileStorage(NAME, path=path)
    sent = [f"m-{i}".encode() for i in range(2000)]
    for i, data in enumerate(sent):
        storage.enqueue(data, i % 4)
    ready_dir, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
    ready_dir.mkdir()
    stop.touch()
    outputs = [tmp_path / f"consumer-{i}" for i in range(4)]
    processes = _start_all(
        [(consume, (path, str(out), str(ready_dir), str(go), str(stop))) for out in outputs], ready_dir, go
    )
    _join(processes, outputs)
    received = _received(outputs)
    assert len(received) == 2000, "a message was lost or delivered twice"
    assert sorted(received) == sorted(sent)
    assert sum(1 for out in outputs if out.read_bytes()) >= 2, "the work was not shared between processes"
    assert (storage.queue_size(), storage.in_flight_size()) == (0, 0)


def test_producer_and_consumer_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "queues")
    FileStorage(NAME, path=path).queue_size()
    ready_dir, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
    ready_dir.mkdir()
    producers = [tmp_path / f"producer-{i}" for i in range(4)]
    consumers = [tmp_path / f"consumer-{i}" for i in range(4)]
    targets: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (produce, (path, str(out), str(ready_dir), str(go), f"p{i}", 150)) for i, out in enumerate(producers)
    ]
    targets += [(consume, (path, str(out), str(ready_dir), str(go), str(stop))) for out in consumers]
    processes = _start_all(targets, ready_dir, go)
    _join(processes[:4], producers)
    stop.touch()
    _join(processes[4:], consumers)
    sent, received = _received(producers), _received(consumers)
    assert len(sent) == 600
    assert len(received) == len(sent), "a message was lost or delivered twice"
    assert sorted(received) == sorted(sent)


def test_concurrent_put_if_empty_and_incr_across_processes(tmp_path: Path) -> None:
    """The flock-guarded operations hold between processes, not only between threads."""
    path = str(tmp_path / "queues")
    storage = FileStorage(NAME, path=path)
    ready_dir, go = tmp_path / "ready", tmp_path / "go"
    ready_dir.mkdir()
    outputs = [tmp_path / f"racer-{i}" for i in range(4)]
    processes = _start_all(
        [(race, (path, str(out), str(ready_dir), str(go))) for out in outputs], ready_dir, go
    )
    _join(processes, outputs)
    wins = _received(outputs)
    assert wins.count(b"won") == 1
    assert storage.incr("hits", 0) == 4 * 200
    assert storage.peek_data("lock") is not EmptyData


def race(path: str, out: str, ready_dir: str, go: str) -> None:
    """Race the others for one lock, then count to 200 on a shared counter."""
    try:
        storage = FileStorage(NAME, path=path, use_thread_lock=False)
        storage.queue_size()
        Path(ready_dir, str(os.getpid())).touch()
        _wait_for(go)
        won = storage.put_if_empty("lock", str(os.getpid()).encode())
        for _ in range(200):
            storage.incr("hits")
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise
    Path(out).write_bytes(b"won" if won else b"lost")
