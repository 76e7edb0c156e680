"""The dashboard: per queue what waits, runs and failed, the last hour and day, consumers, and two charts."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path
from django.utils import timezone

from ..conf import queues
from ..history.models import ConsumerHeartbeat, QueueMinute
from . import charts
from .access import APP, selected_queues
from .actions import action_view
from .base import AnchorAdmin

logger = logging.getLogger("django_tasks_q.admin")

DEFAULT_REFRESH = 10


def refresh_seconds(request: HttpRequest) -> int:
    """Seconds between reloads of the dashboard (``TASKS_Q_ADMIN_REFRESH``; ``?refresh=0`` pauses)."""
    if request.GET.get("refresh") == "0":
        return 0
    value = getattr(settings, "TASKS_Q_ADMIN_REFRESH", DEFAULT_REFRESH)
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def age_text(seconds: float | None) -> str:
    """``"42 s"``, ``"3 min"``, ``"2.5 h"``, ``"1.2 d"`` (empty for None)."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def queue_stats(name: str) -> dict[str, Any]:
    """Counts of one queue read through its hub; ``error`` when the storage cannot be reached."""
    hub = queues[name]
    stats: dict[str, Any] = {"name": name}
    try:
        stats.update(
            storage=type(hub.storage).__name__,
            pending=hub.pending_count(),
            scheduled=hub.scheduled_count(),
            in_flight=hub.in_flight_count(),
            dead=hub.dead_letter_count() if hub.supports_dead_letters else None,
            results=hub.result_count(),
            latency=hub.oldest_pending_age(),
        )
        stats["latency_text"] = age_text(stats["latency"])
    except Exception as exc:  # a storage that is down must not take the admin down with it
        logger.warning("admin: queue %r is unreachable: %s", name, exc)
        stats["error"] = f"{type(exc).__name__}: {exc}"
    return stats


def _sums(names: list[str], since: dt.datetime) -> dict[str, tuple[int, int]]:
    rows = (
        QueueMinute.objects.filter(queue__in=names, minute__gte=since)
        .values("queue")
        .annotate(ok=Sum("succeeded"), failed=Sum("failed"))
    )
    return {row["queue"]: (row["ok"] or 0, row["failed"] or 0) for row in rows}


def _rate(ok: int, failed: int) -> float | None:
    return None if not ok + failed else 100.0 * failed / (ok + failed)


def charts_for(names: list[str], now: dt.datetime) -> dict[str, Any]:
    """Throughput per minute and queue depth over the last hour (summed over ``names``)."""
    end = now.replace(second=0, microsecond=0)
    minutes = [end - dt.timedelta(minutes=59 - i) for i in range(60)]
    labels = [timezone.localtime(minute).strftime("%H:%M") for minute in minutes]
    per_minute = {
        row["minute"]: row
        for row in QueueMinute.objects.filter(queue__in=names, minute__gte=minutes[0])
        .values("minute")
        .annotate(
            ok=Sum("succeeded"),
            failed=Sum("failed"),
            pending=Sum("pending"),
            scheduled=Sum("scheduled"),
            in_flight=Sum("in_flight"),
        )
    }
    empty: dict[str, Any] = {}
    rows: list[Mapping[str, Any]] = [per_minute.get(minute, empty) for minute in minutes]
    throughput = charts.stacked_bars(
        "tq-chart-throughput",
        "Tasks finished per minute, last hour",
        labels,
        {"ok": [row.get("ok") or 0 for row in rows], "failed": [row.get("failed") or 0 for row in rows]},
    )
    depth = charts.lines(
        "tq-chart-depth",
        "Queue depth, last hour",
        labels,
        {key: [row.get(key) for row in rows] for key in ("pending", "scheduled", "in_flight")},
    )
    return {"throughput_chart": throughput, "depth_chart": depth}


LIVE_FIELDS = ("pending", "scheduled", "in_flight", "dead", "results", "latency_text", "hour", "rate_hour", "day",
               "rate_day", "consumers")  # fmt: skip
"""The numbers of a queue row that the page refreshes in place (each cell has ``data-live="<field>"``)."""


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1f} %"


def live_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """One queue row as text, exactly as the page shows it, for the JSON endpoint."""
    if "error" in row:
        return {"name": row["name"], "error": f"unreachable: {row['error']}"}
    return {
        "name": row["name"],
        "pending": row["pending"],
        "scheduled": row["scheduled"],
        "in_flight": row["in_flight"],
        "dead": "n/a" if row["dead"] is None else row["dead"],
        "results": row["results"],
        "latency_text": row["latency_text"] or "—",
        "hour": f"{row['ok_hour']} / {row['failed_hour']}",
        "rate_hour": _percent(row["rate_hour"]),
        "day": f"{row['ok_day']} / {row['failed_day']}",
        "rate_day": _percent(row["rate_day"]),
        "consumers": row["consumers"],
    }


def dashboard_data(names: list[str]) -> dict[str, Any]:
    """Everything the dashboard shows for ``names``: queue rows, consumers alive, charts, the time."""
    now = timezone.now()
    hour, day = _sums(names, now - dt.timedelta(hours=1)), _sums(names, now - dt.timedelta(days=1))
    recent = ConsumerHeartbeat.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=now - dt.timedelta(hours=1))
    consumers = [beat for beat in recent if beat.is_alive(now)]
    rows = []
    for name in names:
        stats = queue_stats(name)
        ok_h, failed_h = hour.get(name, (0, 0))
        ok_d, failed_d = day.get(name, (0, 0))
        stats.update(
            ok_hour=ok_h, failed_hour=failed_h, rate_hour=_rate(ok_h, failed_h),
            ok_day=ok_d, failed_day=failed_d, rate_day=_rate(ok_d, failed_d),
        )  # fmt: skip
        stats["consumers"] = sum(name in beat.queues.split(", ") for beat in consumers)
        rows.append(stats)
    return {"rows": rows, "consumers": consumers, "now": now, **charts_for(names, now)}


class QueueOverviewAdmin(AnchorAdmin):
    """The dashboard page and its live numbers (JSON); also mounts the action URLs."""

    template = "admin/django_tasks_q/dashboard.html"
    title = "Task queues"

    def extra_urls(self) -> list[URLPattern]:
        return [
            path(
                "action/<slug:name>/",
                self.admin_site.admin_view(lambda request, name: action_view(request, name, self.admin_site)),
                name=f"{APP}_action",
            ),
            path("live/", self.admin_site.admin_view(self.live_view), name=f"{APP}_queueoverview_live"),
        ]

    def page(self, request: HttpRequest) -> dict[str, Any]:
        _queue, names = selected_queues(request)
        return {**dashboard_data(names), "refresh": refresh_seconds(request)}

    def live_view(self, request: HttpRequest) -> JsonResponse:
        """The dashboard's numbers and charts as JSON (the page polls it; same permission as the page)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        _queue, names = selected_queues(request)
        data = dashboard_data(names)
        return JsonResponse({
            "updated": timezone.localtime(data["now"]).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "queues": [live_numbers(row) for row in data["rows"]],
            "consumers_alive": len(data["consumers"]),
            "charts": {"throughput": str(data["throughput_chart"]), "depth": str(data["depth_chart"])},
        })  # fmt: skip
