"""Benchmarks of django-tasks-q beside huey on the same storages; prints a Markdown table, writes the docs page.

Run it with ``scripts/bench`` (``--quick`` for a short run); see ``docs/performance.md`` for what is measured.

Every figure comes from separate processes: a producer (``benchmarks.producer``) and the real consumer of each
system (``run_tasks`` for django-tasks-q, ``huey_consumer`` for huey, ``benchmarks.raw_redis`` for the floor).
Every task runs the same body (:func:`benchmarks.body.record`), which appends a fixed-size record to a ledger
file, so completion and start times are read the same way for every system.

A second, slower measurement follows the consumer's memory: many tasks through one consumer, its resident memory
sampled as they go (``--memory-n``; ``--no-memory`` leaves it out, ``--memory-only`` runs nothing else).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
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
REDIS_DB = 11
"""Default Redis database of the benchmark (``--redis-db``); it only touches keys under its run's own prefix."""
PG_URL = "postgres://postgres@127.0.0.1:5432/tasks_q_bench"
WARM_N = 10**9 - 1
PAGE = "performance.md"
FIGURE = "performance.png"


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
    tuned: str = ""
    """The tunings (names of :data:`benchmarks.settings.TUNINGS`) this row adds to the defaults; empty for none."""

    def consumer_command(self, workers: int, worker_type: str, threads: int = 1) -> list[str]:
        """The consumer's command line for ``workers`` threads or processes (``threads`` each, if it can)."""
        if self.kind == "ours":
            command = [PYTHON, "-m", "django", "run_tasks", "--no-reload", "--queue", "bench",
                       "--workers", str(workers), "--worker-type", worker_type]
            if worker_type == "process" and threads > 1:
                command += ["--threads", str(threads)]
            return command
        if self.kind == "huey":
            return [PYTHON, "-m", "huey.bin.huey_consumer", "benchmarks.huey_app.huey",
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
    # Every Django process runs in a startproject folder of its own system family; its db.sqlite3 holds the task
    # history (and, for the ORM storage, the queue).
    django_db = {"BENCH_PROJECT_DIR": str(work / "project")}
    orm_db = {"BENCH_PROJECT_DIR": str(work / "orm-project")}
    orm_tuned_db = {"BENCH_PROJECT_DIR": str(work / "orm-tuned-project")}
    systems = [
        System("raw", "redis-py LPUSH/BRPOP (floor)", "Redis", "raw",
               {"BENCH_RAW_KEY": f"tqbench-{run_id}-raw"}),
        System("huey-redis", "huey RedisHuey", "Redis", "huey",
               {"BENCH_HUEY": "redis", "BENCH_HUEY_NAME": f"tqbench-{run_id}"}),
        System("ours-redis", "django-tasks-q Redis", "Redis", "ours",
               {"BENCH_QUEUE_URL": redis_url, **django_db}, peer="huey-redis"),
        System("ours-redis-nohistory", "django-tasks-q Redis, tuned: history off", "Redis", "ours",
               {"BENCH_QUEUE_URL": redis_url, **django_db, "BENCH_TUNED": "history-off"}, peer="huey-redis",
               tuned="history-off"),
        System("huey-sqlite", "huey SqliteHuey", "SQLite", "huey",
               {"BENCH_HUEY": "sqlite", "BENCH_HUEY_PATH": str(work / "huey.db")}),
        System("ours-sqlite", "django-tasks-q SQLite", "SQLite", "ours",
               {"BENCH_QUEUE_URL": f"sqlite:///{work / 'queue.db'}", **django_db}, peer="huey-sqlite"),
        System("ours-orm-sqlite", "django-tasks-q ORM on startproject's SQLite (embedded default)", "SQLite",
               "ours", {"BENCH_QUEUE_URL": "orm://", **orm_db}, peer="huey-sqlite"),
        System("ours-orm-sqlite-tuned", "django-tasks-q ORM on SQLite, tuned: history off, persistent, WAL",
               "SQLite", "ours",
               {"BENCH_QUEUE_URL": "orm://", **orm_tuned_db, "BENCH_TUNED": "history-off,persistent,wal"},
               peer="huey-sqlite", tuned="history-off,persistent,wal"),
        System("huey-file", "huey FileHuey", "File", "huey",
               {"BENCH_HUEY": "file", "BENCH_HUEY_PATH": str(work / "huey-files")}),
        System("ours-file", "django-tasks-q file", "File", "ours",
               {"BENCH_QUEUE_URL": f"file://{work / 'files'}", **django_db}, peer="huey-file"),
    ]
    if with_postgres:
        systems.append(
            System("ours-orm-pg", "django-tasks-q ORM on PostgreSQL", "PostgreSQL", "ours",
                   {"BENCH_QUEUE_URL": "orm://", **django_db, "BENCH_DB_URL": PG_URL})
        )
    for folder in (django_db, orm_db, orm_tuned_db):
        Path(folder["BENCH_PROJECT_DIR"]).mkdir(parents=True, exist_ok=True)
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
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "BENCH_LEDGER": str(self.ledger),
            "BENCH_REDIS_DB": str(REDIS_DB),
            "BENCH_BODY": options.body,
            "BENCH_BODY_KEY": f"tqbench-{options.run_id}-body",
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

    def wait_for(self, count: int, timeout: float, process: subprocess.Popen, what: str,
                 cpu_marks: dict[int, tuple[int, int]] | None = None) -> None:
        """Wait until ``count`` tasks ran; ``cpu_marks`` maps task counts to ``(count, CPU ticks)`` when reached."""
        deadline = time.monotonic() + timeout
        pending = sorted(cpu_marks) if cpu_marks is not None else []
        while (done := ledger_count(str(self.ledger))) < count:
            while pending and done >= pending[0]:
                cpu_marks[pending.pop(0)] = (done, _group_cpu_ticks(process.pid))
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {done} of {count} tasks ran within {timeout:g} s")
            if process.poll() is not None:
                raise RuntimeError(f"{what}: the consumer exited with status {process.returncode}")
            time.sleep(0.005 if pending else 0.02)
        for mark in pending:
            cpu_marks[mark] = (done, _group_cpu_ticks(process.pid))

    def reset_ledger(self) -> None:
        # Truncated, not removed: a running consumer keeps its O_APPEND descriptor on the same file.
        for path in (self.ledger, self.times):
            path.touch()
            os.truncate(path, 0)

    # ---- measurements

    def enqueue_rate(self, system: System, mode: str = "one") -> dict[str, float]:
        """Enqueues per second, and the producer's CPU time per enqueue in microseconds."""
        n = self.options.n
        self.produce(system, "flush")
        figures = self.produce(system, mode, n)
        self.produce(system, "flush")
        return {"rate": n / figures["elapsed"], "cpu_us": 1e6 * figures["cpu"] / n}

    def drain_rate(self, system: System, workers: int, worker_type: str, threads: int = 1) -> dict[str, float]:
        n = self.options.n
        self.produce(system, "flush")
        self.produce(system, "prefill", n)
        self.reset_ledger()
        what = f"{system.label} drain ({workers} {worker_type})"
        process = self.start_consumer(system, workers, worker_type, threads)
        # The consumer's CPU time (its whole process group) over the same steady-state window as the rate.
        low, high = int(0.05 * (n - 1)), int(0.95 * (n - 1))
        marks: dict[int, tuple[int, int]] = {low: (0, 0), high: (0, 0)}
        try:
            self.wait_for(n, max(120.0, n / 50), process, what, marks)
        finally:
            self.stop_consumer(system, process)
        records = read_ledger(str(self.ledger))
        starts = sorted(t for number, t in records if number < n)
        seen = {number for number, _ in records if number < n}
        if len(seen) != n:
            raise RuntimeError(f"{what}: {n - len(seen)} task(s) never ran")
        # Steady state: the middle 90 % of the starts (consumer start-up and the last stragglers left out).
        rate = (high - low) / max(starts[high] - starts[low], 1e-9)
        (count_low, ticks_low), (count_high, ticks_high) = marks[low], marks[high]
        cpu_us = 1e6 * (ticks_high - ticks_low) / os.sysconf("SC_CLK_TCK") / max(count_high - count_low, 1)
        self.produce(system, "flush")
        return {"rate": rate, "duplicates": len(records) - len(seen), "cpu_us": cpu_us}

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

    def memory(self, system: System) -> list[float]:
        """The consumer's resident memory (MB) after every ``MEMORY_STEP`` of ``--memory-n`` tasks.

        The real consumer runs with 2 worker threads. The tasks are fed one step at a time, each step enqueued
        only when the one before has run, so the queue never holds more than ``MEMORY_STEP`` messages; after
        each step, once the consumer has had a moment to finish it, the memory of all its processes is read.
        """
        n, step = self.options.memory_n, MEMORY_STEP
        self.produce(system, "flush")
        self.reset_ledger()
        samples: list[float] = []
        process = self.start_consumer(system, 2, "thread")
        try:
            for done in range(step, n + 1, step):
                self.produce(system, "prefill", step, "--start", str(done - step))
                self.wait_for(done, max(120.0, step / 50), process, f"{system.label} memory")
                time.sleep(MEMORY_SETTLE)
                samples.append(round(group_rss_kb(process.pid) / 1024, 1))
                self.log(f"  {system.label}: {done:,} tasks, RSS {samples[-1]:.1f} MB")
        finally:
            self.stop_consumer(system, process)
        self.produce(system, "flush")
        return samples


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(pct / 100 * len(values) + 0.5)))
    return values[rank - 1]


