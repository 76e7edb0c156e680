"""Database schedules: validation, timing, misfire policies and exactly-once dispatch."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task
from django_tasks_q.history.schedules import Schedule, dispatch_schedules, schedulable_tasks

pytestmark = pytest.mark.django_db

UTC = dt.UTC
QUEUE = {"sched": {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}}


@task(queue="sched", schedulable=True)
def send_digest(team: str, limit: int = 10) -> str:
    return f"{team}:{limit}"


@task(queue="sched")
def not_schedulable() -> None:
    return None


def make(**fields) -> Schedule:
    values = {"name": "digest", "queue": "sched", "task": send_digest.path, "args": ["ops"], "crontab": "*/15 * * * *"}
    values.update(fields)
    schedule = Schedule(**values)
    schedule.full_clean()
    schedule.save()
    return schedule


def at(hour: int, minute: int, second: int = 0, day: int = 27) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def test_only_opted_in_tasks_are_schedulable() -> None:
    assert schedulable_tasks("sched") == [send_digest.path]
    with pytest.raises(ValidationError) as info:
        make(task=not_schedulable.path)
    assert "is not a schedulable task" in str(info.value.message_dict["task"])
    with pytest.raises(ValidationError) as info:
        make(task="os.system")
    assert "task" in info.value.message_dict


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"args": [], "kwargs": {"nope": 1}}, "args", "arguments do not match"),
        ({"args": "ops"}, "args", "must be a JSON list"),
        ({"crontab": "", "interval": None}, "crontab", "either a crontab expression or an interval"),
        ({"crontab": "* * * * *", "interval": 60}, "crontab", "not both"),
        ({"crontab": "61 * * * *"}, "crontab", "minute"),
        ({"crontab": "", "interval": 0.5}, "interval", "at least 1 second"),
        ({"timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({"start_at": at(10, 0), "end_at": at(9, 0)}, "end_at", "after the start"),
    ],
)
def test_validation_names_the_field(fields: dict, field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**fields)
    assert text in " ".join(info.value.message_dict[field])


def test_next_runs_follow_the_crontab_in_its_timezone() -> None:
    schedule = make(crontab="0 9 * * *", timezone="Europe/Paris", created_at=at(0, 0, day=20))
    runs = schedule.next_runs(at(12, 0, day=27), 3)
    assert [run.astimezone(UTC) for run in runs] == [at(8, 0, day=28), at(8, 0, day=29), at(8, 0, day=30)]


def test_interval_schedules_count_from_creation() -> None:
    schedule = make(crontab="", interval=600, created_at=at(10, 0))
    assert schedule.next_runs(at(10, 25), 2) == [at(10, 30), at(10, 40)]


def test_a_new_schedule_never_fires_for_the_past() -> None:
    schedule = make(created_at=at(10, 7))
    assert schedule.due_ticks(at(10, 14, 59)) == []
    assert schedule.due_ticks(at(10, 15, 1)) == [at(10, 15)]


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [
        ("once", [at(11, 0)]),
        ("skip", []),
        ("catch_up", [at(10, 15), at(10, 30), at(10, 45), at(11, 0)]),
    ],
)
def test_misfire_policies_after_downtime(misfire: str, expected: list) -> None:
    schedule = make(created_at=at(10, 0), last_run_at=at(10, 0), misfire=misfire)
    assert schedule.due_ticks(at(11, 5)) == expected


def test_skip_still_fires_a_tick_that_is_only_just_due() -> None:
    schedule = make(created_at=at(10, 0), last_run_at=at(10, 0), misfire="skip")
    assert schedule.due_ticks(at(10, 15, 30)) == [at(10, 15)]


def test_window_and_disabled() -> None:
    schedule = make(created_at=at(9, 0), start_at=at(10, 20), end_at=at(10, 50))
    assert schedule.due_ticks(at(10, 10)) == []
    assert schedule.due_ticks(at(10, 31)) == [at(10, 30)]
    assert schedule.next_runs(at(10, 31), 5) == [at(10, 45)]
    schedule.enabled = False
    assert schedule.due_ticks(at(10, 31)) == []


@override_settings(TASKS_Q=QUEUE)
def test_dispatch_enqueues_each_tick_exactly_once_across_consumers() -> None:
    make(created_at=at(10, 0), kwargs={"limit": 3})
    hub = queues["sched"]
    assert [s.name for s in dispatch_schedules(hub, at(10, 15, 1))] == ["digest"]
    assert dispatch_schedules(hub, at(10, 15, 2)) == []
    refreshed = Schedule.objects.get(name="digest")
    assert refreshed.last_run_at == at(10, 15)
    [pending] = hub.pending()
    assert (pending.path, pending.args, pending.kwargs) == (send_digest.path, ("ops",), {"limit": 3})
    assert refreshed.last_task_id == pending.id
    Schedule.objects.filter(pk=refreshed.pk).update(last_run_at=None)
    assert dispatch_schedules(hub, at(10, 15, 3)) == []
    assert hub.pending_count() == 1


@override_settings(TASKS_Q=QUEUE)
def test_edits_take_effect_on_the_next_pass() -> None:
    schedule = make(created_at=at(10, 0))
    hub = queues["sched"]
    Schedule.objects.filter(pk=schedule.pk).update(crontab="*/5 * * * *", args=["dev"])
    dispatch_schedules(hub, at(10, 5, 1))
    assert [t.args for t in hub.pending()] == [("dev",)]
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
    assert dispatch_schedules(hub, at(10, 10, 1)) == []


@override_settings(TASKS_Q=QUEUE)
def test_a_schedule_whose_arguments_no_longer_fit_is_logged_not_raised(caplog) -> None:
    schedule = make(created_at=at(10, 0))
    Schedule.objects.filter(pk=schedule.pk).update(args=[], kwargs={"bogus": 1})
    assert dispatch_schedules(queues["sched"], at(10, 15, 1)) == []
    assert "could not be enqueued" in caplog.text
