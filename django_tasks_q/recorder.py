"""Task history and throughput, recorded from the hub's signals and written in batches off the hot path.

A :class:`HistoryRecorder` listens to the Django signal :data:`~django_tasks_q.signals.task_event` (every
event of every queue in this process) and, through a post-execute hook on the queues it is attached to, to
the return value or exception of each run. A receiver only merges a few fields into an in-memory buffer under
a lock; a background thread writes the buffer every ``TASKS_Q_HISTORY_FLUSH_INTERVAL`` seconds with bulk
statements, adds the per-minute counters (:class:`~django_tasks_q.history.QueueMinute`: outcomes and the
durations of runs), runs the periodic jobs it was given (consumer heartbeats, queue depth samples) and prunes
old rows once an hour.

The consumer starts one recorder per process (``run_tasks`` and each worker process). History is best effort:
a database error is logged and retried with the next batch, never raised into a worker; rows buffered in a
process that is killed are lost, the tasks are not.
"""

from __future__ import annotations

import datetime as dt
import functools
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

from django.conf import settings
from django.db import (
    IntegrityError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    router,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from .backends.orm import database_write_lock
from .history import (
    FAILURE_STATUSES,
    ConsumerHeartbeat,
    QueueMinute,
    TaskHistory,
    TaskStatus,
    history_settings,
)
from .signals import (
    SIGNAL_CANCELED,
    SIGNAL_COMPLETE,
    SIGNAL_DEAD_LETTERED,
    SIGNAL_ENQUEUED,
    SIGNAL_ERROR,
    SIGNAL_EXECUTING,
    SIGNAL_EXPIRED,
    SIGNAL_INTERRUPTED,
    SIGNAL_LOCKED,
    SIGNAL_RATE_LIMITED,
    SIGNAL_RECLAIMED,
    SIGNAL_RETRYING,
    SIGNAL_REVOKED,
    SIGNAL_SCHEDULED,
    SIGNAL_TIMEOUT,
    task_event,
)
from .timeutils import TimeConversion, convert, to_utc

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
MINUTES_KEPT = dt.timedelta(days=2)
HEARTBEATS_KEPT = dt.timedelta(days=1)
HOOK_NAME = "django_tasks_q.history"

_STATUS_OF = {
    SIGNAL_EXECUTING: TaskStatus.RUNNING,
    SIGNAL_COMPLETE: TaskStatus.COMPLETE,
    SIGNAL_ERROR: TaskStatus.FAILED,
    SIGNAL_TIMEOUT: TaskStatus.TIMEOUT,
    SIGNAL_RETRYING: TaskStatus.RETRYING,
    SIGNAL_REVOKED: TaskStatus.REVOKED,
    SIGNAL_EXPIRED: TaskStatus.EXPIRED,
    SIGNAL_CANCELED: TaskStatus.CANCELED,
    SIGNAL_LOCKED: TaskStatus.LOCKED,
    SIGNAL_RATE_LIMITED: TaskStatus.RATE_LIMITED,
    SIGNAL_INTERRUPTED: TaskStatus.INTERRUPTED,
}
_FINISHING = {SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_TIMEOUT, SIGNAL_REVOKED, SIGNAL_EXPIRED, SIGNAL_CANCELED}
_OUTCOME_OF = {
    SIGNAL_COMPLETE: "succeeded",
    SIGNAL_ERROR: "failed",
    SIGNAL_TIMEOUT: "failed",
    SIGNAL_DEAD_LETTERED: "failed",
    SIGNAL_RETRYING: "retried",
    SIGNAL_REVOKED: "revoked",
    SIGNAL_EXPIRED: "expired",
}
"""The ``QueueMinute`` counter each event adds to."""
_TIMED = {SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_TIMEOUT}
"""Events that end a run whose duration goes into the histogram."""
_SETTLED_OK = {TaskStatus.COMPLETE, TaskStatus.REVOKED, TaskStatus.EXPIRED, TaskStatus.CANCELED}
_FIELDS = (
    "name", "status", "args", "kwargs", "arguments_exact", "priority", "enqueued_at", "eta", "started_at",
    "finished_at", "duration", "worker", "result", "error", "traceback", "updated_at",
)  # fmt: skip


def to_json_text(value: Any) -> tuple[str, bool]:
    """``value`` as JSON text, and whether that text is exact (plain JSON, not cut short)."""
    try:
        text, exact = json.dumps(value, ensure_ascii=False, sort_keys=True), True
    except (TypeError, ValueError):
        text, exact = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr), False
    except RecursionError:
        text, exact = repr(value), False
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + " …", False
    return text, exact


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n…"


