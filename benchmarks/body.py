"""The task body shared by every system in the benchmark: append one fixed-size record to the ledger file.

A record is ``b"%010d %017.6f\\n" % (n, time.time())`` (29 bytes), written with one ``os.write`` on a descriptor
opened with ``O_APPEND``, so records from threads and processes never interleave and the ledger's size tells how
many tasks have started. The same function runs inside our consumer, huey's consumer and the raw Redis floor, so
completion is detected the same way for each.
"""

from __future__ import annotations

import os
import threading
import time

RECORD_SIZE = 29
_lock = threading.Lock()
_fd: int | None = None
_pid = 0
_redis = None
_redis_pid = 0


def _ledger_fd() -> int:
    global _fd, _pid
    with _lock:
        if _fd is None or _pid != os.getpid():
            _fd = os.open(os.environ["BENCH_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            _pid = os.getpid()
        return _fd


def _redis_client():
    global _redis, _redis_pid
    with _lock:
        if _redis is None or _redis_pid != os.getpid():
            import redis

            _redis = redis.Redis(host="127.0.0.1", port=6379, db=int(os.environ["BENCH_REDIS_DB"]))
            _redis_pid = os.getpid()
        return _redis


_with_redis = os.environ.get("BENCH_BODY", "append") == "redis"


def record(n: int) -> None:
    """The task: note that task ``n`` started, and when (and, with ``BENCH_BODY=redis``, one Redis round trip)."""
    fd = _fd if _fd is not None and _pid == os.getpid() else _ledger_fd()
    os.write(fd, b"%010d %017.6f\n" % (n, time.time()))
    if _with_redis:
        client = _redis if _redis is not None and _redis_pid == os.getpid() else _redis_client()
        client.incr(os.environ["BENCH_BODY_KEY"])


def read_ledger(path: str) -> list[tuple[int, float]]:
    """Every ``(n, started_at)`` record of a ledger file, in file order."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return []
    usable = len(raw) - len(raw) % RECORD_SIZE
    return [
        (int(raw[i : i + 10]), float(raw[i + 11 : i + 28]))
        for i in range(0, usable, RECORD_SIZE)
    ]


def ledger_count(path: str) -> int:
    """How many records the ledger holds (from its size alone)."""
    try:
        return os.stat(path).st_size // RECORD_SIZE
    except FileNotFoundError:
        return 0
