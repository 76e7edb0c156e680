"""The producer side of the benchmark, run in its own process for one system at a time.

``python -m benchmarks.producer SYSTEM MODE N [--start K] [--interval S] [--times FILE]`` where ``SYSTEM`` is
``ours`` (Django settings ``benchmarks.settings``), ``huey`` (``benchmarks.huey_app``) or ``raw`` (plain
redis-py), and ``MODE``:

``one``      enqueue N calls one at a time, as a web view would (after 20 untimed warm-up calls); prints JSON
``bulk``     enqueue N calls in one ``task.map()`` (ours), a pipeline (raw) or one at a time (huey has no bulk)
``prefill``  the fastest way each system has to fill the queue before a drain run (``bulk``)
             (``bulk`` and ``prefill`` number their calls from ``--start``, 0 by default)
``latency``  one untimed call, then N calls ``--interval`` seconds apart, the time just before each call
             written to ``--times``
``warm``     one call (number 999999999), to see that a consumer is up
``flush``    remove everything the system stores for the benchmark queue
``pending``  print how many messages wait
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchmarks.body import RECORD_SIZE


class System:
    """One producer: how to enqueue one call, many calls, flush and count."""

    def one(self, n: int) -> None:
        raise NotImplementedError

    def many(self, numbers: range) -> None:
        for n in numbers:
            self.one(n)

    def flush(self) -> None:
        raise NotImplementedError

    def pending(self) -> int:
        raise NotImplementedError


class Ours(System):
    def __init__(self) -> None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
        import django

        django.setup()
        from benchmarks.benchapp.tasks import noop
        from django_tasks_q.conf import queues

        self.task = noop
        self.hub = queues["bench"]

    def one(self, n: int) -> None:
        self.task(n)

    def many(self, numbers: range) -> None:
        self.task.map(numbers)

    def flush(self) -> None:
        self.hub.flush()

    def pending(self) -> int:
        return self.hub.pending_count()


class Huey(System):
    def __init__(self) -> None:
        from benchmarks.huey_app import huey, noop

        self.huey = huey
        self.task = noop

    def one(self, n: int) -> None:
        self.task(n)

    def flush(self) -> None:
        self.huey.flush()

    def pending(self) -> int:
        return self.huey.pending_count()


class Raw(System):
    def __init__(self) -> None:
        from benchmarks import raw_redis

        self.raw = raw_redis
        self.client = raw_redis.client()
        self.key = raw_redis.key()

    def one(self, n: int) -> None:
        self.client.lpush(self.key, self.raw.payload(n))

    def many(self, numbers: range) -> None:
        pipe = self.client.pipeline(transaction=False)
        for n in numbers:
            pipe.lpush(self.key, self.raw.payload(n))
        pipe.execute()

    def flush(self) -> None:
        self.client.delete(self.key)

    def pending(self) -> int:
        return int(self.client.llen(self.key))


SYSTEMS = {"ours": Ours, "huey": Huey, "raw": Raw}


def _latency(system: System, count: int, interval: float, times_path: str) -> None:
    fd = os.open(times_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    start = time.monotonic()
    try:
        for n in range(count):
            pause = start + n * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            os.write(fd, b"%010d %017.6f\n" % (n, time.time()))
            system.one(n)
    finally:
        os.close(fd)
    assert RECORD_SIZE == 29


def main() -> None:
    """Command line (see the module documentation)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("mode", choices=["one", "bulk", "prefill", "latency", "warm", "flush", "pending"])
    parser.add_argument("n", type=int, nargs="?", default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--times", default="")
    options = parser.parse_args()
    system = SYSTEMS[options.system]()
    out: dict[str, Any] = {}
    if options.mode == "flush":
        system.flush()
    elif options.mode == "warm":
        system.one(10**9 - 1)
    elif options.mode == "pending":
        out["pending"] = system.pending()
    elif options.mode == "latency":
        system.one(10**9 - 2)  # untimed: connects and builds what the first call needs
        _latency(system, options.n, options.interval, options.times)
    elif options.mode == "one":
        for n in range(10**9 - 20, 10**9):
            system.one(n)  # warm-up: connections, codec, registry
        started, cpu = time.perf_counter(), time.process_time()
        for n in range(options.n):
            system.one(n)
        out["elapsed"], out["cpu"] = time.perf_counter() - started, time.process_time() - cpu
    else:  # bulk, prefill
        started, cpu = time.perf_counter(), time.process_time()
        system.many(range(options.start, options.start + options.n))
        out["elapsed"], out["cpu"] = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps(out))


if __name__ == "__main__":
    main()