def worker_label(identity: str | None = None) -> str:
    """Who is running in this thread: the consumer identity (or host:pid) and the worker's name."""
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
        task_event.connect(self.receive, weak=False, dispatch_uid=self._uid)
        return self

    def disconnect(self) -> None:
        """Stop receiving events and outcomes."""
        task_event.disconnect(dispatch_uid=self._uid)
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
            elif event == SIGNAL_DEAD_LETTERED:
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
        if event in (SIGNAL_ENQUEUED, SIGNAL_SCHEDULED):
            changes["status"] = TaskStatus.QUEUED if event == SIGNAL_ENQUEUED else TaskStatus.SCHEDULED
            changes["eta"] = convert(as_utc, task.eta)
        elif status is not None:
            changes["status"] = status
        if event == SIGNAL_EXECUTING:
            changes.update(started_at=now, finished_at=None, duration=None, worker=worker_label(self.consumer_identity))
        elif event in _FINISHING:
            changes["finished_at"] = now
        if event == SIGNAL_COMPLETE:
            changes.update(error="", traceback="")
        elif event == SIGNAL_ERROR and args:
            changes.update(_describe_error(args[0]))
        elif event == SIGNAL_TIMEOUT:
            changes.setdefault("error", f"TaskTimeout: ran longer than its timeout of {task.timeout} s")
        elif event == SIGNAL_DEAD_LETTERED:
            changes.update(status=TaskStatus.DEAD, error=f"dead-lettered ({args[0]}): {args[1] if len(args) > 1 else ''}")
        with self._lock:
            key = (queue, task.id)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = self._describe_call(task, now, as_utc)
            elif (
                event in (SIGNAL_ENQUEUED, SIGNAL_SCHEDULED)
                and entry.get("status") not in (None,)
                and not (event == SIGNAL_SCHEDULED and entry.get("status") == TaskStatus.QUEUED)
            ):
                # A retry or a not-yet-due run re-enqueues: keep "retrying" / "rate limited" as the status (a
                # queued call a worker took before its eta does become "scheduled").
                changes.pop("status", None)
            entry.update(changes)
            if event == SIGNAL_EXECUTING:
                self._attempts[key] = self._attempts.get(key, 0) + 1
            self._track_run(queue, key, event, now)

    def _track_run(self, queue: str, key: tuple[str, str], event: str, now: dt.datetime) -> None:
        """Time a run from ``executing`` to its end and count the outcome (called under the lock)."""
        if event == SIGNAL_EXECUTING:
            self._started[key] = time.monotonic()
            while len(self._started) > MAX_OPEN:  # runs that never ended (a BaseException escaped)
                self._started.pop(next(iter(self._started)))
            return
        started = self._started.pop(key, None)  # any later event of the call ends its run
        outcome = _OUTCOME_OF.get(event)
        if outcome is not None:
            timed = started is not None and event in _TIMED
            self._count(queue, now, outcome, time.monotonic() - started if timed else None)

    def _receive_without_task(self, queue: str, event: str, args: tuple[Any, ...], now: dt.datetime) -> None:
        task_id = None
        changes: dict[str, Any] = {"updated_at": now}
        if event == SIGNAL_DEAD_LETTERED and args and args[0] in ("max_attempts", "max_reclaims") and len(args) > 1:
            # args: (reason, detail, message id, task id or None)
            task_id = args[3] if len(args) > 3 else None
            changes.update(status=TaskStatus.DEAD, finished_at=now, error=f"dead-lettered ({args[0]}): {args[1]}")
        elif event == SIGNAL_RECLAIMED and args:
            task_id = args[0]
            changes["status"] = TaskStatus.RECLAIMED
        if not isinstance(task_id, str) or not task_id or task_id.startswith("<"):
            if event == SIGNAL_DEAD_LETTERED:
                with self._lock:
                    self._count(queue, now, "failed")
            return
        with self._lock:
            self._entries.setdefault((queue, task_id), {"created_at": now}).update(changes)
            if event == SIGNAL_DEAD_LETTERED:
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
            for bound, field in QueueMinute.DURATION_BUCKETS:
                if duration <= bound:
                    counts[field] = counts.get(field, 0) + 1
            counts["duration_count"] = counts.get("duration_count", 0) + 1
            counts["duration_sum"] = counts.get("duration_sum", 0.0) + duration

    def record_outcome(
        self, queue: str, task: Any, value: Any, exception: BaseException | None, *, as_utc: TimeConversion = to_utc
    ) -> None:
        """Post-execute hook: the return value, or the exception with its traceback (``as_utc``: the
        queue's :meth:`~django_tasks_q.queue.TaskQueue.as_utc`, which reads the call's naive datetimes)."""
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
                self._write_minutes(minutes)
                tasks_run = self._count_tasks_run(tasks_run)
        except Exception as exc:
            self._log_failure("could not write task counters", exc)
            with self._lock:  # kept for the next try
                for key, counts in minutes.items():
                    mine = self._minutes.setdefault(key, {})
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
        batch = self.settings.batch_size
        keys = list(chosen)
        rows = _HistoryRows()
        # Read first, outside the write transaction: on SQLite a transaction that reads and then writes fails at
        # once (SQLITE_BUSY) when another process wrote meanwhile, while one that starts by writing waits.
        existing: dict[tuple[str, str], TaskHistory] = {}
        for start in range(0, len(keys), batch):
            existing.update(rows.existing(keys[start : start + batch]))
        new: list[dict[str, Any]] = []
        changed: list[TaskHistory] = []
        for key, changes in chosen.items():
            row = existing.get(key)
            if row is None:
                new.append(_new_values(key, changes))
            else:
                _apply(row.__dict__, changes, new=False)
                changed.append(row)
        # The rows' parameters are ready before the transaction begins: on SQLite it holds the database's only
        # write lock, which the workers' claims wait for.
        inserts = [rows.insert_params(values) for values in new]
        updates = [rows.update_params(row) for row in changed]
        with database_write_lock(rows.conn.alias), transaction.atomic():
            for start in range(0, len(updates), batch):
                rows.update(updates[start : start + batch])
            if new:
                try:
                    with transaction.atomic():
                        for start in range(0, len(inserts), batch):
                            rows.insert(inserts[start : start + batch])
                except IntegrityError:  # another process inserted one of them meanwhile
                    for values in new:
                        _save_one(TaskHistory(**values))
        return len(chosen)

    def _write_minutes(self, minutes: dict[tuple[str, dt.datetime], dict[str, float]]) -> None:
        for (queue, minute), counts in minutes.items():
            add_minute(queue, minute, **counts)

    def _count_tasks_run(self, tasks_run: int) -> int:
        """Add to the consumer's heartbeat row; returns what could not be counted yet (no row so far)."""
        if not tasks_run or not self.consumer_identity:
            return 0
        updated = ConsumerHeartbeat.objects.filter(identity=self.consumer_identity).update(
            tasks_run=F("tasks_run") + tasks_run
        )
        return 0 if updated else tasks_run