def _group_stats(pgid: int) -> dict[str, list[bytes]]:
    """The fields of ``/proc/PID/stat`` after the command name (from the state on), for each process of a group."""
    stats = {}
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
            stats[entry] = fields
    return stats


def _group_cpu_ticks(pgid: int) -> int:
    return sum(int(fields[11]) + int(fields[12]) for fields in _group_stats(pgid).values())  # utime + stime


def group_rss_kb(pgid: int) -> int:
    """Resident memory of a process group in KiB: the ``VmRSS`` of every process in it, added up."""
    total = 0
    for pid in _group_stats(pgid):
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        except OSError:
            continue  # gone meanwhile
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
    ("enqueue_cpu", "producer CPU µs/enqueue"),
    ("drain_t2", "drain 2 threads /s"),
    ("drain_t2_cpu", "consumer CPU µs/task (2 threads)"),
    ("drain_t8", "drain 8 threads /s"),
    ("drain_p", "drain 2 processes /s"),
    ("p50", "latency p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("idle_cpu", "idle CPU %"),
]
HIGHER_IS_BETTER = {"enqueue", "drain_t2", "drain_t8", "drain_p", "bulk"}
LOWER_IS_BETTER = {"enqueue_cpu", "drain_t2_cpu"}

MEMORY_SYSTEMS = ("huey-redis", "ours-redis", "huey-sqlite", "ours-sqlite")
MEMORY_STEP = 10_000
"""Tasks between two memory samples, and the most that wait in the queue during the memory run."""
MEMORY_SETTLE = 0.5
"""Seconds the consumer is left to finish the last tasks of a step before its memory is read."""
MEMORY_FLAT_PCT = 5.0
"""Growth (in percent) between the first sample and the last below which memory counts as flat."""


