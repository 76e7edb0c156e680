"""FileStorage across processes: crash points, and several processes at once.

Child processes are started with multiprocessing's ``spawn`` method (never ``fork``). A crash is ``os._exit``
at a chosen system call of a chosen operation (the child replaces ``os.write`` / ``os.fsync`` / ``os.rename`` /
``os.unlink`` / ``os.utime`` by a version that dies at the n-th matching call). After each crash the parent
checks that no half-written message is visible and that no message was lost or doubled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from django_tasks_q.backends.base import EmptyData
from django_tasks_q.backends.file import FileStorage
from tests.support.process_drain import (
    CTX,
    drain_exactly_once,
    gates,
    guarded,
    join,
    open_when_all_ready,
    produce_and_consume_exactly_once,
    received,
    start_all,
)

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


FSYNC_SCENARIOS = {"enqueue-before-fsync", "enqueue-after-rename"}
"""Crash points at an ``fsync`` call: their storage has ``fsync=True``; every other scenario runs the default."""


def crash(path: str, scenario: str) -> None:
    """Set up the crash point of ``scenario``, run its operation, and die there."""
    storage = FileStorage(NAME, path=path, fsync=scenario in FSYNC_SCENARIOS)
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


def test_four_processes_reserve_two_thousand_messages_exactly_once(tmp_path: Path) -> None:
    make_storage = partial(FileStorage, NAME, path=str(tmp_path / "queues"))
    drain_exactly_once(tmp_path, make_storage, messages=2000, consumers=4)


def test_producer_and_consumer_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "queues")
    FileStorage(NAME, path=path).queue_size()
    produce_and_consume_exactly_once(
        tmp_path, partial(FileStorage, NAME, path=path), producers=4, consumers=4, per_producer=150
    )


def test_concurrent_put_if_empty_and_incr_across_processes(tmp_path: Path) -> None:
    """The flock-guarded operations hold between processes, not only between threads."""
    path = str(tmp_path / "queues")
    storage = FileStorage(NAME, path=path)
    ready_dir, go, _ = gates(tmp_path)
    outputs = [tmp_path / f"racer-{i}" for i in range(4)]
    processes = start_all(
        [(race, (path, str(out), str(ready_dir), str(go))) for out in outputs], ready_dir, go
    )
    join(processes, outputs)
    wins = received(outputs)
    assert wins.count(b"won") == 1
    assert storage.incr("hits", 0) == 4 * 200
    assert storage.peek_data("lock") is not EmptyData


def race(path: str, out: str, ready_dir: str, go: str) -> None:
    """Race the others for one lock, then count to 200 on a shared counter."""

    def work() -> list[bytes]:
        storage = open_when_all_ready(
            partial(FileStorage, NAME, path=path, use_thread_lock=False), ready_dir, go
        )
        won = storage.put_if_empty("lock", str(os.getpid()).encode())
        for _ in range(200):
            storage.incr("hits")
        return [b"won" if won else b"lost"]

    guarded(out, work)
