"""Prometheus metrics in the text exposition format, without extra dependencies.

.. code-block:: python

    # urls.py
    from django_tasks_q.metrics import metrics_view
    urlpatterns += [path("metrics/tasks", metrics_view)]

``metrics_view`` answers only staff users, or requests carrying
``Authorization: Bearer <TASKS_Q_METRICS_TOKEN>`` when that setting is set.
Gauges per queue: pending, scheduled, in flight, dead letters, stored results,
oldest pending age, live consumers; counters per queue from the per-minute
history: tasks succeeded and failed in the last hour.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

from .conf import configured_queues
from .health import QueueHealth, snapshot
from .timeutils import now_utc

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

GAUGES = (
    ("pending", "tasks_q_pending", "Tasks waiting in the queue."),
    ("scheduled", "tasks_q_scheduled", "Tasks waiting for their eta."),
    ("in_flight", "tasks_q_in_flight", "Tasks reserved by a worker."),
    ("dead_letters", "tasks_q_dead_letters", "Messages given up on."),
    ("results", "tasks_q_results", "Results stored."),
    ("oldest_pending_age", "tasks_q_oldest_pending_seconds", "Age of the oldest pending task."),
    ("consumers_alive", "tasks_q_consumers_alive", "Consumers with a recent heartbeat."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(now: dt.datetime | None = None) -> str:
    """Every metric of every configured queue, as Prometheus text."""
    now = now or now_utc()
    healths = [snapshot(name, now) for name in configured_queues()]
    lines: list[str] = []
    for attr, metric, help_text in GAUGES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for health in healths:
            value = getattr(health, attr)
            if value is not None:
                lines.append(f'{metric}{{queue="{_label(health.queue)}"}} {float(value):g}')
    lines += ["# HELP tasks_q_up Whether the queue's storage answered.", "# TYPE tasks_q_up gauge"]
    lines += [f'tasks_q_up{{queue="{_label(h.queue)}"}} {0 if h.error else 1}' for h in healths]
    lines += _last_hour(healths, now)
    return "\n".join(lines) + "\n"


def _last_hour(healths: list[QueueHealth], now: dt.datetime) -> list[str]:
    try:
        from django.db.models import Sum

        from .history import QueueMinute

        totals = {
            row["queue"]: row
            for row in QueueMinute.objects.filter(minute__gte=now - dt.timedelta(hours=1))
            .values("queue")
            .annotate(succeeded=Sum("succeeded"), failed=Sum("failed"))
        }
    except Exception:
        return []
    lines = [
        "# HELP tasks_q_finished_last_hour Tasks that finished in the last hour, by outcome.",
        "# TYPE tasks_q_finished_last_hour gauge",
    ]
    for health in healths:
        row = totals.get(health.queue, {})
        for outcome in ("succeeded", "failed"):
            lines.append(
                f'tasks_q_finished_last_hour{{queue="{_label(health.queue)}",outcome="{outcome}"}} '
                f"{row.get(outcome) or 0}"
            )
    return lines


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics page: staff users, or a bearer token equal to ``TASKS_Q_METRICS_TOKEN``."""
    if not _allowed(request):
        return HttpResponseForbidden("metrics need a staff login or the TASKS_Q_METRICS_TOKEN bearer token\n")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)


def _allowed(request: HttpRequest) -> bool:
    token: Any = getattr(settings, "TASKS_Q_METRICS_TOKEN", None)
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].encode(), str(token).encode())
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)
