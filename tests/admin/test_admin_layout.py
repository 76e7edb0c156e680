"""The admin as a first-time user meets it: breadcrumbs as the installed admin draws them, the page menu, the
history list, the dashboard's live numbers, bulk actions with one queue, confirmation pages, paused periodic
tasks."""

from __future__ import annotations

import re
from typing import Any

import django
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from django_tasks_q.conf import queues
from django_tasks_q.history.models import ConsumerHeartbeat, TaskHistory
from django_tasks_q.testing import drain
from tests.support.admin import (
    PAGES,
    Q,
    action_url,
    client_for,
    make_user,
    memory_settings,
    populate,
    recording,
    tick,
)

pytestmark = pytest.mark.django_db

LIVE = "/admin/django_tasks_q/queueoverview/live/"


@pytest.fixture
def root(settings: Any) -> Client:
    settings.TASKS_Q = memory_settings()
    return client_for(make_user("root", superuser=True))


@pytest.mark.parametrize("page", ["dashboard", "pending", "dead_letters", "locks", "run_form"])
def test_breadcrumbs_are_drawn_as_the_installed_admin_draws_its_own(root: Client, page: str) -> None:
    body = root.get(PAGES[page]).content.decode()
    if django.VERSION >= (6, 1):  # the admin's base.css styles only ol.breadcrumbs from 6.1 on
        assert '<ol class="breadcrumbs">' in body and '<div class="breadcrumbs">' not in body
        assert re.search(r'<li aria-current="page">[^<]+</li>', body)
    else:
        assert '<div class="breadcrumbs">' in body and '<ol class="breadcrumbs">' not in body
    assert 'href="/admin/django_tasks_q/">Tasks</a>' in body


def test_history_detail_breadcrumbs_lead_back_to_the_history(root: Client) -> None:
    made = populate(queues[Q])
    row = TaskHistory.objects.get(task_id=made["done"].id)
    body = root.get(f"/admin/django_tasks_q/taskhistory/{row.pk}/change/").content.decode()
    tag = "ol" if django.VERSION >= (6, 1) else "div"
    crumbs = re.search(rf'<{tag} class="breadcrumbs">(.*?)</{tag}>', body, re.S).group(1)
    assert 'href="/admin/django_tasks_q/taskhistory/">Task history</a>' in crumbs and row.task_id in crumbs


def test_the_page_menu_has_every_page_with_schedules(root: Client) -> None:
    body = root.get(PAGES["dashboard"]).content.decode()
    menu = re.search(r'<nav id="tq-nav".*?</nav>', body, re.S).group(0)
    assert 'id="tq-nav-schedule" href="/admin/django_tasks_q/schedule/"' in menu
    schedules = root.get("/admin/django_tasks_q/schedule/").content.decode()
    assert 'id="tq-nav-schedule" href="/admin/django_tasks_q/schedule/" class="tq-current"' in schedules


def test_history_list_counts_entries_shows_seconds_and_coloured_badges(root: Client) -> None:
    populate(queues[Q])
    body = root.get(PAGES["history"]).content.decode()
    assert re.search(r"\b3 task history entries\b", body)
    assert "<title>Task history |" in body
    finished = TaskHistory.objects.get(status="complete", name__endswith="echo").finished_at
    from django.utils import timezone

    assert timezone.localtime(finished).strftime("%Y-%m-%d %H:%M:%S") in body
    assert '<span class="tq-status tq-status-failed">failed</span>' in body
    assert ".tq-status-failed" in body  # the badges' styles are on the page


def test_live_endpoint_has_the_dashboards_numbers_and_charts(root: Client) -> None:
    hub = queues[Q]
    populate(hub)
    data = root.get(LIVE).json()
    numbers = {row["name"]: row for row in data["queues"]}
    assert numbers[Q]["pending"] == hub.pending_count() == 3
    assert numbers[Q]["scheduled"] == 1 and numbers[Q]["dead"] == 1
    assert numbers[Q]["hour"] == "2 / 1" and numbers[Q]["rate_hour"] == "33.3 %"
    assert data["charts"]["throughput"].startswith('<svg id="tq-chart-throughput"')
    assert data["charts"]["depth"].startswith('<svg id="tq-chart-depth"')
    assert data["consumers_alive"] == 0
    hub.enqueue_call("tests.support.admin.add", [1, 1])
    assert {row["name"]: row for row in root.get(LIVE).json()["queues"]}[Q]["pending"] == 4
    only = root.get(LIVE, {"queue": Q}).json()
    assert [row["name"] for row in only["queues"]] == [Q]


