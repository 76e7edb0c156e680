"""Task history and throughput, recorded from the hub's signals and written in batches off the hot path.

A :class:`HistoryRecorder` listens to the Django signal :data:`~django_tasks_q.signals.task_event` (every
event of every queue in this process) and, through a post-execute hook on the queues it is attached to, to
the return value or exception of each run. A receiver only merges a few fields into an in-memory buffer under
a lock; a background thread writes the buffer every ``TASKS_Q_HISTORY_FLUSH_INTERVAL`` seconds with bulk
statements (:mod:`django_tasks_q.history.writers`), adds the per-minute counters
(:class:`~django_tasks_q.history.models.QueueMinute`: outcomes and the durations of runs), runs the periodic
jobs it was given (consumer heartbeats, queue depth samples) and prunes old rows once an hour.

The consumer starts one recorder per process (``run_tasks`` and each worker process). History is best effort:
a database error is logged and retried with the next batch, never raised into a worker; rows buffered in a
process that is killed are lost, the tasks are not.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, close_old_connections, connection, reset_queries, router
from django.utils import timezone

from .. import signals
from ..backends.sql.orm_transport import database_write_lock
from ..timeutils import TimeConversion, convert, to_utc
from .models import FAILURE_STATUSES, QueueMinute, TaskStatus, history_settings
from .writers import add_minutes, count_tasks_run, prune, write_history

logger = logging.getLogger("django_tasks_q.history")

MAX_TEXT = 20_000
"""Arguments, return values and tracebacks are cut to this many characters."""
MAX_OPEN = 10_000
"""Calls followed in memory at most while waiting to learn whether they fail (``failures`` level)."""
PRUNE_EVERY = 3600.0
PRUNE_RETRY = 5.0
"""Seconds before pruning again after a database conflict (another writer held the database)."""
PRUNE_CONFLICTS_TOLERATED = 3
"""Conflicts in a row that pass without a log line; the next one is logged."""
HOOK_NAME = "django_tasks_q.history"

_STATUS_OF = {
    signals.SIGNAL_EXECUTING: TaskStatus.RUNNING,
    signals.SIGNAL_COMPLETE: TaskStatus.COMPLETE,
    signals.SIGNAL_ERROR: TaskStatus.FAILED,
    signals.SIGNAL_TIMEOUT: TaskStatus.TIMEOUT,
    signals.SIGNAL_RETRYING: TaskStatus.RETRYING,
    signals.SIGNAL_REVOKED: TaskStatus.REVOKED,
    signals.SIGNAL_EXPIRED: TaskStatus.EXPIRED,
    signals.SIGNAL_CANCELED: TaskStatus.CANCELED,
    signals.SIGNAL_LOCKED: TaskStatus.LOCKED,
    signals.SIGNAL_RATE_LIMITED: TaskStatus.RATE_LIMITED,
    signals.SIGNAL_INTERRUPTED: TaskStatus.INTERRUPTED,
}
_FINISHING = {
    signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_TIMEOUT,
    signals.SIGNAL_REVOKED, signals.SIGNAL_EXPIRED, signals.SIGNAL_CANCELED,
}  # fmt: skip
_OUTCOME_OF = {
    signals.SIGNAL_COMPLETE: "succeeded",
    signals.SIGNAL_ERROR: "failed",
    signals.SIGNAL_TIMEOUT: "failed",
    signals.SIGNAL_DEAD_LETTERED: "failed",
    signals.SIGNAL_RETRYING: "retried",
    signals.SIGNAL_REVOKED: "revoked",
    signals.SIGNAL_EXPIRED: "expired",
}
"""The ``QueueMinute`` counter each event adds to."""
_TIMED = {signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_TIMEOUT}
"""Events that end a run whose duration goes into the histogram."""
_BUCKET_BOUNDS = [bound for bound, _field in QueueMinute.DURATION_BUCKETS]
_BUCKET_FIELDS = [field for _bound, field in QueueMinute.DURATION_BUCKETS]
_SETTLED_OK = {TaskStatus.COMPLETE, TaskStatus.REVOKED, TaskStatus.EXPIRED, TaskStatus.CANCELED}


_EXACT_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_APPROXIMATE_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=repr).encode
# Built once: json.dumps with any option builds a new encoder per call, a third of the cost of a small value.
_CONSTANT_JSON = {None: "null", True: "true", False: "false"}


def to_json_text(value: Any) -> tuple[str, bool]:
    """``value`` as JSON text, and whether that text is exact (plain JSON, not cut short)."""
    if value is None or value is True or value is False:
        return _CONSTANT_JSON[value], True
    kind = type(value)
    if (kind is list or kind is dict) and not value:  # the arguments of most calls
        return ("[]" if kind is list else "{}"), True
    try:
        text, exact = _EXACT_JSON(value), True
    except (TypeError, ValueError):
        text, exact = _APPROXIMATE_JSON(value), False
    except RecursionError:
        text, exact = repr(value), False
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + " …", False
    return text, exact


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n…"


def worker_label(identity: str | None = None) -> str:
    """Who is running in this thread: the consumer identity (or host:pid) and the worker's name."""
    key = (threading.get_ident(), os.getpid(), identity)
    label = _worker_labels.get(key)
    if label is None:
        label = _worker_labels[key] = _describe_worker(identity)
        while len(_worker_labels) > MAX_OPEN:  # thread ids of ended threads are reused: keep the map small
            _worker_labels.pop(next(iter(_worker_labels)))
    return label


