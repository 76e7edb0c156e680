"""Prometheus metrics: the families after real runs (parsed by prometheus_client), the collector, the endpoint's
protection and the totals surviving the pruning of old minutes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task
from django_tasks_q.history.models import QueueMinute
from django_tasks_q.history.writers import add_minute, prune
from django_tasks_q.metrics import TasksQCollector, render_metrics
from django_tasks_q.testing import drain
from tests.support.admin import Q2, Q, make_user, memory_settings, recording

pytestmark = pytest.mark.django_db

urlpatterns = [path("metrics/tasks", include("django_tasks_q.metrics"))]
URL = "/metrics/tasks"
GAUGES = (
    "tasks_q_pending", "tasks_q_scheduled", "tasks_q_in_flight", "tasks_q_dead_letters", "tasks_q_results",
    "tasks_q_oldest_pending_seconds", "tasks_q_consumers_alive", "tasks_q_up",
)  # fmt: skip
BOUNDS = [
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "10.0",
    "30.0",
    "60.0",
    "+Inf",
]

_calls: dict[str, int] = {}


@task(queue=Q, retries=1)
def wobbly(key: str, failures: int) -> str:
    """Fail ``failures`` times, then succeed."""
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] <= failures:
        raise RuntimeError(f"{key} failed")
    return key


@task(queue=Q)
def nap(seconds: float) -> float:
    """Sleep, then return."""
    time.sleep(seconds)
    return seconds


@pytest.fixture(autouse=True)
def memory(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()
    _calls.clear()


@pytest.fixture
def parse() -> Any:
    """prometheus_client's text parser (an optional dependency, in the ``test`` extra)."""
    return pytest.importorskip("prometheus_client.parser").text_string_to_metric_families


def run_some_tasks() -> None:
    """Through the hub, recorded: 4 succeeded, 2 failed runs (one retried), 1 revoked, 1 expired.

    The recorder's flush (``close_old_connections``) closes a connection that is inside a transaction: the tests
    calling this use ``transaction=True``, so that they run on PostgreSQL and MariaDB too.
    """
    hub = queues[Q]
    with recording(hub):
        hub.enqueue_call("tests.support.admin.add", [1, 2])
        hub.enqueue_call("tests.support.admin.add", [3, 4])
        hub.enqueue_call("tests.support.admin.explode", ["x"])
        hub.enqueue_call("tests.django.test_metrics.wobbly", ["once", 1])
        hub.enqueue_call("tests.django.test_metrics.nap", [0.06])
        hub.revoke_by_id(hub.enqueue_call("tests.support.admin.add", [5, 6]).id)
        hub.enqueue_call("tests.support.admin.add", [7, 8], expires=0.01)
        time.sleep(0.02)
        drain(Q)


def by_name(families: Any) -> dict[str, Any]:
    found = {family.name: family for family in families}
    assert len(found) == len(GAUGES) + 2
    return found


@pytest.mark.django_db(transaction=True)
def test_families_after_real_runs(parse: Any) -> None:
    run_some_tasks()
    queues[Q].enqueue_call("tests.support.admin.add", [9, 9])  # one pending
    families = by_name(parse(render_metrics()))

    for name in GAUGES:
        assert families[name].type == "gauge"
        assert all(set(sample.labels) == {"queue"} for sample in families[name].samples)
    gauges = {(s.name, s.labels["queue"]): s.value for name in GAUGES for s in families[name].samples}
    assert gauges[("tasks_q_pending", Q)] == 1 and gauges[("tasks_q_pending", Q2)] == 0
    assert gauges[("tasks_q_up", Q)] == 1 and gauges[("tasks_q_consumers_alive", Q)] == 0
    assert gauges[("tasks_q_oldest_pending_seconds", Q)] >= 0

    tasks = families["tasks_q_tasks"]
    assert tasks.type == "counter"
    totals = {(s.labels["queue"], s.labels["outcome"]): s.value for s in tasks.samples}
    assert {s.name for s in tasks.samples} == {"tasks_q_tasks_total"}
    assert {outcome: totals[(Q, outcome)] for outcome in QueueMinute.OUTCOMES} == {
        "succeeded": 4, "failed": 2, "retried": 1, "revoked": 1, "expired": 1,
    }  # fmt: skip
    assert all(totals[(Q2, outcome)] == 0 for outcome in QueueMinute.OUTCOMES)

    durations = families["tasks_q_task_duration_seconds"]
    assert durations.type == "histogram"
    samples = [s for s in durations.samples if s.labels["queue"] == Q]
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == BOUNDS
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)  # cumulative
    [count] = [s.value for s in samples if s.name.endswith("_count")]
    [total] = [s.value for s in samples if s.name.endswith("_sum")]
    assert count == counts[-1] == 4 + 2  # every run that succeeded or failed
    assert counts[BOUNDS.index("0.05")] <= 5 and counts[BOUNDS.index("60.0")] == 6  # the nap took over 50 ms
    assert 0.06 <= total < 60
    assert [s.value for s in durations.samples if s.labels["queue"] == Q2] == [0] * len(BOUNDS) + [0, 0]