def test_live_endpoint_needs_the_dashboards_permission(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()
    assert client_for(None).get(LIVE).status_code == 302  # to the login page
    assert client_for(make_user("staff")).get(LIVE).status_code == 403
    assert client_for(make_user("viewer", "view_queueoverview")).get(LIVE).status_code == 200


def test_dashboard_refreshes_in_place_and_reloads_only_without_javascript(root: Client, settings: Any) -> None:
    settings.TASKS_Q_ADMIN_REFRESH = 5
    body = root.get(PAGES["dashboard"]).content.decode()
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in body
    assert 'id="tq-live-script"' in body and LIVE in body and "5 * 1000" in body
    paused = root.get(PAGES["dashboard"] + "?refresh=0").content.decode()
    assert 'id="tq-live-script"' not in paused and "http-equiv" not in paused


def test_charts_span_the_content_width_with_legible_labels(root: Client) -> None:
    chart = root.get(LIVE).json()["charts"]["throughput"]
    width, height = map(int, re.search(r'viewBox="0 0 (\d+) (\d+)"', chart).groups())
    assert width >= 900 and height >= 200  # drawn near the size shown, so its font is not scaled down
    assert set(re.findall(r'font-size="(\d+)"', chart)) == {"13"}


@pytest.mark.parametrize("page", ["pending", "scheduled", "dead_letters"])
def test_bulk_actions_and_flush_appear_when_there_is_one_queue(settings: Any, page: str) -> None:
    settings.TASKS_Q = {Q: memory_settings()[Q]}
    client = client_for(make_user("root", superuser=True))
    populate(queues[Q])
    body = client.get(PAGES[page]).content.decode()
    assert 'id="tq-bulk"' in body and f'<input type="hidden" name="queue" value="{Q}">' in body
    assert 'class="tq-select"' in body and 'id="tq-pick-queue"' not in body
    if page == "pending":
        assert "Flush this queue…" in body


def test_with_several_queues_the_page_says_to_pick_one(root: Client) -> None:
    body = root.get(PAGES["pending"]).content.decode()
    assert 'id="tq-bulk"' not in body and 'id="tq-pick-queue"' in body


def test_purge_confirmation_describes_each_letter_and_marks_the_page_it_came_from(root: Client) -> None:
    hub = queues[Q]
    populate(hub)
    [letter] = hub.dead_letters()
    response = root.post(action_url("purge_dead"), {"queue": Q, "id": letter.id, "next": PAGES["dead_letters"]})
    body = response.content.decode()
    items = re.search(r'<ul id="tq-confirm-items">(.*?)</ul>', body, re.S).group(1)
    assert f"dead letter {letter.id}: decode_error, a message that does not verify, failed at 20" in items
    current = re.findall(r'<tr class="model-(\w+) current-model">', body)
    assert current == ["deadletterentry"]
    assert hub.dead_letter_count() == 1  # only asked


def test_run_now_of_a_paused_periodic_task_is_refused_with_a_message(root: Client) -> None:
    hub = queues[Q]
    root.post(action_url("pause_periodic"), {"queue": Q, "id": tick.path})
    before = hub.pending_count()
    response = root.post(action_url("run_periodic"), {"queue": Q, "id": tick.path})
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("adm.tick is paused, so it was not run: resume it first" in text for text in texts), texts
    assert hub.pending_count() == before
    assert "tq-run-periodic" not in root.get(PAGES["periodic"]).content.decode()  # no button while paused
    root.post(action_url("resume_periodic"), {"queue": Q, "id": tick.path})
    root.post(action_url("run_periodic"), {"queue": Q, "id": tick.path})
    assert hub.pending_count() == before + 1
    with recording(hub):
        drain(hub.name)
    assert TaskHistory.objects.filter(name=tick.path, status="complete").exists()


def test_consumers_list_shows_times_with_seconds(root: Client) -> None:
    from django.utils import timezone

    now = timezone.now().replace(microsecond=0)
    ConsumerHeartbeat.objects.create(identity="h:1:a", host="h", pid=1, queues=Q, workers=2, worker_type="thread",
                                     started_at=now, last_heartbeat=now, interval=10, tasks_run=7)  # fmt: skip
    body = root.get(reverse("admin:django_tasks_q_consumerheartbeat_changelist")).content.decode()
    assert timezone.localtime(now).strftime("%Y-%m-%d %H:%M:%S") in body and "2 thread" in body