def measure(bench: Bench, system: System, figures: dict[str, list[float]]) -> None:
    """Every figure of one system, once; appended to ``figures``."""

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    enqueued = bench.enqueue_rate(system, "one")
    add("enqueue", enqueued["rate"])
    add("enqueue_cpu", enqueued["cpu_us"])
    if system.kind != "huey":
        add("bulk", bench.enqueue_rate(system, "bulk")["rate"])
    for name, workers, worker_type, threads in DRAINS:
        if worker_type == "process" and system.kind == "huey":
            threads = 1  # huey's process workers are single-threaded
        result = bench.drain_rate(system, workers, worker_type, threads)
        add(name, result["rate"])
        add(name + "_dup", result["duplicates"])
        add(name + "_cpu", result["cpu_us"])
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
    if name in HIGHER_IS_BETTER or name in LOWER_IS_BETTER:
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


def memory_figures(samples: list[float]) -> dict[str, float]:
    """RSS after the first step and after the last, and the growth between them (MB and percent)."""
    first, last = samples[0], samples[-1]
    return {"first": first, "last": last, "growth_mb": last - first, "growth_pct": 100.0 * (last - first) / first}


def memory_table(systems: list[System], memory: dict[str, list[float]], n: int) -> str:
    """The memory run as a Markdown table: RSS after the first step and after ``n`` tasks, and the growth."""
    lines = [
        f"| system | RSS after {MEMORY_STEP:,} tasks MB | RSS after {n:,} tasks MB | growth MB | growth % | flat |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for system in systems:
        if system.key not in memory:
            continue
        figures = memory_figures(memory[system.key])
        flat = "yes" if figures["growth_pct"] < MEMORY_FLAT_PCT else "**no**"
        lines.append(
            f"| {system.label} | {figures['first']:.1f} | {figures['last']:.1f} | {figures['growth_mb']:+.1f} | "
            f"{figures['growth_pct']:+.1f} | {flat} |"
        )
    return "\n".join(lines)


def memory_text(systems: list[System], memory: dict[str, list[float]], notes: str, n: int) -> str:
    """The memory section of the page: how it was run, the criterion, the table and every sample."""
    samples = "; ".join(
        f"{system.label}: " + ", ".join(f"{value:.1f}" for value in memory[system.key])
        for system in systems
        if system.key in memory
    )
    return "\n\n".join(
        [
            notes,
            f"Memory counts as flat when the consumer's RSS grows by less than {MEMORY_FLAT_PCT:g} % between the "
            f"first {MEMORY_STEP:,} tasks and the last sample, after {n:,}.",
            memory_table(systems, memory, n),
            f"Every sample (MB, one every {MEMORY_STEP:,} tasks): {samples}.",
        ]
    )


def machine_text(argv: list[str]) -> str:
    """When, with which command and on what: date, command line, cores and the versions of everything measured."""

    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    import django
    import huey
    import redis

    redis_server = version(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0]
    command = " ".join(["scripts/bench", *argv])
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · `{command}` · {os.cpu_count()} cores · Python "
        f"{platform.python_version()} · Django {django.__version__} · huey {huey.__version__} · redis-py "
        f"{redis.__version__} · Redis {redis_server} · SQLite {__import__('sqlite3').sqlite_version}"
    )


