"""Benchmarks of django-tasks-q beside huey on the same storages; prints a Markdown table, writes the docs page.

Run it with ``scripts/bench`` (``--quick`` for a short run); see ``docs/benchmarks.md`` for what is measured.

Every figure comes from separate processes: a producer (``benchmarks.producer``) and the real consumer of each
system (``run_tasks`` for django-tasks-q, ``huey_consumer`` for huey, ``benchmarks.raw_redis`` for the floor).
Every task runs the same body (:func:`benchmarks.body.record`), which appends a fixed-size record to a ledger
file, so completion and start times are read the same way for every system.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.body import ledger_count, read_ledger

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
REDIS_DB = 14
PG_URL = "postgres://postgres@127.0.0.1:5432/tasks_q_bench"
WARM_N = 10**9 - 1


# ------------------------------------------------------------------------------------------------ systems


@dataclass
class System:
    """One queue system on one storage, as the benchmark runs it."""

    key: str
    label: str
    group: str
    kind: str  # "ours", "huey" or "raw"
    env: dict[str, str] = field(default_factory=dict)
    peer: str | None = None
    """Key of the huey system this one is compared with."""

    def consumer_command(self, workers: int, worker_type: str, threads: int = 1) -> list[str]:
        """The consumer's command line for ``workers`` threads or processes (``threads`` each, if it can)."""
        if self.kind == "ours":
            command = [PYTHON, "-m", "django", "run_tasks", "--no-reload", "--queue", "bench",
                       "--workers", str(workers), "--worker-type", worker_type]
            if worker_type == "process" and threads > 1:
                command += ["--threads", str(threads)]
            return command
        if self.kind == "huey":
            return [str(Path(PYTHON).parent / "huey_consumer"), "benchmarks.huey_app.huey",
                    "-w", str(workers), "-k", worker_type]
        if worker_type == "process":
            return [PYTHON, "-m", "benchmarks.raw_redis", "consume", "--processes", str(workers),
                    "--threads", str(threads)]
        return [PYTHON, "-m", "benchmarks.raw_redis", "consume", "--threads", str(workers)]

    @property
    def stop_signal(self) -> int:
        return signal.SIGINT if self.kind == "huey" else signal.SIGTERM


def make_systems(work: Path, run_id: str, with_postgres: bool) -> list[System]:
    """Every system of the benchmark, with its private names, files and database."""
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}?prefix=tqbench-{run_id}"
    django_db = f"sqlite:///{work / 'django.sqlite3'}"
    systems = [
        System("raw", "redis-py LPUSH/BRPOP (floor)", "Redis", "raw",
               {"BENCH_RAW_KEY": f"tqbench-{run_id}-raw"}),
        System("huey-redis", "huey RedisHuey", "Redis", "huey",
               {"BENCH_HUEY": "redis", "BENCH_HUEY_NAME": f"tqbench-{run_id}"}),
        System("ours-redis", "django-tasks-q Redis", "Redis", "ours",
               {"BENCH_QUEUE_URL": redis_url, "BENCH_DB_URL": django_db}, peer="huey-redis"),
        System("huey-sqlite", "huey SqliteHuey", "SQLite", "huey",
               {"BENCH_HUEY": "sqlite", "BENCH_HUEY_PATH": str(work / "huey.db")}),
        System("ours-sqlite", "django-tasks-q SQLite", "SQLite", "ours",
               {"BENCH_QUEUE_URL": f"sqlite:///{work / 'queue.db'}", "BENCH_DB_URL": django_db},
               peer="huey-sqlite"),
        System("ours-orm-sqlite", "django-tasks-q ORM on SQLite", "SQLite", "ours",
               {"BENCH_QUEUE_URL": "orm://", "BENCH_DB_URL": f"sqlite:///{work / 'orm.sqlite3'}"},
               peer="huey-sqlite"),
        System("huey-file", "huey FileHuey", "File", "huey",
               {"BENCH_HUEY": "file", "BENCH_HUEY_PATH": str(work / "huey-files")}),
        System("ours-file", "django-tasks-q file", "File", "ours",
               {"BENCH_QUEUE_URL": f"file://{work / 'files'}", "BENCH_DB_URL": django_db}, peer="huey-file"),
    ]
    if with_postgres:
        systems.append(
            System("ours-orm-pg", "django-tasks-q ORM on PostgreSQL", "PostgreSQL", "ours",
                   {"BENCH_QUEUE_URL": "orm://", "BENCH_DB_URL": PG_URL})
        )
    return systems


