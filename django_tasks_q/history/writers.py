"""The statements that write task history: history rows in batches, per-minute counters, pruning.

:class:`~django_tasks_q.history.recorder.HistoryRecorder` buffers what the hub's signals say and calls these
from its flusher thread. History rows are written with statements built once and run with ``executemany``
(see :class:`_HistoryRows`); the counters of :class:`~django_tasks_q.history.models.QueueMinute` are added to
with ``F()`` updates, so that every recording process adds to the same rows.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Field
from django.utils import timezone

from ..backends.sql.orm_transport import database_write_lock
from .models import ConsumerHeartbeat, QueueMinute, TaskHistory, history_settings

MINUTES_KEPT = dt.timedelta(days=2)
HEARTBEATS_KEPT = dt.timedelta(days=1)

_FIELDS = (
    "name", "status", "args", "kwargs", "arguments_exact", "priority", "enqueued_at", "eta", "started_at",
    "finished_at", "duration", "worker", "result", "error", "traceback", "updated_at",
)  # fmt: skip


def write_history(chosen: dict[tuple[str, str], dict[str, Any]], batch: int) -> None:
    """Insert or update the history rows of ``(queue, task id)`` with their buffered changes, ``batch`` rows per
    statement, in one transaction."""
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


def add_minutes(minutes: dict[tuple[str, dt.datetime], dict[str, float]]) -> None:
    """Add the counters of each ``(queue, minute)`` to its row."""
    for (queue, minute), counts in minutes.items():
        add_minute(queue, minute, **counts)


def count_tasks_run(consumer_identity: str | None, tasks_run: int) -> int:
    """Add to the consumer's heartbeat row; returns what could not be counted yet (no row so far)."""
    if not tasks_run or not consumer_identity:
        return 0
    updated = ConsumerHeartbeat.objects.filter(identity=consumer_identity).update(
        tasks_run=F("tasks_run") + tasks_run
    )
    return 0 if updated else tasks_run


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


def _column(name: str) -> str:
    """The database column of ``TaskHistory``'s concrete field ``name``."""
    field = TaskHistory._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None  # a concrete field has a column
    return field.column


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

class _Converted:
    """Stands for "no type": a column of this kind converts every value but ``None``."""


_PLAIN_TYPES: dict[str, type] = {
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
        self.names = [field.attname for field in fields]
        self.checks = self._checks(fields)
        updated = [field for field in fields if field.attname in _UPDATED]
        self.update_sql = (
            f"UPDATE {self.table} SET {', '.join(f'{quote(field.column)} = %s' for field in updated)} "
            f"WHERE {quote(_column(TaskHistory._meta.pk.name))} = %s"
        )
        self.update_names = [field.attname for field in updated]
        self.update_checks = self._checks(updated)

    def _checks(self, fields: Sequence[Any]) -> list[tuple[int, type, Callable[[Any], Any]]]:
        """For each column: its position, the type the database takes as it is, and the conversion of any other
        value (``None`` always passes)."""
        return [(index, *self._converter(field)) for index, field in enumerate(fields)]

    def _converter(self, field: Any) -> tuple[type, Callable[[Any], Any]]:
        prepare = field.get_db_prep_save
        conn = self.conn
        kind = field.get_internal_type()
        if kind == "DateTimeField":
            adapt: Callable[[Any], Any] = conn.ops.adapt_datetimefield_value
            if conn.vendor == "sqlite" and settings.USE_TZ:
                # What the SQLite backend's adapter does with an aware datetime, without its checks per value.
                zone = conn.timezone

                def adapt(value: dt.datetime) -> str:
                    if value.tzinfo is dt.UTC and zone is dt.UTC:  # timezone.now(): only the "+00:00" to drop
                        return value.isoformat(" ")[:-6]
                    return str(value.astimezone(zone).replace(tzinfo=None))

            def datetime_value(value: Any) -> Any:
                if type(value) is dt.datetime and value.utcoffset() is not None:
                    return adapt(value)
                return prepare(value, conn)  # naive or another type: the field decides (and warns)

            return _Converted, datetime_value
        return _PLAIN_TYPES.get(kind, _Converted), lambda value: prepare(value, conn)

    @staticmethod
    def _params(values: dict[str, Any], names: list[str], checks: list[tuple[int, type, Any]]) -> list[Any]:
        params = [values[name] for name in names]
        for index, taken_as_is, convert in checks:
            value = params[index]
            if value is not None and type(value) is not taken_as_is:
                params[index] = convert(value)
        return params

    def existing(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], TaskHistory]:
        """The stored rows of these ``(queue, task id)`` keys: one plain query finds their ids (usually none),
        then the rows found are read as model instances."""
        queues = sorted({queue for queue, _ in keys})
        task_ids = [task_id for _, task_id in keys]
        quote = self.quote
        pk, queue_column, task_column = (
            quote(_column(name)) for name in ("id", "queue", "task_id")
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
        return self._params(values, self.names, self.checks)

    def insert(self, params: list[list[Any]]) -> None:
        """Insert rows (one ``executemany``)."""
        with self.conn.cursor() as cursor:
            cursor.executemany(self.insert_sql, params)

    def update_params(self, row: TaskHistory) -> list[Any]:
        """The ``UPDATE``'s parameters for a stored row whose fields were changed."""
        return [*self._params(row.__dict__, self.update_names, self.update_checks), row.pk]

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

    A keyword naming one of :attr:`QueueMinute.COUNTERS <django_tasks_q.history.models.QueueMinute.COUNTERS>`
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
    :class:`~django_tasks_q.history.models.QueueMinute`). Returns how many history rows were deleted.
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
