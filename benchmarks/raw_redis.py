"""The floor: plain redis-py ``LPUSH`` / ``BRPOP`` of a message of the same size, no queue library at all.

``python -m benchmarks.raw_redis consume --threads T [--processes P]`` runs the consumer: each thread loops on
``BRPOP``, decodes the JSON and runs the same task body as the real systems. Environment: ``BENCH_RAW_KEY`` (the
list), ``BENCH_REDIS_DB``, ``BENCH_LEDGER``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import threading
import uuid

import redis

from benchmarks.body import record


def client() -> redis.Redis:
    """A client of the benchmark's Redis database."""
    return redis.Redis(host="127.0.0.1", port=6379, db=int(os.environ.get("BENCH_REDIS_DB", "14")))


def key() -> str:
    """The list the floor uses."""
    return os.environ.get("BENCH_RAW_KEY", "tasks-q-bench-raw")


def payload(n: int) -> bytes:
    """A JSON message shaped (and sized) like a task envelope."""
    return json.dumps(
        {
            "version": 1,
            "id": uuid.uuid4().hex,
            "name": "benchmarks.benchapp.tasks.noop",
            "args": [n],
            "kwargs": {},
            "eta": None,
            "priority": None,
            "retries": 0,
            "retry_delay": 0,
            "retry_backoff": 1.0,
            "expires": None,
            "timeout": None,
            "on_complete": None,
            "on_error": None,
            "chord": None,
            "enqueued_at": "2026-01-01T00:00:00.000000+00:00",
            "extra": {},
        }
    ).encode()


def _worker(stop: threading.Event) -> None:
    conn = client()
    name = key()
    while not stop.is_set():
        item = conn.brpop([name], timeout=1)
        if item is not None:
            record(json.loads(item[1])["args"][0])


def _threads(count: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [threading.Thread(target=_worker, args=(stop,), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)


def main() -> None:
    """Command line: ``consume --threads T [--processes P]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["consume"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=0)
    options = parser.parse_args()
    if not options.processes:
        _threads(options.threads)
        return
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_threads, args=(options.threads,)) for _ in range(options.processes)]
    for child in children:
        child.start()
    signal.signal(signal.SIGTERM, lambda *_: [child.terminate() for child in children])
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