def environment_text(options: argparse.Namespace, argv: list[str], load_before: str, load_after: str) -> str:
    """The line above the results table: machine, N, the latency run, runs per figure and the load."""
    return (
        f"{machine_text(argv)} · N = {options.n:,} tasks · latency: {options.latency_tasks} tasks "
        f"{options.interval * 1000:g} ms apart · median of {options.runs} run(s) · load average before "
        f"{load_before}, after {load_after}"
    )


def memory_notes(options: argparse.Namespace, argv: list[str], load_before: str, load_after: str) -> str:
    """The line above the memory table: machine, how many tasks, the consumer's workers and the load."""
    return (
        f"{machine_text(argv)} · {options.memory_n:,} tasks through a consumer with 2 worker threads, fed "
        f"{MEMORY_STEP:,} at a time · load average before {load_before}, after {load_after}"
    )


SECTIONS = ("results", "memory")


def page_section(page: str, name: str) -> str | None:
    """The text of section ``name`` (between ``<!-- name -->`` and ``<!-- /name -->``) of a page, if it has one."""
    found = re.search(rf"<!-- {name} -->\n(.*?)\n<!-- /{name} -->", page, re.DOTALL)
    return found.group(1) if found else None


def write_report(path: Path, sections: dict[str, str]) -> None:
    """Write the page from ``report.md``; a section this run did not measure keeps its text from the old page."""
    old = path.read_text() if path.exists() else ""
    page = (Path(__file__).parent / "report.md").read_text()
    for name in SECTIONS:
        text = sections.get(name) or page_section(old, name) or "Not measured yet: run `scripts/bench`."
        page = page.replace("{{" + name.upper() + "}}", text)
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


