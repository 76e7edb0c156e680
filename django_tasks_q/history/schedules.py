"""Schedules stored in the database (edited in the admin) beside code-declared periodic tasks.

Code opts a task in with ``@task(schedulable=True)``; a :class:`Schedule` row then
names that task by its path (chosen from the schedulable tasks, never typed by a user), its JSON arguments
(checked against the function's signature), a crontab expression *or* a fixed
interval in seconds, a timezone, an active window and what to do about ticks
missed while no consumer ran (``misfire``):

* ``once`` (default): only the latest missed tick fires;
* ``skip``: missed ticks are dropped, the next one fires on time;
* ``catch_up``: every missed tick fires (at most 100 at a time).

Every field the timing reads is bounded (:data:`MIN_INTERVAL` to :data:`MAX_INTERVAL` seconds; ``start_at`` and
``end_at`` between :data:`EARLIEST` and :data:`LATEST`), by the model's validators and so by the admin form. A row
that breaks a bound anyway (written by SQL, or before the bounds existed) is skipped by the scheduler with one
log line, while the other schedules of its queue fire.

Every consumer of the schedule's queue checks the table on each scheduler pass;
a marker in the queue's storage lets exactly one of them enqueue each tick.
Edits take effect on the next pass, without restarting consumers. A schedule
never fires for a time before it was created (or before ``start_at``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone

from ..conf import queues, registry_for
from ..crontab import Crontab
from ..exceptions import ConfigurationError

logger = logging.getLogger("django_tasks_q.schedules")

MISFIRE_CHOICES = [
    ("once", "run the latest missed tick once"),
    ("skip", "skip missed ticks"),
    ("catch_up", "run every missed tick"),
]
CATCH_UP_LIMIT = 100
SKIP_GRACE = dt.timedelta(seconds=90)

MIN_INTERVAL = 1.0
MAX_INTERVAL = 3650 * 86400.0
# Far enough inside datetime's range (years 1 to 9999) that five ticks of the longest interval, or a crontab
# searched in any time zone, never leave it.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)

# Schedules the scheduler skips, with the problem last logged, so each is logged once and not on every pass.
_skipped: dict[tuple[str, Any], str] = {}


def validate_interval(value: float | None) -> None:
    """Refuse an interval that is not a finite number of seconds from MIN_INTERVAL to MAX_INTERVAL."""
    if value is None:
        return
    if not math.isfinite(value) or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ValidationError(
            f"the interval must be at least {MIN_INTERVAL:g} second and at most {MAX_INTERVAL:.0f} seconds "
            f"(3650 days), got {value!r}",
            code="interval_bounds",
        )


def validate_window_time(value: dt.datetime | None) -> None:
    """Refuse a start or end outside EARLIEST to LATEST."""
    if value is None:
        return
    aware = value if dj_timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)
    if not EARLIEST <= aware <= LATEST:
        raise ValidationError(
            f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC), got {value.isoformat()}",
            code="time_bounds",
        )


def schedulable_tasks(queue: str) -> list[str]:
    """Paths of the tasks of ``queue`` that code marked ``schedulable=True`` (what a schedule row stores)."""
    return sorted(w.path for w in registry_for(queue) if w.extra.get("schedulable"))


class Schedule(models.Model):
    """A database-stored schedule of one schedulable task."""

    name = models.CharField(max_length=191, unique=True)
    queue = models.CharField(max_length=191, default="default")
    task = models.CharField(max_length=255, help_text="A task registered with schedulable=True.")
    args = models.JSONField("arguments", default=list, blank=True)
    kwargs = models.JSONField("keyword arguments", default=dict, blank=True)
    crontab = models.CharField(
        max_length=120, blank=True, default="", help_text='Five fields, e.g. "*/15 9-17 * * 1-5", or @daily.'
    )
    interval = models.FloatField(
        "interval (seconds)", null=True, blank=True, validators=[validate_interval],
        help_text=f"From {MIN_INTERVAL:g} to {MAX_INTERVAL:.0f} seconds (3650 days).",
    )  # fmt: skip
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    start_at = models.DateTimeField(null=True, blank=True, validators=[validate_window_time])
    end_at = models.DateTimeField(null=True, blank=True, validators=[validate_window_time])
    misfire = models.CharField(max_length=10, choices=MISFIRE_CHOICES, default="once")
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="The last tick that was enqueued.")
    last_task_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "django_tasks_q_schedule_entry"
        ordering = ["name"]
        indexes = [models.Index(fields=["queue", "enabled"], name="tasks_q_schedule_queue")]

    def __str__(self) -> str:
        return self.name

    # ------------------------------------------------------------------ validation

    def clean(self) -> None:
        """Check the task, arguments, timing and window; raise ValidationError naming the field.

        The bounds of the interval, start and end are the fields' validators, which ``full_clean`` runs first.
        """
        errors: dict[str, str] = {}
        wrapper = None
        if self.task not in schedulable_tasks(self.queue):
            errors["task"] = (
                f"{self.task!r} is not a schedulable task of queue {self.queue!r} "
                f"(choose one of {schedulable_tasks(self.queue)})"
            )
        else:
            wrapper = registry_for(self.queue).get(self.task)
        if not isinstance(self.args, list):
            errors["args"] = "arguments must be a JSON list"
        if not isinstance(self.kwargs, dict):
            errors["kwargs"] = "keyword arguments must be a JSON object"
        if wrapper is not None and "args" not in errors and "kwargs" not in errors:
            problem = self._call_problem(wrapper)
            if problem:
                errors["args"] = problem
        if bool(self.crontab) == (self.interval is not None):
            errors["crontab"] = "give either a crontab expression or an interval, not both or neither"
        elif self.crontab:
            try:
                Crontab.parse(self.crontab)
            except ValueError as exc:
                errors["crontab"] = str(exc)
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"unknown time zone {self.timezone!r}"
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            errors["end_at"] = "the end must come after the start"
        if errors:
            raise ValidationError(errors)

    def _call_problem(self, wrapper: Any) -> str | None:
        """Why each tick's call would be refused: arguments that do not fit the signature, or that the queue
        cannot carry (not serializable, NaN, over its message size limit, nested too deeply)."""
        try:
            hub = queues[self.queue]
        except ConfigurationError:  # not configured in this process: the signature is all that can be checked
            hub = None
        try:
            if hub is None:
                wrapper.check_arguments(tuple(self.args), dict(self.kwargs))
            else:
                call = hub.build_task(wrapper, tuple(self.args), dict(self.kwargs))
                hub.serialize_task(call)
        except RecursionError:
            return "the arguments are nested too deeply to be serialized"
        except Exception as exc:
            return str(exc)
        return None

    def stored_problem(self) -> str | None:
        """Why this row's timing cannot be computed (a value out of bounds, however it was stored), or None."""
        if bool(self.crontab) == (self.interval is not None):
            return "it needs either a crontab expression or an interval, not both or neither"
        checks: list[tuple[str, Callable[[Any], None], Any]] = [("interval", validate_interval, self.interval)] + [
            (field, validate_window_time, getattr(self, field))
            for field in ("start_at", "end_at", "created_at", "last_run_at")
        ]
        for field, check, value in checks:
            try:
                check(value)
            except ValidationError as exc:
                return f"{field}: {exc.messages[0]}"
        try:
            zoneinfo.ZoneInfo(self.timezone)
            if self.crontab:
                Crontab.parse(self.crontab, tz=self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            return str(exc) or f"unknown time zone {self.timezone!r}"
        return None

    # ------------------------------------------------------------------ timing

    def _crontab(self) -> Crontab:
        return Crontab.parse(self.crontab, tz=self.timezone)

    def _anchor(self) -> dt.datetime:
        return max(filter(None, [self.created_at, self.start_at]))

    def next_runs(self, after: dt.datetime | None = None, count: int = 5) -> list[dt.datetime]:
        """The next ``count`` ticks strictly after ``after`` (default now) within the active window."""
        after = max(after or dj_timezone.now(), self._anchor() - dt.timedelta(microseconds=1))
        if self.interval:
            step = dt.timedelta(seconds=self.interval)
            anchor = self._anchor()
            done = int((after - anchor) / step) + 1 if after >= anchor else 0
            runs = [anchor + step * (done + i) for i in range(count)]
        else:
            runs = self._crontab().next_runs(after, count)
        if self.end_at:
            runs = [run for run in runs if run <= self.end_at]
        return runs

    def due_ticks(self, now: dt.datetime) -> list[dt.datetime]:
        """The ticks to enqueue now, after ``last_run_at`` (or creation), by the misfire policy."""
        if not self.enabled or (self.start_at and now < self.start_at):
            return []
        since = self.last_run_at or (self._anchor() - dt.timedelta(microseconds=1))
        ticks: list[dt.datetime] = []
        cursor = since
        while len(ticks) < CATCH_UP_LIMIT + 1:
            batch = [tick for tick in self.next_runs(cursor, 20) if tick <= now]
            ticks += batch
            if len(batch) < 20:
                break
            cursor = batch[-1]
        if not ticks:
            return []
        if self.misfire == "catch_up":
            return ticks[:CATCH_UP_LIMIT]
        if self.misfire == "skip":
            return [tick for tick in ticks if now - tick <= SKIP_GRACE][-1:]
        return ticks[-1:]


def dispatch_schedules(hub: Any, now: dt.datetime | None = None) -> list[Schedule]:
    """Enqueue every due tick of ``hub``'s enabled schedules, each exactly once across consumers.

    Returns the schedules that fired. A schedule whose task is no longer
    registered or whose arguments no longer fit is logged and skipped.
    """
    now = now or dj_timezone.now()
    fired = []
    schedules = _enabled_schedules(hub.name)
    # Forget skipped schedules that were deleted or paused, so one enabled again with the problem is logged again.
    present = {schedule.pk for schedule in schedules}
    for queue, pk in [key for key in _skipped if key[0] == hub.name and key[1] not in present]:
        _skipped.pop((queue, pk), None)
    for schedule in schedules:
        ticks = _due_ticks_or_skip(hub.name, schedule, now)
        for tick in ticks:
            if not hub.claim_schedule_tick(schedule.pk, tick):
                continue
            try:
                result = hub.enqueue_call(schedule.task, schedule.args, schedule.kwargs)
            except Exception as exc:
                logger.error("schedule %r (task %s) could not be enqueued: %s", schedule.name, schedule.task, exc)
                continue
            task_id = result.id if result is not None else ""
            Schedule.objects.filter(pk=schedule.pk).filter(
                models.Q(last_run_at__isnull=True) | models.Q(last_run_at__lt=tick)
            ).update(last_run_at=tick, last_task_id=task_id)
            logger.info("schedule %r enqueued %s for %s", schedule.name, schedule.task, tick.isoformat())
            fired.append(schedule)
    return fired


def _enabled_schedules(queue: str) -> list[Schedule]:
    rows = Schedule.objects.filter(queue=queue, enabled=True)
    try:
        return list(rows)
    except RecursionError:
        # A row's stored JSON is nested too deeply for the parser: without the arguments every row loads, and
        # each reads its own later, so only the unreadable one is skipped.
        return list(rows.defer("args", "kwargs"))


def _arguments_problem(schedule: Schedule) -> str | None:
    try:
        args, kwargs = schedule.args, schedule.kwargs
    except RecursionError:
        return "the stored arguments are nested too deeply to be read"
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return "the stored arguments must be a JSON list and the keyword arguments a JSON object"
    return None


def _due_ticks_or_skip(queue: str, schedule: Schedule, now: dt.datetime) -> list[dt.datetime]:
    """The schedule's due ticks; none for a row that cannot be run as stored, logged once per problem."""
    try:
        problem = _arguments_problem(schedule) or schedule.stored_problem()
        ticks = [] if problem else schedule.due_ticks(now)
    except Exception as exc:  # a stored value no bound foresaw: this schedule must not stop the others
        problem, ticks = f"{type(exc).__name__}: {exc}", []
    key = (queue, schedule.pk)
    if problem is None:
        _skipped.pop(key, None)
    elif _skipped.get(key) != problem:
        _skipped[key] = problem
        logger.error("schedule %r (id %s, queue %r) is skipped until it is fixed: %s",
                     schedule.name, schedule.pk, queue, problem)  # fmt: skip
    return ticks
