"""Models behind the admin: task history, consumer heartbeats, per-minute queue metrics, and admin anchors.

``TaskHistory``
    One row per task call (its id is stable across retries and redeliveries): status, attempts, timings, the
    worker, arguments, return value or error and traceback. Written in batches by
    :mod:`django_tasks_q.history.recorder` from the hub's signals, off the hot path; pruned by age
    (``TASKS_Q_HISTORY_DAYS``); ``TASKS_Q_HISTORY`` turns it down to failures only or off.
``ConsumerHeartbeat``
    One row per running ``run_tasks`` process, upserted every health-check interval.
``QueueMinute``
    Per queue and minute: tasks by outcome, a run-duration histogram and sampled queue depths (for the
    dashboard charts and the Prometheus metrics).

The remaining models are *anchors*: table-less (``managed = False``) models that give each admin page its
entry in the app's section of the admin index and its own permissions. No table is created for them and no
query ever touches one; their pages read and act through the hub (``TaskQueue``) only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import models
from django.db.models.base import ModelBase
from django.utils import timezone

__all__ = [
    "ConsumerHeartbeat",
    "DeadLetterEntry",
    "InFlightTask",
    "LockEntry",
    "PendingTask",
    "PeriodicTask",
    "QueueMinute",
    "QueueOverview",
    "RegisteredTask",
    "ScheduledTask",
    "TaskHistory",
]

NAME_LENGTH = 191
"""Indexed names stay within what a utf8mb4 index column takes on every MySQL/MariaDB."""

HISTORY_LEVELS = ("all", "failures", "off")


@dataclass(frozen=True)
class HistorySettings:
    """What to record and for how long (read from settings at each use, so ``override_settings`` works).

    ``TASKS_Q_HISTORY``: ``"all"`` (default), ``"failures"`` (rows only for failed, timed-out and
    dead-lettered calls) or ``"off"`` (no rows; heartbeats and per-minute counters are still kept).
    ``TASKS_Q_HISTORY_DAYS`` (default 14): rows older than this are pruned.
    ``TASKS_Q_HISTORY_FLUSH_INTERVAL`` (seconds, default 1): how often the recorder writes its batch.
    ``TASKS_Q_HISTORY_BATCH_SIZE`` (default 500): rows per bulk statement.
    """

    level: str = "all"
    days: float = 14
    flush_interval: float = 1.0
    batch_size: int = 500


def history_settings() -> HistorySettings:
    """The history settings in force; raises ValueError for an invalid one (see the system check)."""
    level = getattr(settings, "TASKS_Q_HISTORY", "all")
    if level is False or level is None:
        level = "off"
    elif level is True:
        level = "all"
    if level not in HISTORY_LEVELS:
        raise ValueError(f"TASKS_Q_HISTORY must be one of {HISTORY_LEVELS}, got {level!r}")
    values: dict[str, Any] = {"level": level}
    for key, attr, kind in (
        ("TASKS_Q_HISTORY_DAYS", "days", (int, float)),
        ("TASKS_Q_HISTORY_FLUSH_INTERVAL", "flush_interval", (int, float)),
        ("TASKS_Q_HISTORY_BATCH_SIZE", "batch_size", (int,)),
    ):
        if hasattr(settings, key):
            value = getattr(settings, key)
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
            values[attr] = value
    return HistorySettings(**values)


@register(Tags.compatibility)
def check_history_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``django_tasks_q.E020``: an invalid ``TASKS_Q_HISTORY*`` setting."""
    try:
        history_settings()
    except ValueError as exc:
        return [Error(str(exc), hint="See docs/admin.md, 'Task history'.", id="django_tasks_q.E020")]
    return []


class TaskStatus(models.TextChoices):
    """Where a task call is in its life, as recorded in :class:`TaskHistory`."""

    QUEUED = "queued", "queued"
    SCHEDULED = "scheduled", "scheduled"
    RUNNING = "running", "running"
    COMPLETE = "complete", "complete"
    FAILED = "failed", "failed"
    TIMEOUT = "timeout", "timed out"
    RETRYING = "retrying", "retrying"
    REVOKED = "revoked", "revoked"
    EXPIRED = "expired", "expired"
    CANCELED = "canceled", "canceled"
    LOCKED = "locked", "lock held"
    RATE_LIMITED = "rate-limited", "rate limited"
    INTERRUPTED = "interrupted", "interrupted"
    RECLAIMED = "reclaimed", "reclaimed (lease expired)"
    DEAD = "dead", "dead-lettered"