def _describe_error(exception: Any) -> dict[str, Any]:
    if not isinstance(exception, BaseException):
        return {"error": _cut(str(exception))}
    kind = type(exception)
    text = "".join(traceback.format_exception(kind, exception, exception.__traceback__))
    return {"error": _cut(f"{kind.__name__}: {exception}"), "traceback": _cut(text)}


def _apply(values: dict[str, Any], changes: dict[str, Any], new: bool) -> None:
    """Merge buffered ``changes`` into a row's field values (a new row's, or a model instance's ``__dict__``)."""
    for field, value in changes.items():
        if field == "_attempts":
            values["attempts"] = (values.get("attempts") or 0) + value
        elif field == "created_at":
            if new:
                values["created_at"] = value
        else:
            values[field] = value
    if not values.get("name"):
        values["name"] = "?"
    started, finished = values.get("started_at"), values.get("finished_at")
    if started and finished and finished >= started:
        values["duration"] = (finished - started).total_seconds()


def _new_values(key: tuple[str, str], changes: dict[str, Any]) -> dict[str, Any]:
    """The field values of a new history row for ``(queue, task id)`` with ``changes`` applied; every other
    field at its default."""
    fixed, computed = _history_defaults()
    values = dict(fixed)
    for name, default in computed:
        if name not in changes:
            values[name] = default()
    values["queue"], values["task_id"] = key
    _apply(values, changes, new=True)
    return values


