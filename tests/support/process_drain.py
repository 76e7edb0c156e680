"""Several processes on one storage at once: start them together, let them drain it, check exactly-once delivery.

Shared by ``tests/chaos/test_file_processes.py`` and ``tests/chaos/test_sqlite_processes.py``. Children are started with
multiprocessing's ``spawn`` method (never ``fork``), so every child target lives at module level in an importable
module (``tests`` is a package and pytest puts the project root on ``sys.path``, which spawned children inherit).
A child gets a picklable ``make_storage`` (e.g. ``functools.partial(FileStorage, NAME, path=path)``) and opens its
own storage with it.

The children talk to the parent through files: each touches ``<ready_dir>/<pid>`` once its storage is open, waits
for the file ``go`` so that all of them start at once, and writes what it sent or received, one message a line, to
its output file ``out`` (or its traceback to ``out + '.error'``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from django_tasks_q.backends.base import BaseStorage

CTX = multiprocessing.get_context("spawn")
StorageFactory = Callable[[], BaseStorage]
Target = tuple[Callable[..., None], tuple[Any, ...]]


# ---------------------------------------------------------------------------- code run in the children


def wait_for(path: str, timeout: float = 60) -> None:
    """Poll until the file ``path`` exists; raise :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def open_when_all_ready(make_storage: StorageFactory, ready_dir: str, go: str) -> BaseStorage:
    """Open (and connect) a storage, report this process ready, and wait for the signal to start."""
    storage = make_storage()
    storage.queue_size()  # connected, and its folders or tables exist
    Path(ready_dir, str(os.getpid())).touch()
    wait_for(go)
    return storage


def guarded(out: str, work: Callable[[], list[bytes]]) -> None:
    """Run ``work``; write what it returns to ``out``, or the traceback to ``out + '.error'``."""
    try:
        got = work()
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise
    Path(out).write_bytes(b"\n".join(got))


def consume(make_storage: StorageFactory, out: str, ready_dir: str, go: str, stop: str) -> None:
    """Reserve and ack until ``stop`` exists and the queue is empty; write every message received."""

    def work() -> list[bytes]:
        storage = open_when_all_ready(make_storage, ready_dir, go)
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

    guarded(out, work)


def produce(make_storage: StorageFactory, out: str, ready_dir: str, go: str, prefix: str, count: int) -> None:
    """Enqueue ``count`` messages ``<prefix>-<i>`` (priorities 0..2) as fast as possible; write them all."""

    def work() -> list[bytes]:
        storage = open_when_all_ready(make_storage, ready_dir, go)
        sent = []
        for i in range(count):
            data = f"{prefix}-{i}".encode()
            storage.enqueue(data, i % 3)
            sent.append(data)
        return sent

    guarded(out, work)


# ---------------------------------------------------------------------------- code run in the test


def start_all(targets: list[Target], ready_dir: Path, go: Path) -> list[BaseProcess]:
    """Start one process per ``(target, args)``, wait until all are ready, then let them go at once."""
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


def join(processes: list[BaseProcess], outputs: list[Path]) -> None:
    """Wait for ``processes`` (killing any still running after 90 s) and assert that each exited with 0.

    The failure message holds the tracebacks the children wrote beside their ``outputs``.
    """
    for process in processes:
        process.join(timeout=90)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join()
    errors = [out.with_name(out.name + ".error") for out in outputs]
    details = "\n".join(e.read_text() for e in errors if e.exists())
    assert [p.exitcode for p in processes] == [0] * len(processes), details


def received(outputs: list[Path]) -> list[bytes]:
    """Every message written to ``outputs``, in order, file after file."""
    return [line for out in outputs for line in out.read_bytes().split(b"\n") if line]


def gates(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(ready_dir, go, stop)`` below ``tmp_path``; ``ready_dir`` is created, ``go`` and ``stop`` are not."""
    ready_dir, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
    ready_dir.mkdir()
    return ready_dir, go, stop


def assert_exactly_once(sent: list[bytes], got: list[bytes]) -> None:
    """Assert that ``got`` holds each message of ``sent`` exactly once."""
    assert len(got) == len(sent), "a message was lost or delivered twice"
    assert sorted(got) == sorted(sent)


def drain_exactly_once(tmp_path: Path, make_storage: StorageFactory, messages: int, consumers: int) -> None:
    """Enqueue ``messages`` messages, let ``consumers`` processes drain them; each must come out exactly once.

    The messages are ``m-<i>`` with priorities 0..3, enqueued here before the processes start. At least two of
    the processes must have received messages (the work is shared, not taken by one), and afterwards nothing
    is left queued or in flight.
    """
    storage = make_storage()
    sent = [f"m-{i}".encode() for i in range(messages)]
    for i, data in enumerate(sent):
        storage.enqueue(data, i % 4)
    ready_dir, go, stop = gates(tmp_path)
    stop.touch()  # nothing more will come: stop once the queue is empty
    outputs = [tmp_path / f"consumer-{i}" for i in range(consumers)]
    processes = start_all(
        [(consume, (make_storage, str(out), str(ready_dir), str(go), str(stop))) for out in outputs],
        ready_dir,
        go,
    )
    join(processes, outputs)
    assert_exactly_once(sent, received(outputs))
    assert sum(1 for out in outputs if out.read_bytes()) >= 2, "the work was not shared between processes"
    assert (storage.queue_size(), storage.in_flight_size()) == (0, 0)
    storage.close()


def produce_and_consume_exactly_once(
    tmp_path: Path, make_storage: StorageFactory, producers: int, consumers: int, per_producer: int
) -> None:
    """Run ``producers`` and ``consumers`` processes at once; every message sent must be received exactly once.

    The consumers are told to stop (once the queue is empty) only after every producer has finished.
    """
    ready_dir, go, stop = gates(tmp_path)
    producer_outputs = [tmp_path / f"producer-{i}" for i in range(producers)]
    consumer_outputs = [tmp_path / f"consumer-{i}" for i in range(consumers)]
    targets: list[Target] = [
        (produce, (make_storage, str(out), str(ready_dir), str(go), f"p{i}", per_producer))
        for i, out in enumerate(producer_outputs)
    ]
    targets += [
        (consume, (make_storage, str(out), str(ready_dir), str(go), str(stop))) for out in consumer_outputs
    ]
    processes = start_all(targets, ready_dir, go)
    join(processes[:producers], producer_outputs)
    stop.touch()
    join(processes[producers:], consumer_outputs)
    sent = received(producer_outputs)
    assert len(sent) == producers * per_producer
    assert_exactly_once(sent, received(consumer_outputs))