def parse_options(argv: list[str]) -> argparse.Namespace:
    """The command line (see ``--help``), with the defaults that depend on ``--quick`` filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run: N=1000, 1 run, 50 latency tasks, 20,000 tasks for memory")
    parser.add_argument("-n", type=int, default=None, help="tasks per throughput measurement (default 10,000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure; the median is shown (default 3)")
    parser.add_argument("--latency-tasks", type=int, default=None, help="tasks in the latency run (default 200)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between latency tasks")
    parser.add_argument("--idle-window", type=float, default=None, help="seconds of idle CPU sampling (default 5)")
    parser.add_argument("--memory-n", type=int, default=None,
                        help=f"tasks in the memory run, a multiple of {MEMORY_STEP:,} (default 100,000)")
    memory = parser.add_mutually_exclusive_group()
    memory.add_argument("--no-memory", action="store_true", help="leave the memory run out")
    memory.add_argument("--memory-only", action="store_true",
                        help="only the memory run (the page keeps its other results)")
    parser.add_argument("--only", default="",
                        help="comma-separated system keys to run (default: all; the memory run uses "
                             f"{', '.join(MEMORY_SYSTEMS)})")
    parser.add_argument("--output", default=str(REPO / "docs"), help=f"folder for {PAGE} and {FIGURE}")
    parser.add_argument("--no-docs", action="store_true", help="print the tables only; write no files")
    parser.add_argument("--work-dir", default="",
                        help="folder for the run's files: SQLite databases, file queues, the ledger (default: the "
                             "system's temporary folder)")
    parser.add_argument("--json", default="", help="also write the raw figures to this JSON file")
    parser.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--body", choices=["redis", "append"], default="redis",
                        help="the task body: append to the ledger and make one Redis round trip (default), or "
                             "only append")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB,
                        help=f"Redis database for the queues and the task body (default {REDIS_DB}); only keys "
                             "under the run's own prefix are written and removed")
    options = parser.parse_args(argv)
    options.n = options.n or (1000 if options.quick else 10_000)
    options.runs = options.runs or (1 if options.quick else 3)
    options.latency_tasks = options.latency_tasks or (50 if options.quick else 200)
    options.idle_window = options.idle_window or (2.0 if options.quick else 5.0)
    options.memory_n = options.memory_n or (20_000 if options.quick else 100_000)
    if options.memory_n < MEMORY_STEP or options.memory_n % MEMORY_STEP:
        parser.error(f"--memory-n must be a multiple of {MEMORY_STEP:,}")
    return options


def main(argv: list[str] | None = None) -> int:
    """Command line: see ``--help``."""
    argv = sys.argv[1:] if argv is None else argv
    global REDIS_DB
    options = parse_options(argv)
    REDIS_DB = options.redis_db
    run_id = options.run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="tasks-q-bench-", dir=options.work_dir or None))
    with_postgres = postgres_available()
    systems = make_systems(work, run_id, with_postgres)
    if options.only:
        wanted = set(options.only.split(","))
        systems = [system for system in systems if system.key in wanted]
    measured = [] if options.memory_only else systems
    memory_systems = [] if options.no_memory else [system for system in systems if system.key in MEMORY_SYSTEMS]
    bench = Bench(work, options)
    load_before = load()
    raw: dict[str, dict[str, list[float]]] = {system.key: {} for system in measured}
    memory: dict[str, list[float]] = {}
    try:
        for system in systems:
            if system in measured or system in memory_systems:
                bench.prepare(system)
        # Runs go round every system in turn, so that a busy moment of the machine touches all of them alike.
        for run in range(options.runs if measured else 0):
            for system in measured:
                bench.log(f"run {run + 1}/{options.runs}: {system.label}  (load {load()})")
                measure(bench, system, raw[system.key])
        load_after = memory_load_before = load()
        for system in memory_systems:
            bench.log(f"memory, {options.memory_n:,} tasks: {system.label}  (load {load()})")
            memory[system.key] = bench.memory(system)
    finally:
        cleanup_redis(run_id)
        shutil.rmtree(work, ignore_errors=True)
    memory_load_after = load()

    sections: dict[str, str] = {}
    results: dict[str, dict[str, float]] = {}
    notes = ""
    if measured:
        results = {key: {name: statistics.median(values) for name, values in figures.items()}
                   for key, figures in raw.items()}
        notes = environment_text(options, argv, load_before, load_after)
        sections["results"] = results_text(measured, results, raw, notes, with_postgres)
    if memory:
        notes_memory = memory_notes(options, argv, memory_load_before, memory_load_after)
        sections["memory"] = memory_text(memory_systems, memory, notes_memory, options.memory_n)
    print("\n\n".join(sections.values()))
    if options.json:
        Path(options.json).write_text(
            json.dumps({"notes": notes, "results": results, "raw": raw, "memory_mb": memory}, indent=1)
        )
    if not options.no_docs and sections:
        output = Path(options.output)
        output.mkdir(parents=True, exist_ok=True)
        if measured:
            sections["results"] += "\n\n" + draw_figure(bench, measured, results, output / FIGURE, notes)
        write_report(output / PAGE, sections)
        bench.log(f"wrote {output / PAGE}" + (f" and {output / FIGURE}" if measured else ""))
    return 0


def results_text(systems: list[System], results: dict[str, dict[str, float]],
                 raw: dict[str, dict[str, list[float]]], notes: str, with_postgres: bool) -> str:
    """The results section of the page: the environment line, the main table, bulk enqueue and any remarks."""
    duplicates = {key: sum(sum(v) for name, v in figures.items() if name.endswith("_dup"))
                  for key, figures in raw.items()}
    dup_note = ", ".join(f"{key}: {count:g}" for key, count in duplicates.items() if count)
    return "\n\n".join(
        [
            notes,
            table(systems, results),
            tunings_text(systems),
            "Bulk enqueue (issue #9): one call of `task.map(range(N))` against N calls one at a time.",
            bulk_table(systems, results),
        ]
        + ([f"Tasks run more than once during drains: {dup_note}."] if dup_note else [])
        + ([] if with_postgres else ["PostgreSQL was not reachable on 127.0.0.1:5432: its row is missing."])
    )


def tunings_text(systems: list[System]) -> str:
    """What the rows labelled *tuned* add to the startproject settings (every other row runs without them)."""
    from benchmarks.settings import TUNINGS

    used = sorted({name for system in systems for name in filter(None, system.tuned.split(","))})
    lines = [f"`{name}`: `{TUNINGS[name]}`" for name in used]
    return (
        "Every row runs the settings `django-admin startproject` writes, plus the app and one `TASKS_Q` queue "
        "(task history on, as by default), unless labelled *tuned*; a tuned row adds: " + "; ".join(lines) + "."
        if lines else "Every row runs the settings `django-admin startproject` writes, plus the app and one "
        "`TASKS_Q` queue (task history on, as by default)."
    )


def draw_figure(bench: Bench, systems: list[System], results: dict[str, dict[str, float]], path: Path,
                notes: str) -> str:
    """Draw the chart of the results table; the Markdown that shows it (empty without matplotlib)."""
    try:
        from benchmarks.plot import plot
    except ImportError as exc:
        bench.log(f"no chart: {exc} (install the bench extra: pip install -e '.[bench]')")
        return ""
    plot(systems, results, path, notes)
    return f"![the table as a chart]({path.name})"


if __name__ == "__main__":
    sys.exit(main())