@functools.cache
def _history_fields() -> tuple[Any, ...]:
    """The columns a history row is inserted with (all but the id), in table order."""
    return tuple(field for field in TaskHistory._meta.concrete_fields if not field.primary_key)


@functools.cache
def _history_defaults() -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """The fields' defaults: the fixed values, and the fields whose default is computed for each row (a time)."""
    fixed = {}
    computed = []
    for field in _history_fields():
        if field.has_default() and callable(field.default):
            computed.append((field.attname, field.default))
        else:
            fixed[field.attname] = field.get_default()
    return fixed, tuple(computed)


_UPDATED = frozenset({*_FIELDS, "attempts"})
"""The fields a later event can change in a stored row (never its queue, task id or first-seen time)."""

_PLAIN_TYPES = {
    "CharField": str,
    "TextField": str,
    "BooleanField": bool,
    "IntegerField": int,
    "PositiveIntegerField": int,
    "FloatField": float,
}
"""Field types whose value of this Python type goes to the database as it is (``get_db_prep_save`` would
return it unchanged on every backend)."""


class _HistoryRows:
    """The statements that write history rows, and each column's conversion to its database value.

    The values are those ``bulk_create`` and ``bulk_update`` would write (each field's ``get_db_prep_save``),
    but those compile SQL for every value of every row (``bulk_update`` one ``CASE`` per field), which made the
    history cost as much CPU as running the task in the consumer's process. Here each statement is built once and
    run with ``executemany``, and a value that the database takes as it is (a ``str`` for a text column, an aware
    datetime through the backend's own adapter) skips the field's generic preparation.
    """

    def __init__(self) -> None:
        self.conn = connections[router.db_for_write(TaskHistory)]
        fields = _history_fields()
        quote = self.conn.ops.quote_name
        self.table = quote(TaskHistory._meta.db_table)
        self.quote = quote
        self.insert_sql = (
            f"INSERT INTO {self.table} ({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        self.columns = [(field.attname, self._converter(field)) for field in fields]
        updated = [field for field in fields if field.attname in _UPDATED]
        self.update_sql = (
            f"UPDATE {self.table} SET {', '.join(f'{quote(field.column)} = %s' for field in updated)} "
            f"WHERE {quote(TaskHistory._meta.pk.column)} = %s"
        )
        self.update_columns = [(field.attname, self._converter(field)) for field in updated]

    def _converter(self, field: Any) -> Callable[[Any], Any]:
        prepare = field.get_db_prep_save
        conn = self.conn
        kind = field.get_internal_type()
        if kind == "DateTimeField":
            adapt = conn.ops.adapt_datetimefield_value
            if conn.vendor == "sqlite" and settings.USE_TZ:
                # What the SQLite backend's adapter does with an aware datetime, without its checks per value.
                zone = conn.timezone
                adapt = lambda value: str(value.astimezone(zone).replace(tzinfo=None))  # noqa: E731

            def datetime_value(value: Any) -> Any:
                if value is None:
                    return None
                if type(value) is dt.datetime and value.utcoffset() is not None:
                    return adapt(value)
                return prepare(value, conn)  # naive or another type: the field decides (and warns)

            return datetime_value
        plain = _PLAIN_TYPES.get(kind)
        if plain is None:
            return lambda value: prepare(value, conn)
        return lambda value: value if value is None or type(value) is plain else prepare(value, conn)

    def existing(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], TaskHistory]:
        """The stored rows of these ``(queue, task id)`` keys: one plain query finds their ids (usually none),
        then the rows found are read as model instances."""
        queues = sorted({queue for queue, _ in keys})
        task_ids = [task_id for _, task_id in keys]
        quote = self.quote
        pk, queue_column, task_column = (
            quote(TaskHistory._meta.get_field(name).column) for name in ("id", "queue", "task_id")
        )
        with self.conn.cursor() as cursor:
            cursor.execute(
                f"SELECT {pk}, {queue_column}, {task_column} FROM {self.table} "
                f"WHERE {queue_column} IN ({', '.join(['%s'] * len(queues))}) "
                f"AND {task_column} IN ({', '.join(['%s'] * len(task_ids))})",
                [*queues, *task_ids],
            )
            wanted = set(keys)
            found = [row_id for row_id, queue, task_id in cursor.fetchall() if (queue, task_id) in wanted]
        if not found:
            return {}
        return {(row.queue, row.task_id): row for row in TaskHistory.objects.filter(pk__in=found)}

    def insert_params(self, values: dict[str, Any]) -> list[Any]:
        """The ``INSERT``'s parameters for a new row's field values."""
        return [convert(values[name]) for name, convert in self.columns]

    def insert(self, params: list[list[Any]]) -> None:
        """Insert rows (one ``executemany``)."""
        with self.conn.cursor() as cursor:
            cursor.executemany(self.insert_sql, params)

    def update_params(self, row: TaskHistory) -> list[Any]:
        """The ``UPDATE``'s parameters for a stored row whose fields were changed."""
        values = row.__dict__
        return [*(convert(values[name]) for name, convert in self.update_columns), row.pk]

    def update(self, params: list[list[Any]]) -> None:
        """Update rows by id (one ``executemany``)."""
        with self.conn.cursor() as cursor:
            cursor.executemany(self.update_sql, params)