# ------------------------------------------------------------------------------------------------ running


class Bench:
    """Runs the measurements of one invocation (shared temp folder, ledger, environment)."""

    def __init__(self, work: Path, options: argparse.Namespace) -> None:
        self.work = work
        self.options = options
        self.ledger = work / "ledger.bin"
        self.times = work / "times.bin"
        self.base_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "BENCH_LEDGER": str(self.ledger),
            "BENCH_REDIS_DB": str(REDIS_DB),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def env(self, system: System) -> dict[str, str]:
        return {**self.base_env, **system.env}

    def log(self, text: str) -> None:
        if not self.options.silent:
            print(text, file=sys.stderr, flush=True)

    def produce(self, system: System, mode: str, n: int = 0, *extra: str) -> dict[str, Any]:
        done = subprocess.run(
            [PYTHON, "-m", "benchmarks.producer", system.kind, mode, str(n), *extra],
            env=self.env(system), cwd=REPO, capture_output=True, text=True, timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{system.label}: producer {mode} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def prepare(self, system: System) -> None:
        """Create what the system needs (Django tables) and empty its queue."""
        if system.kind == "ours":
            done = subprocess.run(
                [PYTHON, "-m", "django", "migrate", "--noinput", "-v", "0"],
                env=self.env(system), cwd=REPO, capture_output=True, text=True, timeout=300,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{system.label}: migrate failed:\n{done.stderr[-3000:]}")
        self.produce(system, "flush")

    def start_consumer(self, system: System, workers: int, worker_type: str, threads: int = 1) -> subprocess.Popen:
        log = (self.work / f"consumer-{system.key}.log").open("ab")
        process = subprocess.Popen(
            system.consumer_command(workers, worker_type, threads),
            env=self.env(system), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return process

    def stop_consumer(self, system: System, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(system.stop_signal)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its own process group
        except ProcessLookupError:
            pass
        process.wait(10)

    def wait_for(self, count: int, timeout: float, process: subprocess.Popen, what: str) -> None:
        deadline = time.monotonic() + timeout
        while ledger_count(str(self.ledger)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {ledger_count(str(self.ledger))} of {count} tasks ran within {timeout:g} s")
            if process.poll() is not None:
                raise RuntimeError(f"{what}: the consumer exited with status {process.returncode}")
            time.sleep(0.02)

    def reset_ledger(self) -> None:
        # Truncated, not removed: a running consumer keeps its O_APPEND descriptor on the same file.
        for path in (self.ledger, self.times):
            path.touch()
            os.truncate(path, 0)

    # ---- measurements

    def enqueue_rate(self, system: System, mode: str = "one") -> float:
        n = self.options.n
        self.produce(system, "flush")
        elapsed = self.produce(system, mode, n)["elapsed"]
        self.produce(system, "flush")
        return n / elapsed

    def drain_rate(self, system: System, workers: int, worker_type: str, threads: int = 1) -> dict[str, float]:
        n = self.options.n
        self.produce(system, "flush")
        self.produce(system, "prefill", n)
        self.reset_ledger()
        what = f"{system.label} drain ({workers} {worker_type})"
        process = self.start_consumer(system, workers, worker_type, threads)
        try:
            self.wait_for(n, max(120.0, n / 50), process, what)
        finally:
            self.stop_consumer(system, process)
        records = read_ledger(str(self.ledger))
        starts = sorted(t for number, t in records if number < n)
        seen = {number for number, _ in records if number < n}
        if len(seen) != n:
            raise RuntimeError(f"{what}: {n - len(seen)} task(s) never ran")
        # Steady state: the middle 90 % of the starts (consumer start-up and the last stragglers left out).
        low, high = int(0.05 * (n - 1)), int(0.95 * (n - 1))
        rate = (high - low) / max(starts[high] - starts[low], 1e-9)
        self.produce(system, "flush")
        return {"rate": rate, "duplicates": len(records) - len(seen)}

    def latency(self, system: System) -> dict[str, float]:
        count, interval = self.options.latency_tasks, self.options.interval
        self.produce(system, "flush")
        self.reset_ledger()
        process = self.start_consumer(system, 1, "thread")
        try:
            self.produce(system, "warm")
            self.wait_for(1, 60, process, f"{system.label} warm-up")
            time.sleep(1.0)  # the consumer goes idle
            idle = idle_cpu(process.pid, self.options.idle_window)
            self.reset_ledger()
            self.produce(system, "latency", count, "--interval", str(interval), "--times", str(self.times))
            self.wait_for(count + 1, 60, process, f"{system.label} latency")  # + the untimed first call
        finally:
            self.stop_consumer(system, process)
        sent = dict(read_ledger(str(self.times)))
        started = dict(read_ledger(str(self.ledger)))
        delays = sorted((started[n] - sent[n]) * 1000 for n in sent if n in started)
        self.produce(system, "flush")
        return {
            "p50": percentile(delays, 50),
            "p95": percentile(delays, 95),
            "p99": percentile(delays, 99),
            "idle_cpu": idle,
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(pct / 100 * len(values) + 0.5)))
    return values[rank - 1]


def _group_cpu_ticks(pgid: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def idle_cpu(pgid: int, window: float) -> float:
    """Percent of one core used by the consumer's process group during ``window`` seconds of idleness."""
    ticks = os.sysconf("SC_CLK_TCK")
    before = _group_cpu_ticks(pgid)
    started = time.monotonic()
    time.sleep(window)
    used = _group_cpu_ticks(pgid) - before
    return 100.0 * used / ticks / (time.monotonic() - started)


# ------------------------------------------------------------------------------------------------ scenarios

DRAINS = [("drain_t2", 2, "thread", 1), ("drain_t8", 8, "thread", 1), ("drain_p", 2, "process", 8)]
COLUMNS = [
    ("enqueue", "enqueue /s"),
    ("drain_t2", "drain 2 threads /s"),
    ("drain_t8", "drain 8 threads /s"),
    ("drain_p", "drain 2 processes /s"),
    ("p50", "latency p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("idle_cpu", "idle CPU %"),
]
HIGHER_IS_BETTER = {"enqueue", "drain_t2", "drain_t8", "drain_p", "bulk"}


def measure(bench: Bench, system: System, figures: dict[str, list[float]]) -> None:
    """Every figure of one system, once; appended to ``figures``."""

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    add("enqueue", bench.enqueue_rate(system, "one"))
    if system.kind != "huey":
        add("bulk", bench.enqueue_rate(system, "bulk"))
    for name, workers, worker_type, threads in DRAINS:
        if worker_type == "process" and system.kind == "huey":
            threads = 1  # huey's process workers are single-threaded
        result = bench.drain_rate(system, workers, worker_type, threads)
        add(name, result["rate"])
        add(name + "_dup", result["duplicates"])
    for name, value in bench.latency(system).items():
        add(name, value)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ------------------------------------------------------------------------------------------------ report


def fmt(value: float | None, name: str) -> str:
    if value is None or value != value:
        return "-"
    if name in ("p50", "p95", "p99"):
        return f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    if name == "idle_cpu":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ratio(value: float | None, peer: float | None, name: str) -> str:
    if value is None or peer is None or not value or not peer or value != value or peer != peer:
        return ""
    if name in HIGHER_IS_BETTER:
        return f" ({value / peer:.2f}x)"
    if name in ("p50", "p95", "p99"):
        return f" ({peer / value:.1f}x faster)" if value < peer else f" ({value / peer:.1f}x slower)"
    return ""


def table(systems: list[System], results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| system | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for system in systems:
        if system.key not in results:
            continue
        figures = results[system.key]
        peer = results.get(system.peer) if system.peer else None
        cells = []
        for name, _ in COLUMNS:
            value = figures.get(name)
            cells.append(fmt(value, name) + (ratio(value, peer.get(name), name) if peer else ""))
        lines.append(f"| {system.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bulk_table(systems: list[System], results: dict[str, dict[str, float]]) -> str:
    lines = ["| system | one at a time /s | bulk (`task.map()` / pipeline) /s | gain |", "|---|---:|---:|---:|"]
    for system in systems:
        figures = results.get(system.key, {})
        if "bulk" not in figures:
            continue
        gain = figures["bulk"] / figures["enqueue"]
        lines.append(f"| {system.label} | {figures['enqueue']:,.0f} | {figures['bulk']:,.0f} | {gain:.1f}x |")
    return "\n".join(lines)


def environment_text(options: argparse.Namespace, load_before: str, load_after: str) -> str:
    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    import django
    import huey
    import redis

    redis_server = version(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0]
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · Python "
        f"{platform.python_version()} · Django {django.__version__} · huey {huey.__version__} · redis-py "
        f"{redis.__version__} · Redis {redis_server} · SQLite {__import__('sqlite3').sqlite_version} · "
        f"N = {options.n:,} tasks · latency: {options.latency_tasks} tasks {options.interval * 1000:g} ms apart · "
        f"median of {options.runs} run(s) · load average before {load_before}, after {load_after}"
    )


def write_report(path: Path, text: str, figure: str | None) -> None:
    template = (Path(__file__).parent / "report.md").read_text()
    page = template.replace("{{RESULTS}}", text)
    page = page.replace("{{FIGURE}}", f"![the table as a chart]({figure})" if figure else "")
    path.write_text(page)


# ------------------------------------------------------------------------------------------------ main


def postgres_available() -> bool:
    """Whether the PostgreSQL server answers; creates the benchmark database when it is missing."""
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True,
                             connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tasks_q_bench'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE tasks_q_bench")
        return True
    except Exception:
        return False


def cleanup_redis(run_id: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        for pattern in (f"tqbench-{run_id}*", f"huey.*tqbench-{run_id}*", f"*tqbench-{run_id}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                client.unlink(*keys[start : start + 500])
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: N=1000, 1 run, 50 latency tasks")
    parser.add_argument("-n", type=int, default=None, help="tasks per throughput measurement (default 10,000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure; the median is shown (default 3)")
    parser.add_argument("--latency-tasks", type=int, default=None, help="tasks in the latency run (default 200)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between latency tasks")
    parser.add_argument("--idle-window", type=float, default=None, help="seconds of idle CPU sampling (default 5)")
    parser.add_argument("--only", default="", help="comma-separated system keys to run (default: all)")
    parser.add_argument("--output", default=str(REPO / "docs"), help="folder for benchmarks.md and benchmarks.png")
    parser.add_argument("--no-docs", action="store_true", help="print the table only; write no files")
    parser.add_argument("--json", default="", help="also write the raw figures to this JSON file")
    parser.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    options = parser.parse_args(argv)
    options.n = options.n or (1000 if options.quick else 10_000)
    options.runs = options.runs or (1 if options.quick else 3)
    options.latency_tasks = options.latency_tasks or (50 if options.quick else 200)
    options.idle_window = options.idle_window or (2.0 if options.quick else 5.0)

    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="tasks-q-bench-"))
    with_postgres = postgres_available()
    systems = make_systems(work, run_id, with_postgres)
    if options.only:
        wanted = set(options.only.split(","))
        systems = [system for system in systems if system.key in wanted]
    bench = Bench(work, options)
    load_before = load()
    raw: dict[str, dict[str, list[float]]] = {system.key: {} for system in systems}
    try:
        for system in systems:
            bench.prepare(system)
        # Runs go round every system in turn, so that a busy moment of the machine touches all of them alike.
        for run in range(options.runs):
            for system in systems:
                bench.log(f"run {run + 1}/{options.runs}: {system.label}  (load {load()})")
                measure(bench, system, raw[system.key])
    finally:
        cleanup_redis(run_id)
        shutil.rmtree(work, ignore_errors=True)
    load_after = load()
    results = {key: {name: statistics.median(values) for name, values in figures.items()}
               for key, figures in raw.items()}

    notes = environment_text(options, load_before, load_after)
    duplicates = {key: sum(sum(v) for name, v in figures.items() if name.endswith("_dup"))
                  for key, figures in raw.items()}
    dup_note = ", ".join(f"{key}: {count:g}" for key, count in duplicates.items() if count)
    text = "\n\n".join(
        [
            notes,
            table(systems, results),
            "Bulk enqueue (issue #9): one call of `task.map(range(N))` against N calls one at a time.",
            bulk_table(systems, results),
        ]
        + ([f"Tasks run more than once during drains: {dup_note}."] if dup_note else [])
        + ([] if with_postgres else ["PostgreSQL was not reachable on 127.0.0.1:5432: its row is missing."])
    )
    print(text)
    if options.json:
        Path(options.json).write_text(json.dumps({"notes": notes, "results": results, "raw": raw}, indent=1))
    if not options.no_docs:
        output = Path(options.output)
        output.mkdir(parents=True, exist_ok=True)
        figure = None
        try:
            from benchmarks.plot import plot

            plot(systems, results, output / "benchmarks.png", notes)
            figure = "benchmarks.png"
        except ImportError as exc:
            bench.log(f"no chart: {exc} (install the bench extra: pip install -e '.[bench]')")
        write_report(output / "benchmarks.md", text, figure)
        bench.log(f"wrote {output / 'benchmarks.md'}" + (f" and {output / figure}" if figure else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

