"""Prometheus metrics: a protected text endpoint (no extra dependency) and a ``prometheus_client`` collector.

.. code-block:: python

    # urls.py
    urlpatterns += [path("metrics/tasks", include("django_tasks_q.metrics"))]

    # or, in an exporter of your own (pip install django-tasks-q[metrics])
    from prometheus_client import REGISTRY
    from django_tasks_q.metrics import TasksQCollector
    REGISTRY.register(TasksQCollector())

Its public path is :mod:`django_tasks_q.metrics`, which exports the names a site uses.

``metrics_view`` answers requests carrying ``Authorization: Bearer <TASKS_Q_METRICS_TOKEN>`` (when that
setting is set) and logged-in users holding the ``django_tasks_q.view_metrics`` permission; it answers 401
(with ``WWW-Authenticate: Bearer``) to a request without credentials or with a wrong token, and 403 to a user
without the permission. Both the endpoint and :class:`TasksQCollector` expose what :func:`families` reads:

* gauges per queue (label ``queue``), read through the hub: pending, scheduled, in flight, dead letters,
  stored results, age of the oldest pending task, live consumers, whether the storage answered;
* ``tasks_q_tasks_total`` (labels ``queue``, ``outcome``) and the histogram ``tasks_q_task_duration_seconds``
  (label ``queue``), summed over the per-minute counters the consumers record
  (:class:`~django_tasks_q.history.models.QueueMinute`, totals rows included, so they never go down).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..conf import configured_queues
from ..timeutils import now_utc
from .health import snapshot

if TYPE_CHECKING:
    import datetime as dt

    from prometheus_client.core import Metric

logger = logging.getLogger("django_tasks_q.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PERMISSION = "django_tasks_q.view_metrics"
"""The permission that lets a logged-in user read the metrics (superusers have every permission)."""


@dataclass(frozen=True)
class Histogram:
    """One histogram: cumulative counts by upper bound (seconds; ``+Inf`` is ``count``), the count and the sum."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


@dataclass(frozen=True)
class Family:
    """One metric family: its name (a counter's without ``_total``), kind, help text and label names, and
    its samples as (label values, value) pairs — a :class:`Histogram` as the value of a histogram's."""

    name: str
    kind: Literal["gauge", "counter", "histogram"]
    help: str
    labels: tuple[str, ...] = ("queue",)
    samples: tuple[tuple[tuple[str, ...], float | Histogram], ...] = ()


GAUGES = (
    ("pending", Family("tasks_q_pending", "gauge", "Tasks waiting in the queue.")),
    ("scheduled", Family("tasks_q_scheduled", "gauge", "Tasks waiting for their eta.")),
    ("in_flight", Family("tasks_q_in_flight", "gauge", "Tasks reserved by a worker.")),
    ("dead_letters", Family("tasks_q_dead_letters", "gauge", "Messages given up on.")),
    ("results", Family("tasks_q_results", "gauge", "Results stored.")),
    (
        "oldest_pending_age",
        Family("tasks_q_oldest_pending_seconds", "gauge", "Age of the oldest pending task."),
    ),
    ("consumers_alive", Family("tasks_q_consumers_alive", "gauge", "Consumers with a recent heartbeat.")),
)
"""The :class:`~django_tasks_q.history.health.QueueHealth` attribute behind each gauge."""
UP = Family("tasks_q_up", "gauge", "Whether the queue's storage answered (1) or not (0).")
TASKS = Family(
    "tasks_q_tasks",
    "counter",
    "Task calls by outcome (a failed run that is retried counts as failed and as retried).",
    ("queue", "outcome"),
)
DURATION = Family(
    "tasks_q_task_duration_seconds", "histogram", "How long task runs took (succeeded or failed)."
)
FAMILIES = (*(family for _attr, family in GAUGES), UP, TASKS, DURATION)
"""Every family exposed, without samples."""


def families(now: dt.datetime | None = None) -> list[Family]:
    """Every family with its samples for every configured queue.

    Each storage is read once; the database answers the heartbeats and, in one query, the counters.

    The counter and the histogram are left out when the per-minute table cannot be read (the app is not
    installed or the database failed; logged).
    """
    now = now or now_utc()
    names = list(configured_queues())
    healths = [snapshot(name, now) for name in names]
    found = [
        replace(
            family,
            samples=tuple(((h.queue,), getattr(h, attr)) for h in healths if getattr(h, attr) is not None),
        )
        for attr, family in GAUGES
    ]
    found.append(replace(UP, samples=tuple(((h.queue,), 0 if h.error else 1) for h in healths)))
    totals = _totals(names)
    if totals is None:
        return found
    from .models import QueueMinute

    found.append(
        replace(
            TASKS,
            samples=tuple(
                ((name, outcome), int(totals.get(name, {}).get(outcome) or 0))
                for name in names
                for outcome in QueueMinute.OUTCOMES
            ),
        )
    )
    histograms = []
    for name in names:
        row = totals.get(name, {})
        buckets = tuple((bound, int(row.get(field) or 0)) for bound, field in QueueMinute.DURATION_BUCKETS)
        histogram = Histogram(
            buckets, int(row.get("duration_count") or 0), float(row.get("duration_sum") or 0.0)
        )
        histograms.append(((name,), histogram))
    found.append(replace(DURATION, samples=tuple(histograms)))
    return found


