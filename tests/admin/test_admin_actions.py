"""Admin actions and access: R24 (login, POST + CSRF, own permission, LogEntry, confirmation) and R25 (issue #7)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from django_tasks_q.conf import queues
from django_tasks_q.history.models import TaskHistory, TaskStatus
from django_tasks_q.testing import drain
from tests.support.admin import (
    PAGE_PERMS,
    PAGES,
    XSS,
    Q,
    action_url,
    client_for,
    make_user,
    memory_settings,
    populate,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def memory(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()


def csrf_client(user: Any) -> tuple[Client, str]:
    """A client that enforces CSRF checks, with a CSRF cookie and the matching form token."""
    client = client_for(user, csrf=True)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return client, token


# ------------------------------------------------------------------ who may see what

@pytest.mark.parametrize("page", sorted(PAGES))
def test_pages_need_login_staff_and_their_view_permission(page: str) -> None:
    url = PAGES[page]
    anonymous = client_for(None).get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert client_for(make_user("nostaff", PAGE_PERMS[page], staff=False)).get(url).status_code == 302
    assert client_for(make_user("plain")).get(url).status_code == 403
    assert client_for(make_user("viewer", PAGE_PERMS[page])).get(url).status_code == 200
    assert client_for(make_user("root", superuser=True)).get(url).status_code == 200


def _post_data(name: str) -> dict[str, Any]:
    """Form data that makes action ``name`` do something real on the populated queue."""
    hub = queues[Q]
    pending = hub.pending_entries()[0].task.id
    scheduled = hub.scheduled_entries()[0].task.id
    failed_row = TaskHistory.objects.filter(status=TaskStatus.FAILED).first()
    letter = hub.dead_letters()[0].id
    ids = {
        "revoke": pending, "restore": pending, "run_now": scheduled, "retry": str(failed_row.pk),
        "delete_result": failed_row.task_id, "requeue_dead": letter, "purge_dead": letter,
        "release_lock": "adm-lock", "release_unique": "unique.tests.support.admin.add.k", "pause_periodic": "adm.tick", "resume_periodic": "adm.tick",
        "run_periodic": "adm.tick",
    }  # fmt: skip
    data = {"queue": Q, "confirmed": "yes", "next": PAGES["dashboard"]}
    if name in ids:
        data["id"] = ids[name]
    return data


ACTION_PERMS = {
    "revoke": "revoke_task", "restore": "restore_task", "run_now": "run_task_now", "retry": "retry_task",
    "delete_result": "delete_result", "flush_queue": "flush_queue", "flush_schedule": "flush_schedule",
    "flush_results": "flush_results", "requeue_dead": "requeue_deadletter", "purge_dead": "purge_deadletter",
    "release_lock": "release_lock", "release_unique": "release_lock", "pause_periodic": "revoke_task", "resume_periodic": "restore_task",
    "run_periodic": "enqueue_task",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ACTION_PERMS))
def test_actions_need_post_csrf_login_and_their_own_permission(name: str) -> None:
    populate(queues[Q])
    url = action_url(name)
    data = _post_data(name)
    others = [perm for perm in set(ACTION_PERMS.values()) if perm != ACTION_PERMS[name]]
    users = {
        "anonymous": None,
        "staff": make_user("staff"),
        "others": make_user("others", *others),
        "allowed": make_user("allowed", ACTION_PERMS[name]),
        "root": make_user("root", superuser=True),
    }
    for label, user in users.items():
        client, token = csrf_client(user)
        assert client.post(url, data).status_code == 403, (label, "POST without CSRF token")
        if user is not None:
            assert client.get(url).status_code in (403, 405), (label, "GET")
    expected = {"anonymous": 302, "staff": 403, "others": 403}
    for label in ("anonymous", "staff", "others"):
        client, token = csrf_client(users[label])
        response = client.post(url, {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == expected[label], label
        if label == "anonymous":
            assert "/admin/login/" in response["Location"]
    assert not LogEntry.objects.exists()
    for label in ("allowed", "root"):
        if label == "root":
            populate(queues[Q])  # the first run changed things; give the superuser something to act on too
            data = _post_data(name)
        client, token = csrf_client(users[label])
        assert client.get(url).status_code == 405
        response = client.post(url, {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == 302 and response["Location"] == PAGES["dashboard"], label
        entry = LogEntry.objects.filter(user=users[label]).get()
        assert name in entry.change_message


def test_destructive_actions_ask_for_confirmation_first() -> None:
    hub = queues[Q]
    populate(hub)
    client = client_for(make_user("root", superuser=True))
    for name, still_there in (
        ("flush_queue", hub.pending_count),
        ("flush_schedule", hub.scheduled_count),
        ("flush_results", hub.result_count),
    ):
        before, logged = still_there(), LogEntry.objects.count()
        response = client.post(action_url(name), {"queue": Q})
        assert response.status_code == 200 and 'id="tq-confirm"' in response.content.decode()
        assert still_there() == before and before > 0
        assert LogEntry.objects.count() == logged
        response = client.post(action_url(name), {"queue": Q, "confirmed": "yes"})
        assert response.status_code == 302 and still_there() == 0
    assert LogEntry.objects.count() == 3


# ------------------------------------------------------------------ what the actions do

def _root() -> Client:
    return client_for(make_user("root", superuser=True))


def test_revoke_and_restore_a_pending_call() -> None:
    hub = queues[Q]
    result = hub.enqueue_call("tests.support.admin.add", [1, 2])
    client = _root()
    client.post(action_url("revoke"), {"queue": Q, "id": result.id})
    assert hub.is_revoked(result.task)
    assert "tq-revoked" in client.get(PAGES["pending"]).content.decode()
    client.post(action_url("restore"), {"queue": Q, "id": result.id})
    assert not hub.is_revoked(result.task)


def test_run_now_moves_a_scheduled_call_to_the_queue() -> None:
    hub = queues[Q]
    result = hub.enqueue_call("tests.support.admin.add", [3, 4], delay=3600)
    assert drain(Q) == 0 and hub.scheduled_count() == 1  # taken before its eta: moved to the schedule
    response = _root().post(action_url("run_now"), {"queue": Q, "id": result.id}, follow=True)
    assert "Enqueued now" in response.content.decode()
    pending = [entry.task for entry in hub.pending_entries()]
    assert len(pending) == 1 and pending[0].args == (3, 4) and pending[0].id != result.id
    assert hub.is_revoked(result.task)


def test_retry_enqueues_a_failed_call_again_with_its_arguments() -> None:
    hub = queues[Q]
    made = populate(hub)
    hub.flush_queue()
    row = TaskHistory.objects.get(task_id=made["failed"].id)
    _root().post(action_url("retry"), {"id": str(row.pk)})
    [entry] = hub.pending_entries()
    assert entry.task.path == "tests.support.admin.explode" and entry.task.args == (XSS,)


def test_retry_from_the_history_changelist_needs_the_retry_permission() -> None:
    hub = queues[Q]
    made = populate(hub)
    hub.flush_queue()
    row = TaskHistory.objects.get(task_id=made["failed"].id)
    data = {"action": "retry_selected", "_selected_action": [str(row.pk)]}
    viewer = client_for(make_user("viewer", "view_taskhistory"))
    viewer.post(PAGES["history"], data)
    assert hub.pending_count() == 0
    retrier = client_for(make_user("retrier", "view_taskhistory", "retry_task"))
    retrier.post(PAGES["history"], data)
    assert hub.pending_count() == 1 and LogEntry.objects.count() == 1


def test_delete_result_only_deletes_results() -> None:
    hub = queues[Q]
    made = populate(hub)
    client = _root()
    client.post(action_url("delete_result"), {"queue": Q, "id": made["done"].id, "confirmed": "yes"})
    assert not hub.result_exists(made["done"].id)
    client.post(action_url("delete_result"), {"queue": Q, "id": "lock.adm-lock", "confirmed": "yes"})
    assert hub.is_locked("adm-lock")


def test_requeue_and_purge_dead_letters() -> None:
    hub = queues[Q]
    good = hub.codec.encode(hub.build_task(hub.registry.get("tests.support.admin.add"), (1, 1), {}).to_message())
    first = hub.storage.add_dead_letter(good, "max_attempts", "gave up", attempts=5)
    hub.storage.add_dead_letter(b"junk", "decode_error", "bad")
    hub.storage.add_dead_letter(b"junk2", "decode_error", "bad")
    client = _root()
    body = client.get(PAGES["dead_letters"] + f"?queue={Q}").content.decode()
    assert "tests.support.admin.add" in body and 'class="tq-verified"' in body
    client.post(action_url("requeue_dead"), {"queue": Q, "id": first})
    assert hub.pending_count() == 1 and hub.dead_letter_count() == 2
    client.post(action_url("purge_dead"), {"queue": Q, "all": "1", "confirmed": "yes"})
    assert hub.dead_letter_count() == 0


def test_release_lock_and_periodic_pause_resume_run() -> None:
    hub = queues[Q]
    populate(hub)
    client = _root()
    client.post(action_url("release_lock"), {"queue": Q, "id": "adm-lock", "confirmed": "yes"})
    assert not hub.is_locked("adm-lock")
    tick = hub.registry.get("adm.tick")
    client.post(action_url("pause_periodic"), {"queue": Q, "id": "adm.tick"})
    assert hub.is_revoked(tick) and 'alt="no"' in client.get(PAGES["periodic"]).content.decode()
    client.post(action_url("resume_periodic"), {"queue": Q, "id": "adm.tick"})
    assert not hub.is_revoked(tick)
    hub.flush_queue()
    client.post(action_url("run_periodic"), {"queue": Q, "id": "adm.tick"})
    assert [entry.task.path for entry in hub.pending_entries()] == ["adm.tick"]


def test_actions_refuse_unknown_queues_and_foreign_redirects() -> None:
    client = _root()
    assert client.post(action_url("flush_queue"), {"queue": "nope", "confirmed": "yes"}).status_code == 404
    assert client.post(action_url("no_such_action"), {"queue": Q}).status_code == 404
    hub = queues[Q]
    result = hub.enqueue_call("tests.support.admin.add", [1, 2])
    response = client.post(action_url("revoke"), {"queue": Q, "id": result.id, "next": "https://evil.example/"})
    assert response["Location"] == PAGES["dashboard"]


# ------------------------------------------------------------------ R25: "run now" of a registered task

RUN = "/admin/django_tasks_q/registeredtask/run/"


def test_run_form_enqueues_a_registered_task_with_json_arguments() -> None:
    hub = queues[Q]
    client = _root()
    response = client.post(RUN + f"?queue={Q}", {"queue": Q, "task": "tests.support.admin.add",
                                                  "args": "[1]", "kwargs": '{"b": 2}', "priority": "3"})  # fmt: skip
    assert response.status_code == 302
    [entry] = hub.pending_entries()
    assert (entry.task.args, entry.task.kwargs, entry.task.priority) == ((1,), {"b": 2}, 3)
    assert LogEntry.objects.get().action_flag == 1


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "message"),
    [
        ("tests.support.admin.add", "[1, 2, 3]", "{}", "arguments do not match its signature"),
        ("tests.support.admin.add", "[1]", '{"c": 2}', "arguments do not match its signature"),
        ("tests.support.admin.add", "not json", "{}", "not valid JSON"),
        ("tests.support.admin.add", '{"a": 1}', "{}", "must be a JSON list"),
        ("tests.support.admin.add", "[]", "[1]", "must be a JSON object"),
        ("os.system", '["touch /tmp/x"]', "{}", "Select a valid choice"),
        ("tests.support.admin.other_queue_task", "[]", "{}", "Select a valid choice"),
    ],
)
def test_run_form_refuses_bad_calls_and_anything_not_registered(task: str, args: str, kwargs: str, message: str) -> None:
    client = _root()
    response = client.post(RUN + f"?queue={Q}", {"queue": Q, "task": task, "args": args, "kwargs": kwargs})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert queues[Q].pending_count() == 0 and not LogEntry.objects.exists()


def test_run_form_needs_view_to_see_and_enqueue_permission_to_post() -> None:
    data = {"queue": Q, "task": "tests.support.admin.add", "args": "[1, 2]", "kwargs": "{}"}
    viewer = client_for(make_user("viewer", "view_registeredtask"))
    assert viewer.get(RUN + f"?queue={Q}").status_code == 200
    assert viewer.post(RUN, data).status_code == 403
    runner, token = csrf_client(make_user("runner", "view_registeredtask", "enqueue_task"))
    assert runner.post(RUN, data).status_code == 403  # no CSRF token
    assert runner.post(RUN, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    assert queues[Q].pending_count() == 1
    assert "tests.support.admin.add" in LogEntry.objects.get().change_message
