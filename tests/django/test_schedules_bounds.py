"""Schedules cannot stop the scheduler: bounded fields, bad stored rows skipped (logged once), admin pages
that never answer 500 whatever a row holds, and a history entry for enable and pause."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from django_tasks_q.conf import queues
from django_tasks_q.history.schedules import EARLIEST, LATEST, MAX_INTERVAL, Schedule, dispatch_schedules
from tests.admin.test_admin_schedules import form
from tests.django.test_schedules import QUEUE, at, make, send_digest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_settings")]

HUGE = ["1e12", "1e300", "inf", "nan"]


@pytest.fixture
def queue_settings():
    with override_settings(TASKS_Q=QUEUE):
        yield


def stored(name: str, **raw) -> Schedule:
    """A valid schedule, then ``raw`` written straight to its row, around every validator."""
    schedule = make(name=name, created_at=at(10, 0))
    Schedule.objects.filter(pk=schedule.pk).update(**raw)
    return Schedule.objects.get(pk=schedule.pk)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"crontab": "", "interval": 1e12}, "interval"),
        ({"crontab": "", "interval": MAX_INTERVAL + 1}, "interval"),
        ({"crontab": "", "interval": float("inf")}, "interval"),
        ({"crontab": "", "interval": float("nan")}, "interval"),
        ({"start_at": dt.datetime(9500, 1, 1, tzinfo=dt.UTC)}, "start_at"),
        ({"end_at": dt.datetime(9999, 12, 31, tzinfo=dt.UTC)}, "end_at"),
        ({"start_at": dt.datetime(1, 1, 2, tzinfo=dt.UTC)}, "start_at"),
    ],
)
def test_the_model_refuses_values_out_of_bounds(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**fields)
    assert field in info.value.message_dict
    assert not Schedule.objects.exists()


def test_the_bounds_themselves_are_accepted() -> None:
    make(name="longest", crontab="", interval=MAX_INTERVAL, start_at=EARLIEST, end_at=LATEST)
    make(name="shortest", crontab="", interval=1)


@pytest.mark.parametrize("value", ["1e12", "1e300", "315360001"])
def test_the_admin_form_refuses_an_interval_out_of_bounds(admin_client: Client, value: str) -> None:
    response = admin_client.post(reverse("admin:django_tasks_q_schedule_add"), form(crontab="", interval=value))
    assert response.status_code == 200
    assert "at most 315360000 seconds" in response.content.decode()
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_the_admin_form_refuses_a_non_finite_interval(admin_client: Client, value: str) -> None:
    response = admin_client.post(reverse("admin:django_tasks_q_schedule_add"), form(crontab="", interval=value))
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not Schedule.objects.exists()


def test_the_admin_form_refuses_a_start_out_of_bounds(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:django_tasks_q_schedule_add"), form(start_at_0="9999-12-31", start_at_1="23:00:00")
    )
    assert response.status_code == 200
    assert "must be between 1970-01-01 and 9000-01-01" in response.content.decode()
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        {"crontab": "", "interval": 1e12},
        {"crontab": "", "interval": 1e300},
        {"crontab": "", "interval": float("inf")},
        {"crontab": "", "interval": None},
        {"crontab": "", "interval": 60, "start_at": dt.datetime(9999, 12, 31, tzinfo=dt.UTC)},
        {"crontab": "not a crontab"},
        {"timezone": "Nowhere/Land"},
    ],
    ids=["1e12", "1e300", "inf", "neither", "start-9999", "bad-crontab", "bad-zone"],
)
def test_a_bad_stored_row_is_skipped_and_logged_once_while_the_others_fire(raw: dict, caplog) -> None:
    bad = stored("broken", **raw)
    make(name="healthy", created_at=at(10, 0))
    hub = queues["sched"]
    with caplog.at_level(logging.ERROR, logger="django_tasks_q.schedules"):
        assert [s.name for s in dispatch_schedules(hub, at(10, 15, 1))] == ["healthy"]
        assert [s.name for s in dispatch_schedules(hub, at(10, 30, 1))] == ["healthy"]
    skipped = [r for r in caplog.records if "'broken'" in r.getMessage()]
    assert len(skipped) == 1, caplog.text
    assert f"id {bad.pk}" in skipped[0].getMessage()
    assert [t.path for t in hub.pending()] == [send_digest.path] * 2


def test_a_fixed_row_fires_again_and_a_new_problem_or_a_paused_one_enabled_is_logged_again(caplog) -> None:
    bad = stored("broken", crontab="", interval=1e12)
    hub = queues["sched"]
    with caplog.at_level(logging.ERROR, logger="django_tasks_q.schedules"):
        dispatch_schedules(hub, at(10, 15, 1))
        Schedule.objects.filter(pk=bad.pk).update(interval=None, crontab="*/15 * * * *")
        assert [s.name for s in dispatch_schedules(hub, at(10, 30, 1))] == ["broken"]
        Schedule.objects.filter(pk=bad.pk).update(interval=float("inf"), crontab="")
        dispatch_schedules(hub, at(10, 45, 1))
        Schedule.objects.filter(pk=bad.pk).update(enabled=False)
        dispatch_schedules(hub, at(11, 0, 1))
        Schedule.objects.filter(pk=bad.pk).update(enabled=True)
        dispatch_schedules(hub, at(11, 15, 1))
        dispatch_schedules(hub, at(11, 30, 1))
    assert len([r for r in caplog.records if "'broken'" in r.getMessage()]) == 3


@pytest.mark.parametrize("value", HUGE)
def test_list_and_change_pages_show_a_bad_stored_interval(admin_client: Client, value: str) -> None:
    bad = stored("broken", crontab="", interval=float(value))
    listing = admin_client.get(reverse("admin:django_tasks_q_schedule_changelist"))
    assert listing.status_code == 200
    assert "broken" in listing.content.decode()
    change = admin_client.get(reverse("admin:django_tasks_q_schedule_change", args=[bad.pk]))
    assert change.status_code == 200
    assert "skips this schedule until it is fixed" in change.content.decode()
    delete = admin_client.post(reverse("admin:django_tasks_q_schedule_delete", args=[bad.pk]), {"post": "yes"})
    assert delete.status_code == 302
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("value", [*HUGE, "-inf", "0.5", "x" * 5000])
def test_the_preview_answers_an_error_for_any_interval(admin_client: Client, value: str) -> None:
    response = admin_client.get(reverse("admin:django_tasks_q_schedule_preview"), {"interval": value})
    assert response.status_code == 400
    assert "interval" in response.json()["error"]


def test_list_page_survives_a_long_search_and_a_year_out_of_range(admin_client: Client) -> None:
    make(name="digest", created_at=at(10, 0))
    url = reverse("admin:django_tasks_q_schedule_changelist")
    long_search = admin_client.get(url, {"q": "x" * 100_000})
    assert long_search.status_code == 200
    assert "search text is too long" in long_search.content.decode()
    far_year = admin_client.get(url, {"created_at__year": "99999"})
    assert far_year.status_code == 302 and far_year["Location"].endswith("?e=1")
    assert admin_client.get(url, {"q": "dig"}).status_code == 200


def test_enable_and_pause_write_a_history_entry_per_schedule(admin_client: Client) -> None:
    first, second = make(name="first"), make(name="second", enabled=False)
    url = reverse("admin:django_tasks_q_schedule_changelist")
    selected = [str(first.pk), str(second.pk)]
    response = admin_client.post(url, {"action": "pause", "_selected_action": selected})
    assert response.status_code == 302
    assert not Schedule.objects.filter(enabled=True).exists()
    entries = LogEntry.objects.filter(action_flag=CHANGE)
    assert [(e.object_id, e.change_message) for e in entries] == [(str(first.pk), "Paused")]
    admin_client.post(url, {"action": "enable", "_selected_action": selected})
    assert Schedule.objects.filter(enabled=True).count() == 2
    enabled = sorted(e.object_id for e in LogEntry.objects.filter(change_message="Enabled"))
    assert enabled == sorted(selected)


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"args": "[" * 5000 + "]" * 5000}, "nested too deeply"),
        ({"args": "[NaN]"}, "NaN is not a JSON value"),
        ({"kwargs": '{"limit": Infinity}'}, "Infinity is not a JSON value"),
    ],
    ids=["nested", "nan", "infinity"],
)
def test_the_admin_form_refuses_arguments_no_database_or_queue_can_take(admin_client: Client, changes, text) -> None:
    response = admin_client.post(reverse("admin:django_tasks_q_schedule_add"), form(**changes))
    assert response.status_code == 200
    assert text in response.content.decode()
    assert not Schedule.objects.exists()


def test_the_model_refuses_arguments_over_the_queue_size_limit() -> None:
    small = {"sched": {**QUEUE["sched"], "MAX_MESSAGE_SIZE": 1024}}
    with override_settings(TASKS_Q=small):
        with pytest.raises(ValidationError) as info:
            make(args=[secrets.token_hex(1024)])
        assert "over the limit" in " ".join(info.value.message_dict["args"])
        with pytest.raises(ValidationError) as info:
            make(args=[float("nan")])
        assert "args" in info.value.message_dict
    assert not Schedule.objects.exists()


def test_arguments_too_deep_to_read_skip_only_their_schedule(admin_client: Client, caplog) -> None:
    bad = make(name="broken", created_at=at(10, 0))
    make(name="healthy", created_at=at(10, 0))
    with connection.cursor() as cursor:  # around the ORM, which could not even write it
        cursor.execute(f"UPDATE {Schedule._meta.db_table} SET args = %s WHERE id = %s",
                       ["[" * 1500 + "]" * 1500, bad.pk])  # fmt: skip
    hub = queues["sched"]
    with caplog.at_level(logging.ERROR, logger="django_tasks_q.schedules"):
        assert [s.name for s in dispatch_schedules(hub, at(10, 15, 1))] == ["healthy"]
        assert [s.name for s in dispatch_schedules(hub, at(10, 30, 1))] == ["healthy"]
    [skipped] = [r.getMessage() for r in caplog.records if "'broken'" in r.getMessage()]
    assert "nested too deeply" in skipped
    assert admin_client.get(reverse("admin:django_tasks_q_schedule_changelist")).status_code == 200
    change = admin_client.get(reverse("admin:django_tasks_q_schedule_change", args=[bad.pk]))
    assert change.status_code == 200
    assert "nested too deeply to be read" in change.content.decode()
    delete = admin_client.post(reverse("admin:django_tasks_q_schedule_delete", args=[bad.pk]), {"post": "yes"})
    assert delete.status_code == 302
    assert list(Schedule.objects.values_list("name", flat=True)) == ["healthy"]
