"""Admin for database schedules: create and edit, enable/pause, run once now, the next five ticks live.

The task is chosen from the tasks that code marked ``schedulable=True`` (never typed as a dotted path), and
the arguments are JSON checked against the function's signature by :meth:`Schedule.clean`. While the crontab
expression, interval or time zone is typed, the form asks :meth:`ScheduleAdmin.preview_view` for the next five
ticks.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..conf import configured_queues, queues
from ..crontab import Crontab
from ..history.schedules import Schedule, schedulable_tasks, validate_interval
from .access import acting_user_id
from .base import SafeListMixin, admin_nav, refuse_json_constant


class StrictJSONField(forms.JSONField):
    """JSON as a queue can carry it: NaN and Infinity, and nesting too deep for the parser, are form errors."""

    def to_python(self, value: Any) -> Any:
        """Django's parsing, after a strict parse that reports what the database or the queue would refuse."""
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value, parse_constant=refuse_json_constant)
            except ValueError as exc:
                raise ValidationError(f"not valid JSON: {exc}", code="invalid") from None
            except RecursionError:
                raise ValidationError("not usable: the JSON is nested too deeply", code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        """The submitted text shown again as it was typed when it cannot be parsed (too deep included)."""
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


class ScheduleForm(forms.ModelForm):
    """The schedule form: queue and task as choices; the model's ``clean`` checks the rest."""

    class Meta:
        model = Schedule
        fields = [
            "name",
            "queue",
            "task",
            "args",
            "kwargs",
            "crontab",
            "interval",
            "timezone",
            "enabled",
            "start_at",
            "end_at",
            "misfire",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(configured_queues())
        for name in ("args", "kwargs"):
            field = self.fields[name]
            self.fields[name] = StrictJSONField(label=field.label, required=False, initial=field.initial,
                                                help_text=field.help_text)  # fmt: skip
        self.fields["queue"] = forms.ChoiceField(choices=[(name, name) for name in names])
        tasks = sorted({task for name in names for task in schedulable_tasks(name)})
        self.fields["task"] = forms.ChoiceField(
            choices=[(task, task) for task in tasks],
            help_text="Tasks that code marked @task(schedulable=True).",
        )


@admin.register(Schedule)
class ScheduleAdmin(SafeListMixin, admin.ModelAdmin):
    """Database schedules."""

    form = ScheduleForm
    list_display = ["name", "queue", "task", "timing", "enabled", "last_run_at", "last_result", "next_run"]
    list_filter = ["enabled", "queue", "misfire"]
    search_fields = ["name", "task"]
    readonly_fields = ["next_runs_display", "last_run_at", "last_result", "created_at", "updated_at"]
    actions = ["enable", "pause", "run_once_now"]
    change_form_template = "admin/django_tasks_q/schedule/change_form.html"

    @admin.display(description="timing")
    def timing(self, obj: Schedule) -> str:
        """The crontab expression or the interval."""
        if obj.crontab:
            return obj.crontab
        return "—" if obj.interval is None else f"every {obj.interval:g}s"

    @admin.display(description="next run")
    def next_run(self, obj: Schedule) -> Any:
        """The next tick (empty when the schedule is paused or over; the problem when it cannot be computed)."""
        if not obj.enabled:
            return "—"
        runs, problem = _next_runs(obj, 1)
        if problem:
            return f"never: {problem}"
        return runs[0] if runs else "—"

    @admin.display(description="next five runs")
    def next_runs_display(self, obj: Schedule) -> str:
        """The next five ticks, in the schedule's time zone."""
        if not obj.pk:
            return "—"
        runs, problem = _next_runs(obj, 5)
        if problem:
            return f"none: the scheduler skips this schedule until it is fixed ({problem})"
        return _runs_html(runs, obj.timezone)

    @admin.display(description="last result")
    def last_result(self, obj: Schedule) -> str:
        """A link to the history of the last enqueued call."""
        if not obj.last_task_id:
            return "—"
        url = reverse("admin:django_tasks_q_taskhistory_changelist") + f"?q={obj.last_task_id}"
        return format_html('<a href="{}">{}</a>', url, obj.last_task_id)

    @admin.action(description="Enable the selected schedules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        """Enable, with a history entry for each schedule that was paused."""
        count = self._set_enabled(request, queryset, True, "Enabled")
        self.message_user(request, f"{count} schedule(s) enabled.", messages.SUCCESS)

    @admin.action(description="Pause the selected schedules", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        """Pause, with a history entry for each schedule that was enabled."""
        count = self._set_enabled(request, queryset, False, "Paused")
        self.message_user(request, f"{count} schedule(s) paused.", messages.SUCCESS)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Schedule], enabled: bool, what: str) -> int:
        changing = list(queryset.exclude(enabled=enabled))
        count = Schedule.objects.filter(pk__in=[schedule.pk for schedule in changing]).update(enabled=enabled)
        if changing:
            user_id = acting_user_id(request)
            if len(changing) == 1:
                LogEntry.objects.log_actions(user_id, changing, CHANGE, what, single_object=True)
            else:
                LogEntry.objects.log_actions(user_id, changing, CHANGE, what, single_object=False)
        return count

    @admin.action(description="Run the selected schedules once now", permissions=["change"])
    def run_once_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        """Enqueue each selected schedule's task now (its regular ticks are unchanged)."""
        for schedule in queryset:
            try:
                result = queues[schedule.queue].enqueue_call(schedule.task, schedule.args, schedule.kwargs)
            except Exception as exc:
                self.message_user(request, f"{schedule.name}: not enqueued: {exc}", messages.ERROR)
                continue
            task_id = result.id if result is not None else ""
            Schedule.objects.filter(pk=schedule.pk).update(last_task_id=task_id)
            LogEntry.objects.log_actions(
                user_id=acting_user_id(request),
                queryset=[schedule],
                action_flag=CHANGE,
                change_message=f"Ran once now as task {task_id}",
                single_object=True,
            )
            self.message_user(request, f"{schedule.name}: enqueued as task {task_id}.", messages.SUCCESS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        """The list does not show the arguments, so it does not read them (one row's may be unreadable)."""
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "django_tasks_q_schedule_changelist":
            queryset = queryset.defer("args", "kwargs")
        return queryset

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Schedule | None:
        """The schedule; with empty arguments and a warning when the stored JSON is too deep to be read."""
        try:
            return super().get_object(request, object_id, from_field)
        except RecursionError:
            obj = self.get_queryset(request).defer("args", "kwargs").get(pk=object_id)
            obj.args, obj.kwargs = [], {}
            self.message_user(request, "The stored arguments are nested too deeply to be read: they are shown "
                                       "empty, and saving replaces them.", messages.WARNING)  # fmt: skip
            return obj

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The list, with the tasks admin's page menu."""
        context = {**(extra_context or {}), "nav": admin_nav(self.admin_site.name)}
        return super().changelist_view(request, context)

    def get_urls(self) -> list[Any]:
        """The live preview endpoint beside the usual pages."""
        preview = path(
            "preview/",
            self.admin_site.admin_view(self.preview_view),
            name="django_tasks_q_schedule_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """JSON: the next five ticks of the crontab/interval/timezone in the query, or the error."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        expression = request.GET.get("crontab", "").strip()
        interval = request.GET.get("interval", "").strip()
        zone = request.GET.get("timezone", "UTC").strip() or "UTC"
        try:
            tz = zoneinfo.ZoneInfo(zone)
            now = timezone.now()
            if expression and interval:
                raise ValueError("give either a crontab expression or an interval, not both")
            if expression:
                runs = Crontab.parse(expression, tz=zone).next_runs(now, 5)
            elif interval:
                try:
                    seconds = float(interval)
                except ValueError:
                    raise ValueError(f"the interval must be a number of seconds, got {interval[:40]!r}") from None
                validate_interval(seconds)
                runs = [now + dt.timedelta(seconds=seconds * (i + 1)) for i in range(5)]
            else:
                runs = []  # nothing typed yet: an empty preview, not an error
        except ValidationError as exc:
            return JsonResponse({"error": exc.messages[0]}, status=400)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            return JsonResponse({"error": str(exc) or f"unknown time zone {zone!r}"}, status=400)
        local = [run.astimezone(tz) for run in runs]
        return JsonResponse({"runs": [run.isoformat() for run in local], "labels": [human_time(run) for run in local]})

    def response_change(self, request: HttpRequest, obj: Schedule) -> HttpResponse:
        """Handle the change form's "run once now" button."""
        if "_run_once_now" in request.POST:
            self.run_once_now(request, Schedule.objects.filter(pk=obj.pk))
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        """Editing the timing makes the next tick count from now (no burst of "missed" ticks)."""
        if change and {"crontab", "interval", "timezone", "start_at"} & set(form.changed_data):
            obj.last_run_at = timezone.now()
        super().save_model(request, obj, form, change)


def _next_runs(obj: Schedule, count: int) -> tuple[list[dt.datetime], str | None]:
    """The next ``count`` ticks, or the reason they cannot be computed from the stored values."""
    problem = obj.stored_problem()
    if problem:
        return [], problem
    try:
        return obj.next_runs(count=count), None
    except (ValueError, ArithmeticError) as exc:
        return [], f"{type(exc).__name__}: {exc}"


def human_time(moment: dt.datetime) -> str:
    """``Mon 2026-12-07 07:00:00 CET``: a tick as the preview shows it (in the schedule's time zone)."""
    return moment.strftime("%a %Y-%m-%d %H:%M:%S %Z")


def _runs_html(runs: list[dt.datetime], zone: str) -> str:
    if not runs:
        return "no further runs"
    tz = zoneinfo.ZoneInfo(zone)
    return format_html(
        '<ol class="tasks-q-next-runs">{}</ol>',
        format_html_join("", "<li>{}</li>", ((human_time(run.astimezone(tz)),) for run in runs)),
    )