def test_totals_survive_the_pruning_of_old_minutes() -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    add_minute(Q, now - dt.timedelta(days=3), succeeded=5, failed=1, duration_count=6, duration_le_1s=6,
               duration_sum=1.5, pending=3)  # fmt: skip
    add_minute(Q, now - dt.timedelta(days=3, minutes=1), succeeded=2, retried=1)
    add_minute(Q, now, succeeded=1)
    before = render_metrics()
    assert f'tasks_q_tasks_total{{queue="{Q}",outcome="succeeded"}} 8' in before
    prune(now)
    assert render_metrics() == before
    prune(now)  # nothing carried twice
    assert render_metrics() == before
    totals = QueueMinute.objects.get(queue=Q, minute=QueueMinute.totals_minute())
    assert (totals.succeeded, totals.failed, totals.retried, totals.duration_le_1s) == (7, 1, 1, 6)
    assert QueueMinute.objects.filter(queue=Q).count() == 2  # the totals row and this minute's


@pytest.mark.django_db(transaction=True)
def test_collector_yields_the_same_families(parse: Any, django_assert_num_queries: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    run_some_tasks()
    registry = CollectorRegistry(auto_describe=True)
    with django_assert_num_queries(0):  # registering describes the families: nothing is read
        registry.register(TasksQCollector())
    exported = by_name(parse(generate_latest(registry).decode()))
    served = by_name(parse(render_metrics()))
    assert {name: family.type for name, family in exported.items()} == {
        name: family.type for name, family in served.items()
    }
    assert {name: family.samples for name, family in exported.items()} == {
        name: family.samples for name, family in served.items()
    }


@pytest.mark.urls("tests.django.test_metrics")
def test_the_endpoint_refuses_anonymous_requests_and_users_without_the_permission(settings: Any) -> None:
    settings.TASKS_Q_METRICS_TOKEN = "s3cret"
    response = Client().get(URL)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer ")
    response = Client().get(URL, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]
    staff = Client()
    staff.force_login(make_user("staff", "view_queueoverview"))
    assert staff.get(URL).status_code == 403
    response = Client().get(URL, headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"tasks_q_tasks_total" in response.content and "no-cache" in response["Cache-Control"]
    assert Client().post(URL, headers={"Authorization": "Bearer s3cret"}).status_code == 405


@pytest.mark.urls("tests.django.test_metrics")
@pytest.mark.parametrize("user", ["holder", "superuser"])
def test_the_endpoint_answers_users_with_the_permission(user: str) -> None:
    holder = make_user("holder", "view_metrics", staff=False)
    client = Client()
    client.force_login(holder if user == "holder" else User.objects.create_superuser("root", password="pw"))
    response = client.get(URL)
    assert response.status_code == 200 and b"tasks_q_pending" in response.content


@pytest.mark.urls("tests.django.test_metrics")
def test_no_token_is_accepted_when_none_is_configured() -> None:
    for header in ("Bearer", "Bearer ", "Bearer None"):
        assert Client().get(URL, headers={"Authorization": header}).status_code == 401