_worker_labels: dict[tuple[int, int, str | None], str] = {}


def _describe_worker(identity: str | None) -> str:
    thread = threading.current_thread().name
    name = thread if thread.startswith("tasks-q-worker-") else multiprocessing.current_process().name
    name = name.removeprefix("tasks-q-worker-")
    return f"{identity or f'{socket.gethostname()}:{os.getpid()}'} {name}"


class HistoryRecorder:
    """Buffers task events of this process and writes them in batches from a background thread.

    ``consumer_identity`` names the consumer whose heartbeat row counts the tasks run here. ``jobs`` are
    ``(interval, callable)`` pairs run by the same thread (heartbeats, depth samples).
    """

    def __init__(self, *, consumer_identity: str | None = None) -> None:
        self.consumer_identity = consumer_identity
        self.settings = history_settings()
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._attempts: dict[tuple[str, str], int] = {}
        self._open: dict[tuple[str, str], dict[str, Any]] = {}
        self._minutes: dict[tuple[str, dt.datetime], dict[str, float]] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._tasks_run = 0
        self._jobs: list[list[Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uid = f"django_tasks_q.history.{uuid.uuid4().hex}"
        self._attached: list[Any] = []
        self._next_prune = 0.0
        self._last_error_log = 0.0
        self._prune_conflicts = 0

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> HistoryRecorder:
        """Start receiving events (without the thread: call :meth:`flush` yourself, e.g. in tests)."""
        signals.task_event.connect(self.receive, weak=False, dispatch_uid=self._uid)
        return self

    def disconnect(self) -> None:
        """Stop receiving events and outcomes."""
        signals.task_event.disconnect(dispatch_uid=self._uid)
        for queue in self._attached:
            queue.unregister_post_execute(HOOK_NAME)
        self._attached = []

    def start(self) -> HistoryRecorder:
        """Connect to ``task_event`` and start the flusher thread."""
        self.connect()
        self._thread = threading.Thread(target=self._run, name="tasks-q-history", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect, stop the thread and write what is left (the thread's last flush)."""
        self.disconnect()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def attach(self, queue: Any) -> None:
        """Also record return values and exceptions of tasks run by ``queue`` (a post-execute hook).

        Not with ``TASKS_Q_HISTORY = "off"``: there are no rows to put them in.
        """
        if self.settings.level == "off":
            return
        queue.post_execute(HOOK_NAME)(
            lambda task, value, exc: self.record_outcome(queue.name, task, value, exc, as_utc=queue.as_utc)
        )
        self._attached.append(queue)

    def every(self, interval: float, job: Callable[[], None]) -> None:
        """Run ``job()`` from the flusher thread every ``interval`` seconds (first run at once)."""
        self._jobs.append([interval, job, 0.0])

    def _run(self) -> None:
        interval = self.settings.flush_interval
        try:
            while True:
                stopping = self._stop.wait(min([interval, *(job[0] for job in self._jobs)]))
                self.flush(run_jobs=True)
                # With DEBUG = True this thread's connections log every statement (each batch's lookup with
                # its parameters spelled out) until a request begins, which never happens here.
                reset_queries()
                if stopping:
                    for _retry in range(5):  # last chance: a busy database gets a few more tries
                        if not self.pending():
                            break
                        time.sleep(0.2)
                        self.flush()
                    return
        finally:
            connection.close()

    # ------------------------------------------------------------------ receiving (hot path: memory only)

    def receive(self, sender: Any, event: str, task: Any = None, args: tuple[Any, ...] = (), **kwargs: Any) -> None:
        """``task_event`` receiver: merge the event into the buffer."""
        queue = getattr(sender, "name", None) or "?"
        as_utc = getattr(sender, "as_utc", to_utc)  # the hub reads its own naive datetimes
        now = timezone.now()
        if self.settings.level == "off":  # no rows: only the counters, without describing the call
            if task is not None:
                with self._lock:
                    self._track_run(queue, (queue, task.id), event, now)
            elif event == signals.SIGNAL_DEAD_LETTERED:
                with self._lock:
                    self._count(queue, now, "failed")
            return
        if task is None:
            self._receive_without_task(queue, event, args, now)
            return
        changes: dict[str, Any] = {"updated_at": now}
        if task.enqueued_at is not None:  # set on the decoded message, not on the producer's Task
            changes["enqueued_at"] = convert(as_utc, task.enqueued_at)
        status = _STATUS_OF.get(event)
        if event in (signals.SIGNAL_ENQUEUED, signals.SIGNAL_SCHEDULED):
            changes["status"] = TaskStatus.QUEUED if event == signals.SIGNAL_ENQUEUED else TaskStatus.SCHEDULED
            changes["eta"] = convert(as_utc, task.eta)
        elif status is not None:
            changes["status"] = status
        if event == signals.SIGNAL_EXECUTING:
            changes.update(started_at=now, finished_at=None, duration=None, worker=worker_label(self.consumer_identity))
        elif event in _FINISHING:
            changes["finished_at"] = now
        if event == signals.SIGNAL_COMPLETE:
            changes.update(error="", traceback="")
        elif event == signals.SIGNAL_ERROR and args:
            changes.update(_describe_error(args[0]))
        elif event == signals.SIGNAL_TIMEOUT:
            changes.setdefault("error", f"TaskTimeout: ran longer than its timeout of {task.timeout} s")
        elif event == signals.SIGNAL_DEAD_LETTERED:
            changes.update(status=TaskStatus.DEAD, error=f"dead-lettered ({args[0]}): {args[1] if len(args) > 1 else ''}")
        with self._lock:
            key = (queue, task.id)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = self._describe_call(task, now, as_utc)
            elif (
                event in (signals.SIGNAL_ENQUEUED, signals.SIGNAL_SCHEDULED)
                and entry.get("status") not in (None,)
                and not (event == signals.SIGNAL_SCHEDULED and entry.get("status") == TaskStatus.QUEUED)
            ):
                # A retry or a not-yet-due run re-enqueues: keep "retrying" / "rate limited" as the status (a
                # queued call a worker took before its eta does become "scheduled").
                changes.pop("status", None)
            entry.update(changes)
            if event == signals.SIGNAL_EXECUTING:
                self._attempts[key] = self._attempts.get(key, 0) + 1
            self._track_run(queue, key, event, now)

    def _track_run(self, queue: str, key: tuple[str, str], event: str, now: dt.datetime) -> None:
        """Time a run from ``executing`` to its end and count the outcome (called under the lock)."""
        if event == signals.SIGNAL_EXECUTING:
            self._started[key] = time.monotonic()
            while len(self._started) > MAX_OPEN:  # runs that never ended (a BaseException escaped)
                self._started.pop(next(iter(self._started)))
            return
        started = self._started.pop(key, None)  # any later event of the call ends its run
        outcome = _OUTCOME_OF.get(event)
        if outcome is not None:
            timed = started is not None and event in _TIMED
            self._count(queue, now, outcome, time.monotonic() - started if timed and started is not None else None)

    def _receive_without_task(self, queue: str, event: str, args: tuple[Any, ...], now: dt.datetime) -> None:
        task_id = None
        changes: dict[str, Any] = {"updated_at": now}
        if event == signals.SIGNAL_DEAD_LETTERED and args and args[0] in ("max_attempts", "max_reclaims") and len(args) > 1:
            # args: (reason, detail, message id, task id or None)
            task_id = args[3] if len(args) > 3 else None
            changes.update(status=TaskStatus.DEAD, finished_at=now, error=f"dead-lettered ({args[0]}): {args[1]}")
        elif event == signals.SIGNAL_RECLAIMED and args:
            task_id = args[0]
            changes["status"] = TaskStatus.RECLAIMED
        if not isinstance(task_id, str) or not task_id or task_id.startswith("<"):
            if event == signals.SIGNAL_DEAD_LETTERED:
                with self._lock:
                    self._count(queue, now, "failed")
            return
        with self._lock:
            self._entries.setdefault((queue, task_id), {"created_at": now}).update(changes)
            if event == signals.SIGNAL_DEAD_LETTERED:
                self._count(queue, now, "failed")

    def _describe_call(self, task: Any, now: dt.datetime, as_utc: TimeConversion) -> dict[str, Any]:
        args_text, args_exact = to_json_text(list(task.args))
        kwargs_text, kwargs_exact = to_json_text(task.kwargs)
        return {
            "name": task.path,
            "args": args_text,
            "kwargs": kwargs_text,
            "arguments_exact": args_exact and kwargs_exact,
            "priority": task.priority,
            "enqueued_at": convert(as_utc, task.enqueued_at),
            "eta": convert(as_utc, task.eta),
            "created_at": now,
        }

    def _count(self, queue: str, now: dt.datetime, outcome: str, duration: float | None = None) -> None:
        """Add one call with ``outcome`` (and the ``duration`` of its run, when timed) to this minute."""
        counts = self._minutes.setdefault((queue, now.replace(second=0, microsecond=0)), {})
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in ("succeeded", "failed"):
            self._tasks_run += 1
        if duration is not None:
            # Only the smallest bucket that holds the run is counted here; flush() makes the counts cumulative.
            index = bisect.bisect_left(_BUCKET_BOUNDS, duration)
            if index < len(_BUCKET_FIELDS):
                field = _BUCKET_FIELDS[index]
                counts[field] = counts.get(field, 0) + 1
            counts["duration_count"] = counts.get("duration_count", 0) + 1
            counts["duration_sum"] = counts.get("duration_sum", 0.0) + duration

    def record_outcome(
        self, queue: str, task: Any, value: Any, exception: BaseException | None, *, as_utc: TimeConversion = to_utc
    ) -> None:
        """Post-execute hook: the return value, or the exception with its traceback (``as_utc``: the
        queue's :meth:`~django_tasks_q.hub.queue.TaskQueue.as_utc`, which reads the call's naive datetimes)."""
        if exception is None:
            text, _exact = to_json_text(value)
            changes = {"result": text}
        else:
            changes = _describe_error(exception)
        with self._lock:
            key = (queue, task.id)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = self._describe_call(task, timezone.now(), as_utc)
            entry.update(changes)

    # ------------------------------------------------------------------ writing (the flusher thread)

    def flush(self, run_jobs: bool = False) -> int:
        """Write the buffer (and run due jobs when asked); returns how many history rows were written."""
        with self._lock:
            entries, self._entries = self._entries, {}
            attempts, self._attempts = self._attempts, {}
            minutes, self._minutes = self._minutes, {}
            tasks_run, self._tasks_run = self._tasks_run, 0
        for key, count in attempts.items():
            entry = entries.setdefault(key, {})
            entry["_attempts"] = entry.get("_attempts", 0) + count
        written = 0
        try:
            close_old_connections()
            self.settings = history_settings()
            written = self._write_history(entries)
        except Exception as exc:
            self._log_failure("could not write task history", exc)
            self._keep(entries)
            written = -1
        try:
            with database_write_lock(router.db_for_write(QueueMinute)):
                add_minutes({key: _cumulative(counts) for key, counts in minutes.items()})
                tasks_run = count_tasks_run(self.consumer_identity, tasks_run)
        except Exception as exc:
            self._log_failure("could not write task counters", exc)
            with self._lock:  # kept for the next try
                for minute_key, counts in minutes.items():
                    mine = self._minutes.setdefault(minute_key, {})
                    for field, value in counts.items():
                        mine[field] = mine.get(field, 0) + value
        with self._lock:
            self._tasks_run += tasks_run
        if run_jobs:
            self._run_jobs()
        return max(written, 0)

    def _keep(self, entries: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Put a batch that could not be written back in front of what arrived since (bounded)."""
        with self._lock:
            for key, older in entries.items():
                newer = self._entries.get(key, {})
                runs = older.get("_attempts", 0) + newer.get("_attempts", 0)
                merged = {**older, **newer}
                if runs:
                    merged["_attempts"] = runs
                self._entries[key] = merged
            while len(self._entries) > MAX_OPEN:
                self._entries.pop(next(iter(self._entries)))

    def pending(self) -> bool:
        """Whether something is buffered and not written yet."""
        with self._lock:
            return bool(self._entries or self._minutes or self._tasks_run)

    def _log_failure(self, what: str, exc: BaseException) -> None:
        if time.monotonic() - self._last_error_log > 60:
            self._last_error_log = time.monotonic()
            logger.warning("%s: %s: %s (retrying; logged once a minute)", what, type(exc).__name__, exc)

    def _run_jobs(self) -> None:
        now = time.monotonic()
        for job in self._jobs:
            interval, function, due = job
            if now < due:
                continue
            job[2] = now + interval
            try:
                function()
            except Exception as exc:
                self._log_failure(f"job {getattr(function, '__name__', function)!r} failed", exc)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            try:
                prune()
            except OperationalError as exc:
                self._prune_conflicts += 1
                if self._prune_conflicts > PRUNE_CONFLICTS_TOLERATED:
                    self._log_failure("could not prune task history", exc)
                # SQLite refuses at once a transaction that must wait for another writer ("database is
                # locked"); every consumer prunes as it starts, beside its workers' first writes. Pruning is
                # housekeeping: try again in a few seconds, and speak only if it keeps failing.
                self._next_prune = now + PRUNE_RETRY
            except Exception as exc:
                self._log_failure("could not prune task history", exc)
            else:
                self._prune_conflicts = 0

    def _select(self, entries: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        level = self.settings.level
        if level == "all":
            self._open.clear()
            return entries
        if level == "off":
            self._open.clear()
            return {}
        chosen = {}
        for key, changes in entries.items():
            merged = self._open.pop(key, {})
            runs = merged.get("_attempts", 0) + changes.get("_attempts", 0)
            merged.update(changes)
            merged["_attempts"] = runs
            status = merged.get("status")
            if status in FAILURE_STATUSES:
                chosen[key] = merged
            elif status not in _SETTLED_OK:
                self._open[key] = merged
        while len(self._open) > MAX_OPEN:
            self._open.pop(next(iter(self._open)))
        return chosen

    def _write_history(self, entries: dict[tuple[str, str], dict[str, Any]]) -> int:
        chosen = self._select(entries)
        if not chosen:
            return 0
        write_history(chosen, self.settings.batch_size)
        return len(chosen)


def _describe_error(exception: Any) -> dict[str, Any]:
    if not isinstance(exception, BaseException):
        return {"error": _cut(str(exception))}
    kind = type(exception)
    text = "".join(traceback.format_exception(kind, exception, exception.__traceback__))
    return {"error": _cut(f"{kind.__name__}: {exception}"), "traceback": _cut(text)}


def _cumulative(counts: dict[str, float]) -> dict[str, float]:
    """One minute's counters as stored: the runs of each duration bucket become the runs ≤ its bound."""
    stored = dict(counts)
    total: float = 0
    for field in _BUCKET_FIELDS:
        total += counts.get(field, 0)
        if total:
            stored[field] = total
    return stored
