"""A task's name is huey's and Django's (``name=`` or the function's name); its path is what is registered,
sent and stored (``name=`` or ``module.qualname``), so nothing stored changed when names became bare."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q import MemoryHuey, Task, TaskException, crontab
from django_tasks_q.conf import queues, registry_for
from django_tasks_q.decorators import task
from django_tasks_q.history.models import TaskHistory
from django_tasks_q.hub.keyspace import PERIODIC_PREFIX, REVOKE_TASK_PREFIX, UNIQUE_KEY, UNIQUE_PREFIX
from django_tasks_q.messages.envelope import Message
from django_tasks_q.testing import capture_tasks, drain
from tests import djtasks
from tests.support.admin import Q, memory_settings, recording
from tests.support.hub import drain as drain_hub
from tests.support.hub import new_queue

HERE = __name__
names_hub = MemoryHuey("names-module-level", block_timeout=0)


@names_hub.task()
def send_mail(to: str) -> str:
    return f"sent to {to}"


@names_hub.task(name="billing.charge")
def charge(amount: int) -> int:
    return amount


@task(queue=Q)
def archived(n: int) -> int:
    """A task of a configured queue, for the history rows."""
    return n + 1


@pytest.fixture(autouse=True)
def _empty_hub() -> Iterator[None]:
    names_hub.flush()
    yield
    names_hub.flush()


def test_a_plain_task_is_named_after_its_function_and_registered_under_module_and_qualname() -> None:
    assert (send_mail.name, send_mail.path) == ("send_mail", f"{HERE}.send_mail")
    assert names_hub.registry.get(f"{HERE}.send_mail") is send_mail
    assert "send_mail" not in names_hub.registry
    call = send_mail.s("ann")
    assert (call.name, call.path) == ("send_mail", f"{HERE}.send_mail")
    assert repr(send_mail) == f"<task '{HERE}.send_mail' on queue 'names-module-level'>"
    assert repr(call).startswith(f"{HERE}.send_mail: ")


def test_name_given_is_both_the_name_and_the_path() -> None:
    assert charge.name == charge.path == "billing.charge"
    assert names_hub.registry.get("billing.charge") is charge
    charge(5)
    [pending] = names_hub.pending()
    assert pending.name == pending.path == "billing.charge"


def test_nested_functions_of_one_name_stay_distinct_tasks() -> None:
    q = new_queue()

    def first():
        @q.task()
        def work() -> str:
            return "first"

        return work

    def second():
        @q.task()
        def work() -> str:
            return "second"

        return work

    one, two = first(), second()
    assert one.name == two.name == "work"
    assert one.path == f"{HERE}.test_nested_functions_of_one_name_stay_distinct_tasks.<locals>.first.<locals>.work"
    assert two.path == f"{HERE}.test_nested_functions_of_one_name_stay_distinct_tasks.<locals>.second.<locals>.work"
    assert q.registry.get(one.path) is one and q.registry.get(two.path) is two
    results = [one(), two()]
    assert drain_hub(q) == 2
    assert [result.get() for result in results] == ["first", "second"]


def test_messages_carry_the_path_and_one_written_before_names_became_bare_still_runs() -> None:
    result = send_mail("bob")
    [data] = names_hub.storage.enqueued_items()
    assert names_hub.codec.decode(data).name == f"{HERE}.send_mail"
    names_hub.flush_queue()
    assert result is not None
    # A message as an earlier version wrote it: the same envelope, the dotted path in its "name".
    older = Message(id="0123456789abcdef0123456789abcdef", name=f"{HERE}.send_mail", args=("cy",))
    names_hub.storage.enqueue(names_hub.codec.encode(older), None)
    taken = names_hub.dequeue()
    assert (taken.name, taken.path) == ("send_mail", f"{HERE}.send_mail")
    names_hub.execute(taken)
    assert names_hub.result(older.id) == "sent to cy"


def test_a_call_not_bound_to_a_task_is_named_by_the_last_part_of_its_path() -> None:
    assert Task("myapp.tasks.send_mail").name == "send_mail"
    assert Task(f"{HERE}.f.<locals>.work").name == "work"
    assert Task(id="x").name == ""


def test_listed_calls_of_a_registered_task_get_its_name_even_a_dotted_name_given() -> None:
    charge(1)
    names_hub.storage.enqueue(names_hub.codec.encode(Message(name="gone.module.task")), None)
    listed = [(view.task.name, view.task.path) for view in names_hub.pending_entries()]
    assert listed == [("billing.charge", "billing.charge"), ("task", "gone.module.task")]
    assert [(t.name, t.path) for t in names_hub.pending()] == listed


def test_periodic_tasks_are_read_by_name_and_marked_by_path() -> None:
    q = new_queue()

    @q.periodic_task(crontab(minute="*/15"))
    def quarter() -> None:
        return None

    moment = dt.datetime(2030, 1, 1, 9, 15, tzinfo=dt.UTC)
    [due] = q.read_periodic(moment)
    assert (due.name, due.path) == ("quarter", quarter.path)
    [enqueued] = q.enqueue_periodic(moment)
    assert enqueued.path == quarter.path
    assert q.storage.peek_data(f"{PERIODIC_PREFIX}{quarter.path}.203001010915") == b"1"
    assert q.enqueue_periodic(moment) == []


def test_revocations_and_unique_keys_are_stored_under_the_path() -> None:
    q = new_queue()

    @q.task(unique=True)
    def once(n: int) -> int:
        return n

    once.revoke()
    assert q.storage.peek_data(f"{REVOKE_TASK_PREFIX}{once.path}") is not None
    assert q.is_revoked(once)
    assert once.restore() is True
    call = once.s(1)
    assert call.extra[UNIQUE_KEY].startswith(f"{UNIQUE_PREFIX}{once.path}.")
    once(1)
    [held] = q.unique_keys_held()
    assert held["task"] == once.path and held["key"].startswith(f"{UNIQUE_PREFIX}{once.path}.")


def test_what_user_code_reads_is_the_bare_name_and_what_it_is_told_about_a_failure_the_path() -> None:
    class Described(MemoryHuey):
        def build_error_result(self, task: Task, exc: BaseException) -> dict[str, Any]:
            return {**super().build_error_result(task, exc), "name": task.name}

    q = Described("names-described", block_timeout=0, immediate=True)
    signalled = []
    q.signal()(lambda signal, call, *extra: signalled.append((signal, call.name)))

    @q.task(context=True)
    def who(task: Task) -> list[str]:
        return [task.name, task.path]

    @q.task()
    def fails() -> None:
        raise ValueError("no")

    assert who().get() == ["who", who.path]
    with pytest.raises(TaskException) as info:
        fails().get()
    assert (info.value.metadata["name"], info.value.metadata["task"]) == ("fails", fails.path)
    assert ("complete", "who") in signalled and ("error", "fails") in signalled


def test_captured_calls_match_a_task_its_path_or_its_name() -> None:
    q = new_queue()

    @q.task()
    def notify(user: int) -> None:
        return None

    with capture_tasks() as captured:
        notify(1)
    assert captured.names() == ["notify"]
    assert len(captured.of(notify)) == len(captured.of(notify.path)) == len(captured.of("notify")) == 1
    captured.assert_enqueued(notify.path, args=(1,))
    with pytest.raises(AssertionError, match=f"enqueued: {notify.path}"):
        captured.assert_enqueued(notify, args=(2,))


@pytest.mark.django_db
def test_history_rows_store_the_path(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()
    hub = queues[Q]
    with recording(hub):
        result = archived(1)
        drain(Q)
    row = TaskHistory.objects.get(task_id=result.id)
    assert row.name == archived.path == f"{HERE}.archived"
    assert archived.name == "archived"


def test_a_django_task_is_named_as_django_names_it_and_sent_under_its_module_path() -> None:
    conf = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}
    tasks = {"default": {"BACKEND": "django_tasks_q.tasks_backend.TasksQBackend", "QUEUES": ["default"]}}
    with override_settings(TASKS=tasks, TASKS_Q={"default": conf}):
        djtasks.add.enqueue(1, 2)
        wrapper = registry_for("default").get(djtasks.add.module_path)
        assert (wrapper.name, wrapper.path) == (djtasks.add.name, "tests.djtasks.add")
        assert djtasks.add.name == "add"
        [pending] = queues["default"].pending()
        assert (pending.name, pending.path) == ("add", "tests.djtasks.add")
