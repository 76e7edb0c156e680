"""Registered tasks (and the form that enqueues one), periodic tasks, and locks with rate limits.

The run form never takes a dotted path or code: the task is picked from the queue's registry, the
arguments are JSON, and they are checked against the function's signature by the hub before anything is
written.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.models import ADDITION
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from ..conf import consumer_options
from ..exceptions import TasksQError
from ..history.models import TaskHistory
from .access import APP, SCAN_LIMIT, get_hub, log_action, require_perm, selected_hubs
from .base import AnchorAdmin, refuse_json_constant

NEXT_RUNS = 5


def plain(wrapper: Any) -> dict[str, Any]:
    """What a page shows of a task, as plain data: a TaskWrapper must never reach a template, which would
    call it (and so enqueue the task)."""
    return {name: getattr(wrapper, name) for name in ("name", "path", "retries", "retry_delay", "priority", "timeout")}


def signature_text(wrapper: Any) -> str:
    """The task function's parameters, as Python shows them."""
    try:
        return str(inspect.signature(wrapper.func))
    except (TypeError, ValueError):
        return "(…)"


class RunTaskForm(forms.Form):
    """Enqueue a registered task of one queue with JSON arguments."""

    task = forms.ChoiceField(label="Task")
    args = forms.CharField(label="Arguments (a JSON list)", required=False, initial="[]",
                           widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))  # fmt: skip
    kwargs = forms.CharField(label="Keyword arguments (a JSON object)", required=False, initial="{}",
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))  # fmt: skip
    delay = forms.FloatField(label="Delay (seconds)", required=False, min_value=0)
    priority = forms.IntegerField(required=False)

    def __init__(self, hub: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub
        task_field = self.fields["task"]
        assert isinstance(task_field, forms.ChoiceField)
        task_field.choices = [(name, name) for name in hub.registry.names()]

    def _json(self, field: str, kind: type, empty: Any) -> Any:
        text = (self.cleaned_data.get(field) or "").strip()
        if not text:
            return empty
        try:
            value = json.loads(text, parse_constant=refuse_json_constant)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        except RecursionError:
            raise forms.ValidationError("not usable: the JSON is nested too deeply") from None
        if not isinstance(value, kind):
            raise forms.ValidationError(f"must be a JSON {'list' if kind is list else 'object'}")
        return value

    def clean_args(self) -> list[Any]:
        """The arguments, a JSON list."""
        return self._json("args", list, [])

    def clean_kwargs(self) -> dict[str, Any]:
        """The keyword arguments, a JSON object."""
        return self._json("kwargs", dict, {})

    def options(self) -> dict[str, Any]:
        """Call options given in the form."""
        options = {}
        if self.cleaned_data.get("delay") is not None:
            options["delay"] = self.cleaned_data["delay"]
        if self.cleaned_data.get("priority") is not None:
            options["priority"] = self.cleaned_data["priority"]
        return options

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        name = data.get("task")
        if name and "args" in data and "kwargs" in data:
            try:
                call = self.hub.build_task(self.hub.registry.get(name), tuple(data["args"]), data["kwargs"],
                                           **self.options())  # fmt: skip
                # Encoding now finds what only the queue would refuse: over the size limit, not serializable.
                self.hub.serialize_task(call)
            except TasksQError as exc:
                raise forms.ValidationError(str(exc)) from None
            except RecursionError:
                raise forms.ValidationError("the arguments are nested too deeply to be serialized") from None
        return data


class RegisteredTaskAdmin(AnchorAdmin):
    """Every registered task of every queue, and the form to enqueue one."""

    template = "admin/django_tasks_q/registered.html"
    title = "Registered tasks"

    def extra_urls(self) -> list[URLPattern]:
        return [path("run/", self.admin_site.admin_view(self.run_view), name=f"{APP}_registeredtask_run")]

    def page(self, request: HttpRequest) -> dict[str, Any]:
        groups = []
        for name, hub in selected_hubs(request):
            tasks = []
            for task_name in hub.registry.names():
                wrapper = hub.registry.get(task_name)
                tasks.append({"task": plain(wrapper), "signature": signature_text(wrapper),
                              "periodic": wrapper.validate_datetime is not None})  # fmt: skip
            groups.append({"queue": name, "tasks": tasks})
        return {"groups": groups}

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the form; POST (``enqueue_task`` permission): validate and enqueue."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        hub = get_hub(request.GET.get("queue") or request.POST.get("queue"))
        if request.method == "POST":
            require_perm(request, "enqueue_task")
            form = RunTaskForm(hub, request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    result = hub.enqueue_call(data["task"], data["args"], data["kwargs"], **form.options())
                except TasksQError as exc:
                    form.add_error(None, f"not enqueued: {exc}")
                else:
                    task_id = result.id if result is not None else "?"
                    text = f"Enqueued {data['task']} on queue {hub.name!r} as {task_id}."
                    messages.success(request, text)
                    log_action(request, task_id, f"{data['task']} {task_id}", text, ADDITION)
                    return HttpResponseRedirect(reverse(f"{self.admin_site.name}:{APP}_registeredtask_changelist"))
        else:
            form = RunTaskForm(hub, initial={"task": request.GET.get("task", "")})
        return self.render(request, "admin/django_tasks_q/run_task.html",
                           {"form": form, "run_queue": hub.name, "title": f"Run a task on {hub.name}"})  # fmt: skip


def _zone_now(hub: Any) -> dt.datetime:
    now = timezone.now()
    return now if hub.utc else now.astimezone()


class PeriodicTaskAdmin(AnchorAdmin):
    """Periodic tasks: schedule, zone, last run, the next runs, and whether they are enabled."""

    template = "admin/django_tasks_q/periodic.html"
    title = "Periodic tasks"

    def page(self, request: HttpRequest) -> dict[str, Any]:
        rows, errors = [], []
        for name, hub in selected_hubs(request):
            periodic = hub.registry.periodic()
            if not periodic:
                continue
            last_runs = dict(
                TaskHistory.objects.filter(queue=name, name__in=[w.path for w in periodic])
                .values_list("name")
                .annotate(last=Max("started_at"))
            )
            try:
                consumer_periodic = consumer_options(name).get("periodic", True)
            except TasksQError as exc:
                errors.append(f"{name}: {exc}")
                consumer_periodic = True
            for wrapper in periodic:
                schedule = wrapper.validate_datetime
                now = _zone_now(hub)
                try:
                    next_runs = schedule.next_runs(now, NEXT_RUNS) if hasattr(schedule, "next_runs") else None
                    revoked = hub.is_revoked(wrapper)
                except Exception as exc:
                    errors.append(f"{name}: {wrapper.path}: {type(exc).__name__}: {exc}")
                    next_runs, revoked = None, None
                zone = getattr(schedule, "tz_name", None) or ("UTC" if hub.utc else "local time")
                rows.append({
                    "queue": name, "task": plain(wrapper), "schedule": str(schedule), "zone": zone,
                    "last_run": last_runs.get(wrapper.path), "next_runs": next_runs, "revoked": revoked,
                    "enabled": consumer_periodic and revoked is False, "consumer_periodic": consumer_periodic,
                })  # fmt: skip
        return {"rows": rows, "errors": errors}


class LockEntryAdmin(AnchorAdmin):
    """Locks held, unique-task keys held and rate limits in use, per queue."""

    template = "admin/django_tasks_q/locks.html"
    title = "Locks, unique keys and rate limits"

    def page(self, request: HttpRequest) -> dict[str, Any]:
        groups, errors = [], []
        for name, hub in selected_hubs(request):
            try:
                groups.append({
                    "queue": name, "locks": hub.locks_held(), "unique_keys": hub.unique_keys_held(SCAN_LIMIT),
                    "rate_limits": hub.rate_limit_usage(),
                })  # fmt: skip
            except Exception as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return {"groups": groups, "errors": errors, "scan_limit": SCAN_LIMIT}