def _totals(names: list[str]) -> dict[str, dict[str, Any]] | None:
    """Each queue's counters summed over its minute rows (None when they cannot be read)."""
    if not apps.is_installed("django_tasks_q"):
        return None
    from .models import QueueMinute

    try:
        rows = (
            QueueMinute.objects.filter(queue__in=names)
            .values("queue")
            .annotate(**{field: Sum(field) for field in QueueMinute.COUNTERS})
            .order_by()
        )
        return {row["queue"]: {key: value for key, value in row.items() if key != "queue"} for row in rows}
    except DatabaseError as exc:
        logger.warning("metrics: could not read the task counters: %s: %s", type(exc).__name__, exc)
        return None


def render_metrics(now: dt.datetime | None = None) -> str:
    """Every family of :func:`families` in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for family in families(now):
        name = f"{family.name}_total" if family.kind == "counter" else family.name
        lines += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.kind}"]
        for values, value in family.samples:
            labels = dict(zip(family.labels, values, strict=True))
            if isinstance(value, Histogram):
                for bound, count in (
                    *((repr(bound), n) for bound, n in value.buckets),
                    ("+Inf", value.count),
                ):
                    lines.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {count}")
                lines.append(f"{name}_count{_labels(labels)} {value.count}")
                lines.append(f"{name}_sum{_labels(labels)} {float(value.sum)!r}")
            else:
                lines.append(
                    f"{name}{_labels(labels)} {value if isinstance(value, int) else repr(float(value))}"
                )
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


class TasksQCollector:
    """A ``prometheus_client`` collector of the families of :func:`families` (``pip install django-tasks-q[metrics]``).

    ``REGISTRY.register(TasksQCollector())`` adds them to an exporter of your own; each scrape reads what
    :func:`families` reads. ``prometheus_client`` is imported only when collecting or describing.
    """

    def collect(self) -> Iterator[Metric]:
        """The families with their current samples."""
        return (_to_prometheus(family) for family in families())

    def describe(self) -> Iterator[Metric]:
        """The families without samples (what a registry checks for name clashes); reads nothing."""
        return (_to_prometheus(family) for family in FAMILIES)


def _to_prometheus(family: Family) -> Metric:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    kinds = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily, "histogram": HistogramMetricFamily}
    metric = kinds[family.kind](family.name, family.help, labels=family.labels)
    for values, value in family.samples:
        if isinstance(value, Histogram):
            buckets = [*((repr(bound), count) for bound, count in value.buckets), ("+Inf", value.count)]
            metric.add_metric(values, buckets, value.sum)
        else:
            metric.add_metric(values, value)
    return metric


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in the text format, for the bearer token ``TASKS_Q_METRICS_TOKEN`` or a user with
    ``django_tasks_q.view_metrics``; 401 without credentials or with a wrong token, 403 without the permission."""
    header = request.headers.get("Authorization", "")
    scheme, _space, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        token: Any = getattr(settings, "TASKS_Q_METRICS_TOKEN", None)
        if not token or not hmac.compare_digest(credentials.strip().encode(), str(token).encode()):
            return _unauthorized('error="invalid_token"')
    else:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _unauthorized()
        if not user.has_perm(PERMISSION):
            return HttpResponse(
                f"metrics need the {PERMISSION} permission\n", status=403, content_type="text/plain"
            )
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)


def _unauthorized(*details: str) -> HttpResponse:
    response = HttpResponse(
        f"metrics need the TASKS_Q_METRICS_TOKEN bearer token or a login with the {PERMISSION} permission\n",
        status=401,
        content_type="text/plain",
    )
    response["WWW-Authenticate"] = ", ".join(['Bearer realm="django-tasks-q metrics"', *details])
    return response


urlpatterns = [path("", metrics_view, name="tasks_q_metrics")]
"""For ``path("metrics/tasks", include("django_tasks_q.metrics"))``."""
