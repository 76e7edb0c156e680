"""Pages of what sits in the storages: pending, scheduled, in flight and dead letters (read through the hub).

A message is shown decoded only when the hub's codec verified it (:meth:`TaskQueue.inspect_message`);
anything else is shown as a ``peek_raw`` preview with the reason it was refused. Templates escape all text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from ..conf import queues
from ..history.models import TaskHistory, TaskStatus
from ..hub.inspection import MessageView
from ..timeutils import from_epoch
from .access import SCAN_LIMIT, selected_queues
from .base import PER_PAGE, AnchorAdmin, page_number, window

TEXT_PREVIEW = 300


def short_json(value: Any, limit: int = TEXT_PREVIEW) -> str:
    """Arguments as JSON text for a list cell (``repr`` for what JSON cannot show), cut to ``limit``."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"


def matches(view: MessageView, query: str) -> bool:
    """Whether a message's task path or id contains ``query`` (case-insensitive)."""
    if not query:
        return True
    if view.task is None:
        return False
    query = query.lower()
    return query in view.task.path.lower() or query in view.task.id.lower()


def describe(hub: Any, queue: str, view: MessageView) -> dict[str, Any]:
    """A list row for one stored message."""
    row: dict[str, Any] = {"queue": queue, "view": view, "task": view.task}
    if view.task is not None:
        task = view.task
        row["args"] = short_json(list(task.args))
        row["kwargs"] = short_json(task.kwargs)
        try:
            row["revoked"] = hub.is_revoked(task)
        except Exception:
            row["revoked"] = None
    return row


class MessageListAdmin(AnchorAdmin):
    """Pending or scheduled messages of one or all queues: paged, searchable, with actions."""

    template = "admin/django_tasks_q/messages.html"
    kind = "pending"

    def fetch(self, hub: Any, limit: int) -> list[MessageView]:
        """Up to ``limit`` messages of this page's kind (``pending_entries`` or ``scheduled_entries``)."""
        return getattr(hub, f"{self.kind}_entries")(limit)

    def count(self, hub: Any) -> int:
        """How many messages of this page's kind the queue holds."""
        return getattr(hub, f"{self.kind}_count")()

    def page(self, request: HttpRequest) -> dict[str, Any]:
        _queue, names = selected_queues(request)
        query = request.GET.get("q", "").strip()
        number = page_number(request)
        items: list[tuple[str, Any, MessageView]] = []
        total, truncated, errors = 0, False, []
        for name in names:
            hub = queues[name]
            try:
                count = self.count(hub)
                entries = self.fetch(hub, SCAN_LIMIT if query else min(SCAN_LIMIT, number * PER_PAGE))
            except Exception as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            truncated = truncated or count > SCAN_LIMIT
            if query:
                entries = [entry for entry in entries if matches(entry, query)]
                total += len(entries)
            else:
                total += min(count, SCAN_LIMIT)
            items.extend((name, hub, entry) for entry in entries)
        page = window(items, number, total, truncated)
        page.items = [describe(hub, name, view) for name, hub, view in page.items]
        return {"kind": self.kind, "page": page, "query": query, "errors": errors, "scan_limit": SCAN_LIMIT}


class PendingTaskAdmin(MessageListAdmin):
    """Messages waiting in the queues."""

    title = "Pending tasks"


class ScheduledTaskAdmin(MessageListAdmin):
    """Messages waiting for their eta."""

    title = "Scheduled tasks"
    kind = "scheduled"


def _collect(names: list[str], read: Callable[[Any], list[Any]]) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    items: list[tuple[str, Any, Any]] = []
    errors: list[str] = []
    for name in names:
        hub = queues[name]
        try:
            items.extend((name, hub, item) for item in read(hub))
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return items, errors


class InFlightTaskAdmin(AnchorAdmin):
    """Reservations held by workers: holder, start, lease deadline, attempt."""

    template = "admin/django_tasks_q/in_flight.html"
    title = "Tasks in flight"

    def page(self, request: HttpRequest) -> dict[str, Any]:
        _queue, names = selected_queues(request)
        items, errors = _collect(names, lambda hub: hub.in_flight(SCAN_LIMIT))
        page = window(items, page_number(request))
        rows = []
        for name, hub, reservation in page.items:
            view = hub.inspect_message(reservation.data)
            rows.append(
                {
                    "queue": name,
                    "reservation": reservation,
                    "view": view,
                    "task": view.task,
                    "args": short_json(list(view.task.args)) if view.task else "",
                    "reserved_at": from_epoch(reservation.reserved_at),
                    "deadline": from_epoch(reservation.deadline),
                }
            )
        holders = _holders([row for row in rows if row["task"] is not None])
        now = timezone.now()
        for row in rows:
            row["holder"] = holders.get((row["queue"], row["task"].id)) if row["task"] else None
            row["overdue"] = row["deadline"] < now
        page.items = rows
        return {"page": page, "errors": errors}


def _holders(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The worker of each running call, from the task history (empty when history is off)."""
    ids = [row["task"].id for row in rows]
    if not ids:
        return {}
    found = TaskHistory.objects.filter(task_id__in=ids, status=TaskStatus.RUNNING).values_list("queue", "task_id", "worker")
    return {(queue, task_id): worker for queue, task_id, worker in found}


class DeadLetterEntryAdmin(AnchorAdmin):
    """Dead letters: reason, attempts, time, and the message (decoded only when it verifies)."""

    template = "admin/django_tasks_q/dead_letters.html"
    title = "Dead letters"

    def page(self, request: HttpRequest) -> dict[str, Any]:
        _queue, names = selected_queues(request)
        query = request.GET.get("q", "").strip().lower()
        items, errors = _collect(names, lambda hub: hub.dead_letters(SCAN_LIMIT))
        unsupported = [name for name in names if not queues[name].supports_dead_letters]
        if query:  # search needs every letter decoded (when it verifies); otherwise only the page shown
            items = [
                item for item in items
                if query in item[2].id.lower() or query in item[2].reason.lower()
                or matches(item[1].inspect_message(item[2].data), query)
            ]  # fmt: skip
        page = window(items, page_number(request))
        page.items = [
            {"queue": name, "letter": letter, "view": (view := hub.inspect_message(letter.data)), "task": view.task}
            for name, hub, letter in page.items
        ]
        for row in page.items:
            row["failed_at"] = from_epoch(row["letter"].failed_at)
            row["preview"] = row["view"].preview
            if row["task"] is not None:
                row["args"] = short_json(list(row["task"].args))
        return {"page": page, "errors": errors, "unsupported": unsupported, "query": query}
