"""Admin pages: every page renders what the hub holds, on every storage, escaped (issue #7)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from django_tasks_q.conf import queues
from django_tasks_q.history.models import ConsumerHeartbeat, QueueMinute, TaskHistory, TaskStatus
from tests.support.admin import (
    PAGES,
    Q2,
    XSS,
    Q,
    action_url,
    client_for,
    make_user,
    memory_settings,
    populate,
    reserve_one,
    storage_settings,
)

pytestmark = pytest.mark.django_db

RAW_XSS = re.compile(r"<script>alert")


@pytest.fixture
def admin_client_q(settings: Any) -> Client:
    settings.TASKS_Q = memory_settings()
    return client_for(make_user("root", superuser=True))


@pytest.fixture(params=["memory", "redis", "sqlite", "file", "orm"])
def any_storage(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[str]:
    settings.TASKS_Q = storage_settings(request.param, request, tmp_path)
    yield request.param
    queues[Q].flush()


def test_every_page_renders_on_every_storage(any_storage: str) -> None:
    hub = queues[Q]
    made = populate(hub)
    reservation = reserve_one(hub)
    assert reservation is not None
    client = client_for(make_user("root", superuser=True))
    history_row = TaskHistory.objects.get(task_id=made["failed"].id)
    pages = {**PAGES, "detail": f"/admin/django_tasks_q/taskhistory/{history_row.pk}/change/"}
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        body = response.content.decode()
        assert not RAW_XSS.search(body), f"unescaped payload on {name}"
    dashboard = client.get(PAGES["dashboard"]).content.decode()
    assert 'id="tq-queues"' in dashboard and f'data-queue="{Q}"' in dashboard
    pending = client.get(PAGES["pending"] + f"?queue={Q}").content.decode()
    reserved = hub.inspect_message(reservation.data).task.id
    waiting = {made[key].id for key in ("pending", "pending2", "running")} - {reserved}
    assert len(waiting) == 2 and all(task_id in pending for task_id in waiting)
    late = hub.enqueue_call("tests.support.admin.echo", [XSS])
    found = client.get(PAGES["pending"] + f"?queue={Q}&q=echo").content.decode()
    assert late.id in found and "&lt;script&gt;" in found
    scheduled = client.get(PAGES["scheduled"] + f"?queue={Q}").content.decode()
    assert made["scheduled"].id in scheduled
    in_flight = client.get(PAGES["in_flight"]).content.decode()
    assert reserved in in_flight
    if hub.supports_dead_letters:
        dead = client.get(PAGES["dead_letters"]).content.decode()
        assert "decode_error" in dead and "\\x00garbage &lt;script&gt;" in dead
    detail = client.get(pages["detail"]).content.decode()
    assert "ValueError: boom &lt;script&gt;" in detail and 'id="tq-traceback"' in detail


def test_dashboard_counts_rates_charts_and_refresh(admin_client_q: Client) -> None:
    hub = queues[Q]
    populate(hub)
    reserve_one(hub)
    response = admin_client_q.get(PAGES["dashboard"])
    body = response.content.decode()
    row = re.search(rf'<tr id="tq-queue-\d+" class="tq-queue" data-queue="{Q}">(.*?)</tr>', body, re.S).group(1)
    cell = lambda css: re.search(rf'class="tq-num {css}[^"]*"[^>]*>(?:<a [^>]*>)?([^<]*)', row).group(1).strip()  # noqa: E731
    assert cell("tq-pending") == "2"
    assert cell("tq-scheduled") == "1"
    assert cell("tq-in-flight") == "1"
    assert cell("tq-dead") == "1"
    assert cell("tq-results") == "3"  # the values of echo and halfway, explode's error
    assert cell("tq-hour") == "2 / 1"
    assert cell("tq-rate-hour") == "33.3 %"
    assert re.search(r"\d+ s", cell("tq-latency"))
    assert '<svg id="tq-chart-throughput"' in body and '<svg id="tq-chart-depth"' in body
    assert 'http-equiv="refresh"' in body
    paused = admin_client_q.get(PAGES["dashboard"] + "?refresh=0").content.decode()
    assert 'http-equiv="refresh"' not in paused and 'id="tq-resume"' in paused
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', body)  # nothing from another host: works offline


def test_dashboard_shows_consumers_and_depth_samples(admin_client_q: Client) -> None:
    from django.utils import timezone

    now = timezone.now()
    ConsumerHeartbeat.objects.create(identity="h:1:a", host="h", pid=1, queues=Q, workers=2, worker_type="thread",
                                     started_at=now, last_heartbeat=now, interval=10, tasks_run=7)  # fmt: skip
    ConsumerHeartbeat.objects.create(identity="h:2:b", host="h", pid=2, queues=Q, workers=1, started_at=now,
                                     last_heartbeat=now - __import__("datetime").timedelta(hours=2))  # fmt: skip
    QueueMinute.objects.create(queue=Q, minute=now.replace(second=0, microsecond=0), pending=4, scheduled=1,
                               in_flight=2, succeeded=3)  # fmt: skip
    body = admin_client_q.get(PAGES["dashboard"]).content.decode()
    assert 'Consumers alive: <span id="tq-consumers-alive">1</span>' in body
    assert 'class="tq-line tq-pending"' in body or 'class="tq-point tq-pending"' in body
    assert 'class="tq-bar tq-ok"' in body


def test_pending_search_filter_and_pages(admin_client_q: Client) -> None:
    hub = queues[Q]
    ids = [hub.enqueue_call("tests.support.admin.add", [i, i]).id for i in range(60)]
    echo_id = hub.enqueue_call("tests.support.admin.echo", ["findme"]).id
    queues[Q2].enqueue_call("tests.support.admin.other_queue_task")
    first = admin_client_q.get(PAGES["pending"] + f"?queue={Q}").content.decode()
    assert ids[0] in first and ids[55] not in first and "Page 1 of 2" in first
    second = admin_client_q.get(PAGES["pending"] + f"?queue={Q}&p=2").content.decode()
    assert ids[55] in second and echo_id in second
    found = admin_client_q.get(PAGES["pending"] + "?q=echo").content.decode()
    assert echo_id in found and ids[0] not in found
    by_id = admin_client_q.get(PAGES["pending"] + f"?q={ids[3][:12]}").content.decode()
    assert ids[3] in by_id and ids[4] not in by_id
    only_q2 = admin_client_q.get(PAGES["pending"] + f"?queue={Q2}").content.decode()
    assert "other_queue_task" in only_q2 and ids[0] not in only_q2
    everything = admin_client_q.get(PAGES["pending"]).content.decode()
    assert "62 items" in everything


def test_unverified_messages_are_previewed_never_decoded(admin_client_q: Client) -> None:
    hub = queues[Q]
    good = hub.enqueue_call("tests.support.admin.add", [1, 2])
    tampered = bytearray(hub.codec.encode(good.task.to_message()))
    tampered[-3] ^= 0x01
    hub.storage.enqueue(bytes(tampered))
    body = admin_client_q.get(PAGES["pending"] + f"?queue={Q}").content.decode()
    assert "Unverified message (bad_signature)" in body
    rows = re.findall(r'<tr class="tq-message( tq-unverified-row)?">(.*?)</tr>', body, re.S)
    assert len(rows) == 2
    unverified = [cells for marker, cells in rows if marker]
    assert len(unverified) == 1 and 'name="id"' not in unverified[0]  # no decoded task, so no action on it
    assert "DTQ" in unverified[0] and 'class="tq-name"' not in unverified[0]  # only the raw preview


def test_history_list_filters_and_search(admin_client_q: Client) -> None:
    hub = queues[Q]
    made = populate(hub)
    url = PAGES["history"]
    failed = admin_client_q.get(url + f"?status={TaskStatus.FAILED}").content.decode()
    assert made["failed"].id in failed and made["done"].id not in failed
    searched = admin_client_q.get(url + "?q=halfway").content.decode()
    assert made["progress"].id in searched and made["done"].id not in searched
    by_queue = admin_client_q.get(url + f"?queue={Q2}").content.decode()
    assert made["done"].id not in by_queue
    from django.utils import timezone

    this_year = admin_client_q.get(url + f"?created_at__year={timezone.now().year}").content.decode()
    assert made["done"].id in this_year


def test_history_detail_has_arguments_result_progress_and_stored_result(admin_client_q: Client) -> None:
    hub = queues[Q]
    made = populate(hub)
    row = TaskHistory.objects.get(task_id=made["progress"].id)
    assert row.status == TaskStatus.COMPLETE and row.attempts == 1 and row.result == "7"
    body = admin_client_q.get(f"/admin/django_tasks_q/taskhistory/{row.pk}/change/").content.decode()
    assert 'id="tq-progress"' in body and "half of 7 &lt;script&gt;" in body
    assert 'id="tq-stored"' in body and 'id="tq-result"' in body
    done = TaskHistory.objects.get(task_id=made["done"].id)
    body = admin_client_q.get(f"/admin/django_tasks_q/taskhistory/{done.pk}/change/").content.decode()
    assert "&quot;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;" in body


def test_periodic_page_lists_schedule_zone_and_next_five_runs(admin_client_q: Client) -> None:
    body = admin_client_q.get(PAGES["periodic"]).content.decode()
    row = re.search(r'<tr class="tq-periodic-task" data-task="adm.tick">(.*?)</tr>', body, re.S).group(1)
    assert "*/5 * * * * tz=Europe/Paris" in row and "Europe/Paris" in row
    runs = re.findall(r"<li>([^<]+)</li>", row)
    assert len(runs) == 5
    assert 'alt="yes"' in row


def test_locks_and_rate_limits_page(admin_client_q: Client) -> None:
    populate(queues[Q])
    body = admin_client_q.get(PAGES["locks"]).content.decode()
    assert 'class="tq-lock tq-held" data-lock="adm-lock"' in body
    assert re.search(r'data-limit="adm-rate">.*?<td class="tq-num">1</td><td class="tq-num">5</td>', body, re.S)


def test_unique_keys_are_listed_and_released_on_every_storage(any_storage: str) -> None:
    hub = queues[Q]
    first = hub.enqueue_call("tests.support.admin.add", [1, 2], unique_key=f"acct-{XSS}")
    key = f"unique.tests.support.admin.add.acct-{XSS}"
    client = client_for(make_user("root", superuser=True))
    body = client.get(PAGES["locks"]).content.decode()
    assert not RAW_XSS.search(body)
    row = re.search(r'<tr class="tq-unique-key" data-key="([^"]*)">(.*?)</tr>', body, re.S)
    assert row is not None and "acct-&lt;script&gt;" in row.group(1)
    assert "tests.support.admin.add" in row.group(2) and first.id in row.group(2)
    assert 'class="tq-button tq-danger tq-release-unique"' in row.group(2)
    client.post(action_url("release_unique"), {"queue": Q, "id": key, "confirmed": "yes"})
    assert hub.storage.data_keys("unique.") == []
    assert "No unique-task key is held." in client.get(PAGES["locks"]).content.decode()
    second = hub.enqueue_call("tests.support.admin.add", [1, 2], unique_key=f"acct-{XSS}")
    assert second.id != first.id


def test_release_unique_refuses_keys_that_are_not_unique_keys(admin_client_q: Client) -> None:
    hub = queues[Q]
    hub.lock_task("adm-lock").acquire()
    response = admin_client_q.post(
        action_url("release_unique"), {"queue": Q, "id": "lock.adm-lock", "confirmed": "yes"}, follow=True
    )
    assert "is not a unique-task key" in response.content.decode()
    assert hub.is_locked("adm-lock")


def test_locks_page_says_when_a_storage_cannot_list_keys(settings: Any) -> None:
    settings.TASKS_Q = {Q: {"BACKEND": "tests.storages.test_storage_custom.SeedOnlyStorage"}}
    client = client_for(make_user("root", superuser=True))
    body = client.get(PAGES["locks"]).content.decode()
    assert "cannot list its keys" in body


def test_registered_tasks_and_run_form(admin_client_q: Client) -> None:
    body = admin_client_q.get(PAGES["registered"]).content.decode()
    assert "tests.support.admin.add" in body and "(a: &#x27;int&#x27;, b: &#x27;int&#x27;)" in body
    form = admin_client_q.get(PAGES["run_form"]).content.decode()
    assert 'id="tq-run-form"' in form and '<option value="tests.support.admin.add" selected>' in form


def test_unreachable_storage_is_reported_not_a_crash(settings: Any) -> None:
    settings.TASKS_Q = {Q: {"URL": "redis://127.0.0.1:1/0?socket_connect_timeout=0.2"}}
    client = client_for(make_user("root", superuser=True))
    for name in ("dashboard", "pending", "scheduled", "in_flight", "dead_letters", "locks"):
        response = client.get(PAGES[name])
        assert response.status_code == 200, name
    assert "unreachable" in client.get(PAGES["dashboard"]).content.decode()


def test_admin_index_lists_the_pages(admin_client_q: Client) -> None:
    body = admin_client_q.get("/admin/django_tasks_q/").content.decode()
    for label in ("Dashboard", "Pending tasks", "Scheduled tasks", "Tasks in flight", "Dead letters",
                  "Periodic tasks", "Registered tasks", "Locks and rate limits", "Task history", "Consumers"):  # fmt: skip
        assert label in body
    assert XSS not in body
