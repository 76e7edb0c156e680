"""The benchmark's huey application (run with ``huey_consumer benchmarks.huey_app.huey``).

Environment: ``BENCH_HUEY`` (``redis``, ``sqlite`` or ``file``), ``BENCH_HUEY_NAME`` (the queue name, unique per
run), ``BENCH_REDIS_DB``, ``BENCH_HUEY_PATH`` (the SQLite file or the folder) and ``BENCH_LEDGER``. huey runs with
its defaults (pickle, no signing, at most once).
"""

from __future__ import annotations

import os

from huey import FileHuey, RedisHuey, SqliteHuey

from benchmarks.body import record

_kind = os.environ.get("BENCH_HUEY", "redis")
_name = os.environ.get("BENCH_HUEY_NAME", "tasks-q-bench")
if _kind == "redis":
    huey = RedisHuey(_name, host="127.0.0.1", port=6379, db=int(os.environ.get("BENCH_REDIS_DB", "14")))
elif _kind == "sqlite":
    huey = SqliteHuey(_name, filename=os.environ["BENCH_HUEY_PATH"])
elif _kind == "file":
    huey = FileHuey(_name, path=os.environ["BENCH_HUEY_PATH"])
else:
    raise RuntimeError(f"BENCH_HUEY must be redis, sqlite or file, not {_kind!r}")


@huey.task()
def noop(n: int) -> None:
    """Append a record to the ledger (see :mod:`benchmarks.body`)."""
    record(n)
