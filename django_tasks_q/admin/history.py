"""Task history (a real model) and consumers (their heartbeats), as read-only ModelAdmins.

The history detail page adds what the hub knows now: the stored result (only if it verifies), the progress
the task reported, and whether the call is revoked; and the actions that apply (retry, revoke, restore,
delete the result).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..conf import queues
from ..history.models import ConsumerHeartbeat, TaskHistory
from ..result import NO_RESULT, StoredError
from ..task import Task
from .access import APP, breadcrumbs, log_action, queue_names, user_perms
from .actions import Params, _retry
from .base import SafeListMixin, action_urls, admin_nav


class QueueFilter(admin.SimpleListFilter):
    """Filter history rows by queue (the configured queues plus any seen in the rows)."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        seen = set(TaskHistory.objects.values_list("queue", flat=True).distinct()[:200])
        return [(name, name) for name in sorted(seen | set(queue_names()))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(queue=self.value()) if self.value() else queryset


def full_time(value: dt.datetime | None) -> str:
    """``2026-12-03 07:24:29`` in the current time zone, as the other pages show times (empty for None)."""
    return "" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def pretty_json(text: str) -> str:
    """Indented JSON for the detail page (the text as it is when it is not JSON)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text


class ReadOnlyListAdmin(SafeListMixin, admin.ModelAdmin):
    """A ModelAdmin of rows the package writes: nobody adds or edits them; the list has the tasks admin's menu."""

    list_title = ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The list under ``list_title``, with the tasks admin's page menu."""
        context = {"title": self.list_title, **(extra_context or {}), "nav": admin_nav(self.admin_site.name)}
        return super().changelist_view(request, context)


@admin.register(TaskHistory)
class TaskHistoryAdmin(ReadOnlyListAdmin):
    """One row per task call: filter by status, queue, task and date; search by id and name."""

    # What fits beside the filter panel in a 1,400 px window; enqueue and start times, the worker, arguments
    # and errors are on each call's detail page.
    list_display = ("short_id", "name", "queue", "status_badge", "attempts", "finished", "duration_text")
    list_filter = ("status", QueueFilter, "name", "created_at")
    search_fields = ("=task_id", "task_id", "name")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False
    actions = ["retry_selected"]
    list_title = "Task history"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whether the user may enqueue failed or finished calls again."""
        return request.user.has_perm(f"{APP}.retry_task")

    @admin.display(description="status", ordering="status")
    def status_badge(self, row: TaskHistory) -> str:
        return format_html('<span class="tq-status tq-status-{}">{}</span>', row.status, row.get_status_display())

    @admin.display(description="task id", ordering="task_id")
    def short_id(self, row: TaskHistory) -> str:
        return format_html('<span class="tq-code tq-nowrap" title="{}">{}</span>', row.task_id, row.task_id[:8])

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, row: TaskHistory) -> str:
        return format_html('<span class="tq-nowrap">{}</span>', full_time(row.finished_at))

    @admin.display(description="duration", ordering="duration")
    def duration_text(self, row: TaskHistory) -> str:
        if row.duration is None:
            return ""
        return f"{row.duration * 1000:.0f} ms" if row.duration < 1 else f"{row.duration:.2f} s"

    @admin.action(description="Retry the selected tasks (enqueue them again)", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        params = Params("", None, [str(pk) for pk in queryset.values_list("pk", flat=True)[:500]])
        text = _retry(params)
        for note in params.notes:
            messages.warning(request, note)
        messages.success(request, text)
        log_action(request, "history", "task history", f"retry: {text}", ADDITION)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
        """The detail page of one call (read-only), with what the hub knows about it now."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        row = self.get_object(request, object_id)
        if row is None:
            raise Http404("no such history row")
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{row.name} {row.task_id}",
            "row": row,
            "args_text": pretty_json(row.args),
            "kwargs_text": pretty_json(row.kwargs),
            "result_text": pretty_json(row.result) if row.result else "",
            "perms_q": user_perms(request),
            "action_urls": action_urls(self.admin_site.name),
            "next_url": request.get_full_path(),
            "nav": admin_nav(self.admin_site.name),
            "tq_breadcrumbs": breadcrumbs(
                self.admin_site.name,
                ("Task history", reverse(f"{self.admin_site.name}:{APP}_taskhistory_changelist")),
                row.task_id,
            ),
            **self._live(row),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_tasks_q/history_detail.html", context)

    def _live(self, row: TaskHistory) -> dict[str, Any]:
        if row.queue not in queue_names():
            return {"live_error": f"queue {row.queue!r} is not configured any more"}
        hub = queues[row.queue]
        live: dict[str, Any] = {"configured": True}
        try:
            live["progress"] = hub.get_progress(row.task_id)
        except Exception as exc:  # a record that does not verify is not shown
            live["progress_error"] = f"{type(exc).__name__}: {exc}"
        try:
            stored = hub.peek_result(row.task_id)
            live["revoked"] = hub.is_revoked(Task(row.name, id=row.task_id))
        except Exception as exc:
            live["live_error"] = f"{type(exc).__name__}: {exc}"
            return live
        if stored is NO_RESULT:
            live["stored"] = None
        elif isinstance(stored, StoredError):
            live["stored"] = "error: " + str(stored.metadata.get("error", ""))
        else:
            live["stored"] = json.dumps(stored, indent=2, ensure_ascii=False, default=repr)
        live["has_stored"] = stored is not NO_RESULT
        return live


@admin.register(ConsumerHeartbeat)
class ConsumerHeartbeatAdmin(ReadOnlyListAdmin):
    """Running (and recently stopped) consumers, from their heartbeats."""

    list_display = ("host", "pid", "queues", "workers_text", "started", "last_beat", "tasks_run", "alive")
    list_filter = ("host",)
    search_fields = ("identity", "host", "queues")
    list_title = "Consumers"

    @admin.display(description="workers", ordering="workers")
    def workers_text(self, beat: ConsumerHeartbeat) -> str:
        return f"{beat.workers} {beat.worker_type}"

    @admin.display(description="started", ordering="started_at")
    def started(self, beat: ConsumerHeartbeat) -> str:
        return format_html('<span class="tq-nowrap">{}</span>', full_time(beat.started_at))

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def last_beat(self, beat: ConsumerHeartbeat) -> str:
        return format_html('<span class="tq-nowrap">{}</span>', full_time(beat.last_heartbeat))

    @admin.display(description="alive", boolean=True)
    def alive(self, beat: ConsumerHeartbeat) -> bool:
        return beat.is_alive(timezone.now())