def _save_one(row: TaskHistory) -> None:
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        current = TaskHistory.objects.get(queue=row.queue, task_id=row.task_id)
        for field in (*_FIELDS, "attempts"):
            setattr(current, field, getattr(row, field))
        current.save()


def add_minute(queue: str, minute: dt.datetime, **values: float | None) -> None:
    """Add to the counters and set the sampled depths of one queue's minute row, creating it when missing.

    A keyword naming one of :attr:`QueueMinute.COUNTERS <django_tasks_q.history.QueueMinute.COUNTERS>`
    (``succeeded=2``, ``duration_sum=0.4``) is added to it; any other (``pending=5``) sets that field.
    """
    updates: dict[str, Any] = {}
    for field, value in values.items():
        if field not in QueueMinute.COUNTERS:
            updates[field] = value
        elif value:
            updates[field] = F(field) + value
    if not updates:
        return
    rows = QueueMinute.objects.filter(queue=queue, minute=minute)
    if rows.update(**updates):
        return
    try:
        with transaction.atomic():
            QueueMinute.objects.create(queue=queue, minute=minute, **values)
    except IntegrityError:
        rows.update(**updates)


def prune(now: dt.datetime | None = None) -> int:
    """Delete history older than ``TASKS_Q_HISTORY_DAYS``, minute rows older than two days and stale heartbeats.

    The counters of the minute rows deleted are added to their queue's totals row first (see
    :class:`~django_tasks_q.history.QueueMinute`). Returns how many history rows were deleted.
    """
    now = now or timezone.now()
    days = history_settings().days
    deleted, _ = TaskHistory.objects.filter(updated_at__lt=now - dt.timedelta(days=days)).delete()
    fold_minutes(now - MINUTES_KEPT)
    ConsumerHeartbeat.objects.filter(last_heartbeat__lt=now - HEARTBEATS_KEPT).delete()
    return deleted


def fold_minutes(before: dt.datetime) -> None:
    """Delete the minute rows older than ``before``, after adding their counters to their queue's totals row.

    The rows are read with a locking read in the same transaction as the deletion, so two processes pruning
    at once cannot both carry the same minutes.
    """
    totals_minute = QueueMinute.totals_minute()
    with transaction.atomic():
        old = QueueMinute.objects.filter(minute__lt=before).exclude(minute=totals_minute)
        carried: dict[str, dict[str, float]] = {}
        for row in old.select_for_update().values("queue", *QueueMinute.COUNTERS):
            counts = carried.setdefault(row.pop("queue"), {})
            for field, value in row.items():
                if value:
                    counts[field] = counts.get(field, 0) + value
        for queue, counts in carried.items():
            if counts:
                add_minute(queue, totals_minute, **counts)
        old.delete()
