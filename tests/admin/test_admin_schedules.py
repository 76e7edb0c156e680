"""The Schedule admin: choices from the registry, validation, live preview, run once now, permissions."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.urls import reverse

from django_tasks_q.conf import queues
from django_tasks_q.history.schedules import Schedule
from tests.django.test_schedules import QUEUE, send_digest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_settings")]


@pytest.fixture
def queue_settings():
    with override_settings(TASKS_Q=QUEUE):
        yield


def form(**changes: str) -> dict[str, str]:
    data = {
        "name": "digest",
        "queue": "sched",
        "task": send_digest.path,
        "args": '["ops"]',
        "kwargs": '{"limit": 5}',
        "crontab": "0 9 * * 1-5",
        "interval": "",
        "timezone": "Europe/Paris",
        "enabled": "on",
        "misfire": "once",
    }
    data.update(changes)
    return data


def test_create_from_the_registry_choices(admin_client: Client) -> None:
    add = reverse("admin:django_tasks_q_schedule_add")
    page = admin_client.get(add)
    assert page.status_code == 200
    assert f'<option value="{send_digest.path}">' in page.content.decode()
    assert "tests.django.test_schedules.not_schedulable" not in page.content.decode()
    response = admin_client.post(add, form())
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = Schedule.objects.get(name="digest")
    assert (schedule.args, schedule.kwargs, schedule.timezone) == (["ops"], {"limit": 5}, "Europe/Paris")
    change = admin_client.get(reverse("admin:django_tasks_q_schedule_change", args=[schedule.pk]))
    assert 'class="tasks-q-next-runs"' in change.content.decode()
    assert 'id="tasks-q-run-once"' in change.content.decode()


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"task": "os.system"}, "Select a valid choice"),
        ({"kwargs": '{"nope": 1}'}, "arguments do not match"),
        ({"crontab": "99 * * * *"}, "minute"),
        ({"timezone": "Nowhere/Land"}, "unknown time zone"),
    ],
)
def test_bad_input_is_refused_with_a_message(admin_client: Client, changes: dict, text: str) -> None:
    response = admin_client.post(reverse("admin:django_tasks_q_schedule_add"), form(**changes))
    assert response.status_code == 200
    assert text in response.content.decode()
    assert not Schedule.objects.exists()


def test_preview_endpoint(admin_client: Client) -> None:
    url = reverse("admin:django_tasks_q_schedule_preview")
    ok = admin_client.get(url, {"crontab": "30 8 * * *", "timezone": "UTC"}).json()
    assert len(ok["runs"]) == 5 and all(run.endswith("T08:30:00+00:00") for run in ok["runs"])
    assert all(label.endswith(" 08:30:00 UTC") and label[:3].isalpha() for label in ok["labels"])
    every = admin_client.get(url, {"interval": "90"}).json()
    assert len(every["runs"]) == 5
    bad = admin_client.get(url, {"crontab": "nope"})
    assert bad.status_code == 400 and "error" in bad.json()
    nothing_typed = admin_client.get(url, {"crontab": "", "interval": "", "timezone": "UTC"})
    assert nothing_typed.status_code == 200 and nothing_typed.json() == {"runs": [], "labels": []}


def test_run_once_now_enqueues_and_logs(admin_client: Client) -> None:
    admin_client.post(reverse("admin:django_tasks_q_schedule_add"), form())
    schedule = Schedule.objects.get()
    response = admin_client.post(
        reverse("admin:django_tasks_q_schedule_changelist"),
        {"action": "run_once_now", "_selected_action": [schedule.pk]},
    )
    assert response.status_code == 302
    [pending] = queues["sched"].pending()
    assert (pending.path, pending.args, pending.kwargs) == (send_digest.path, ("ops",), {"limit": 5})
    assert Schedule.objects.get().last_task_id == pending.id
    assert LogEntry.objects.filter(change_message__contains=pending.id).exists()


def test_staff_without_permission_cannot_see_or_change(client: Client, django_user_model) -> None:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:django_tasks_q_schedule_changelist")).status_code == 403
    assert client.get(reverse("admin:django_tasks_q_schedule_preview"), {"interval": "60"}).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    assert client.get(reverse("admin:django_tasks_q_schedule_changelist")).status_code == 200
    assert client.post(reverse("admin:django_tasks_q_schedule_add"), form()).status_code == 403