FAILURE_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.DEAD})
"""Statuses kept when ``TASKS_Q_HISTORY = "failures"``."""


class TaskHistory(models.Model):
    """One task call: what it was, what happened to it and when (see the module documentation)."""

    queue = models.CharField(max_length=NAME_LENGTH)
    task_id = models.CharField("task id", max_length=NAME_LENGTH)
    name = models.CharField("task", max_length=255, db_index=True)
    status = models.CharField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    args = models.TextField("arguments", blank=True, default="", help_text="JSON")
    kwargs = models.TextField("keyword arguments", blank=True, default="", help_text="JSON")
    arguments_exact = models.BooleanField(
        default=True, help_text="Whether the arguments were stored exactly (JSON, not truncated): needed to retry."
    )
    priority = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times the task started running.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    eta = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds of the last run.")
    worker = models.CharField(max_length=255, blank=True, default="")
    result = models.TextField("return value", blank=True, default="")
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    created_at = models.DateTimeField("first seen", default=timezone.now)
    updated_at = models.DateTimeField("last change", default=timezone.now, db_index=True)

    class Meta:
        # The list counts rows with these ("271 task history entries"); its page is titled "Task history".
        verbose_name = "task history entry"
        verbose_name_plural = "task history entries"
        ordering = ["-updated_at", "-id"]
        db_table = "django_tasks_q_history"
        constraints = [models.UniqueConstraint(fields=["queue", "task_id"], name="tasks_q_history_unique_task")]
        indexes = [
            models.Index(fields=["queue", "status"], name="tasks_q_history_status"),
            models.Index(fields=["created_at"], name="tasks_q_history_created"),
            models.Index(fields=["name", "status", "updated_at"], name="tasks_q_history_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.task_id}"

    @property
    def is_failure(self) -> bool:
        """Whether the call ended in a failure (failed, timed out, dead-lettered)."""
        return self.status in FAILURE_STATUSES


class ConsumerHeartbeat(models.Model):
    """A ``run_tasks`` process, as it last reported itself."""

    identity = models.CharField(max_length=NAME_LENGTH, unique=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField("PID")
    queues = models.TextField(help_text="Comma-separated queue names.")
    workers = models.PositiveIntegerField(default=0)
    worker_type = models.CharField(max_length=20, blank=True, default="")
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    interval = models.FloatField(default=10.0, help_text="Seconds between heartbeats.")
    tasks_run = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "consumer"
        verbose_name_plural = "consumers"
        ordering = ["-last_heartbeat"]
        db_table = "django_tasks_q_consumer"

    def __str__(self) -> str:
        return self.identity

    def is_alive(self, now: dt.datetime | None = None) -> bool:
        """Running and heard from within three heartbeat intervals (plus a little slack)."""
        if self.stopped_at is not None:
            return False
        moment = now or timezone.now()
        return (moment - self.last_heartbeat).total_seconds() <= 3 * self.interval + 5


class QueueMinute(models.Model):
    """Counters and sampled depths of one queue for one minute (the dashboard's charts, the Prometheus totals).

    The counters (:attr:`COUNTERS`) are added to by every process that records; the depths are sampled by the
    consumers. When minute rows are pruned their counters are first added to the queue's *totals row* (the
    row whose ``minute`` is :meth:`totals_minute`), so that sums over a queue's rows never go down.
    """

    OUTCOMES = ("succeeded", "failed", "retried", "revoked", "expired")
    """Counter fields by outcome: runs that returned; runs that raised or timed out and messages dead-lettered;
    calls put back for another attempt; calls skipped because they were revoked, or had expired."""
    DURATION_BUCKETS = (
        (0.005, "duration_le_5ms"),
        (0.01, "duration_le_10ms"),
        (0.025, "duration_le_25ms"),
        (0.05, "duration_le_50ms"),
        (0.1, "duration_le_100ms"),
        (0.25, "duration_le_250ms"),
        (0.5, "duration_le_500ms"),
        (1.0, "duration_le_1s"),
        (2.5, "duration_le_2500ms"),
        (5.0, "duration_le_5s"),
        (10.0, "duration_le_10s"),
        (30.0, "duration_le_30s"),
        (60.0, "duration_le_60s"),
    )
    """Upper bounds (seconds) of the run-duration histogram and the fields counting the runs within each
    (cumulative: a 0.3 s run counts in every field from ``duration_le_500ms`` up)."""
    COUNTERS = (*OUTCOMES, *(field for _bound, field in DURATION_BUCKETS), "duration_count", "duration_sum")
    """Fields that are added to (never set)."""

    queue = models.CharField(max_length=NAME_LENGTH)
    minute = models.DateTimeField()
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    retried = models.PositiveBigIntegerField(default=0)
    revoked = models.PositiveBigIntegerField(default=0)
    expired = models.PositiveBigIntegerField(default=0)
    duration_count = models.PositiveBigIntegerField(default=0, help_text="Runs timed (succeeded or failed).")
    duration_sum = models.FloatField(default=0.0, help_text="Seconds, summed over the runs timed.")
    for _bound, _field in DURATION_BUCKETS:  # a counter per bucket: the table above is the one list of them
        vars()[_field] = models.PositiveBigIntegerField(default=0)
    del _bound, _field
    pending = models.IntegerField(null=True)
    scheduled = models.IntegerField(null=True)
    in_flight = models.IntegerField(null=True)
    dead = models.IntegerField(null=True)

    class Meta:
        verbose_name = "queue minute"
        db_table = "django_tasks_q_minute"
        constraints = [models.UniqueConstraint(fields=["queue", "minute"], name="tasks_q_minute_unique")]
        indexes = [models.Index(fields=["minute"], name="tasks_q_minute_time")]

    def __str__(self) -> str:
        return f"{self.queue} {self.minute:%Y-%m-%d %H:%M}"

    @staticmethod
    def totals_minute() -> dt.datetime:
        """The ``minute`` of the totals rows: 2000-01-01 00:00 UTC (naive when ``USE_TZ`` is off)."""
        moment = dt.datetime(2000, 1, 1)
        return moment.replace(tzinfo=dt.UTC) if settings.USE_TZ else moment


# ---------------------------------------------------------------------------------------------- admin anchors
# Table-less models: an entry in the admin index and permissions for each page. Never queried.


class _Anchor(models.Model):
    id = models.CharField(primary_key=True, max_length=NAME_LENGTH)

    class Meta:
        abstract = True
        managed = False
        default_permissions = ("view",)


class QueueOverview(_Anchor):
    """The dashboard; also carries the permissions of every action the admin offers."""

    class Meta(_Anchor.Meta):
        db_table = "django_tasks_q_admin_dashboard"
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
        permissions = [
            ("revoke_task", "Can revoke task calls"),
            ("restore_task", "Can restore revoked task calls"),
            ("run_task_now", "Can run a scheduled task now"),
            ("enqueue_task", "Can enqueue a registered task from the admin"),
            ("retry_task", "Can retry a finished or failed task"),
            ("delete_result", "Can delete a stored result"),
            ("flush_queue", "Can flush a queue's waiting messages"),
            ("flush_schedule", "Can flush a queue's schedule"),
            ("flush_results", "Can flush a queue's stored results"),
            ("requeue_deadletter", "Can requeue dead letters"),
            ("purge_deadletter", "Can purge dead letters"),
            ("release_lock", "Can release task locks"),
            ("view_metrics", "Can read the Prometheus metrics"),
        ]


def _page_anchor(name: str, table: str, singular: str, plural: str) -> type[_Anchor]:
    """The anchor model ``name`` of the admin page titled ``plural`` (what the page lists is said by its admin,
    in :mod:`django_tasks_q.admin`); its table, never created, is ``django_tasks_q_admin_<table>``."""
    options = {"db_table": f"django_tasks_q_admin_{table}", "verbose_name": singular, "verbose_name_plural": plural}
    meta = type("Meta", (_Anchor.Meta,), options)
    body = {"__module__": __name__, "__qualname__": name, "__doc__": f'Anchor of the "{plural}" admin page.', "Meta": meta}
    return cast("type[_Anchor]", ModelBase(name, (_Anchor,), body))


PendingTask = _page_anchor("PendingTask", "pending", "pending task", "pending tasks")
ScheduledTask = _page_anchor("ScheduledTask", "scheduled", "scheduled task", "scheduled tasks")
InFlightTask = _page_anchor("InFlightTask", "inflight", "task in flight", "tasks in flight")
DeadLetterEntry = _page_anchor("DeadLetterEntry", "deadletters", "dead letter", "dead letters")
PeriodicTask = _page_anchor("PeriodicTask", "periodic", "periodic task", "periodic tasks")
RegisteredTask = _page_anchor("RegisteredTask", "registered", "registered task", "registered tasks")
LockEntry = _page_anchor("LockEntry", "locks", "lock or rate limit", "locks and rate limits")
