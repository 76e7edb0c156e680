"""Code written only against django.tasks runs on django-tasks-q."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

try:
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks import TaskResultStatus, task_backends  # type: ignore[no-redef]
    from django_tasks.exceptions import TaskResultDoesNotExist  # type: ignore[no-redef]
    from django_tasks.signals import task_enqueued, task_finished, task_started  # type: ignore[no-redef]

from django_tasks_q.conf import queues
from django_tasks_q.hub.keyspace import record_key
from django_tasks_q.tasks_backend import TasksQBackend
from django_tasks_q.testing import drain, memory_queues
from tests import djtasks

TASKS = {"default": {"BACKEND": "django_tasks_q.tasks_backend.TasksQBackend", "QUEUES": ["default", "other"]}}


@pytest.fixture
def deferred() -> Iterator[None]:
    with override_settings(TASKS=TASKS), memory_queues("default", "other"):
        yield


@pytest.fixture
def events() -> Iterator[list[tuple[str, Any, str]]]:
    seen: list[tuple[str, Any, str]] = []

    def make(kind: str) -> Any:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((kind, sender, task_result.status))

        return receiver

    receivers = {task_enqueued: make("enqueued"), task_started: make("started"), task_finished: make("finished")}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_backend_flags(deferred: None) -> None:
    backend = task_backends["default"]
    assert isinstance(backend, TasksQBackend)
    assert backend.supports_defer and backend.supports_priority
    assert backend.supports_get_result and backend.supports_async_task
    assert backend.queues == {"default", "other"}


def test_enqueue_then_worker_runs_it(deferred: None, events: list) -> None:
    result = djtasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None and result.started_at is None
    drain("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.started_at <= result.finished_at
    assert len(result.worker_ids) == 1 and result.attempts == 1
    assert [(kind, sender, str(status)) for kind, sender, status in events] == [
        ("enqueued", TasksQBackend, "READY"),
        ("started", TasksQBackend, "RUNNING"),
        ("finished", TasksQBackend, "SUCCESSFUL"),
    ]
    again = djtasks.add.get_result(result.id)
    assert again.return_value == 5 and again.task.func is djtasks.add.func


def test_failure_records_class_path_and_traceback(deferred: None) -> None:
    result = djtasks.explode.enqueue()
    drain("default")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in result.errors] == ["builtins.RuntimeError"]
    assert "RuntimeError: kaboom" in result.errors[0].traceback
    assert result.errors[0].exception_class is RuntimeError
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_context_sees_attempt_and_id(deferred: None) -> None:
    result = djtasks.which_attempt.enqueue("x")
    drain("default")
    result.refresh()
    assert result.return_value == {"label": "x", "attempt": 1, "id": result.id}


def test_run_after_defers_and_priority_and_queue(deferred: None) -> None:
    later = djtasks.add.using(run_after=dt.timedelta(hours=1) + dt.datetime.now(dt.UTC)).enqueue(1, 1)
    assert queues["default"].pending_count() == 1  # enqueued; a worker moves it to the schedule
    drain("default")
    assert queues["default"].scheduled_count() == 1 and queues["default"].pending_count() == 0
    assert later.status == TaskResultStatus.READY
    prio = djtasks.prioritised.enqueue()
    assert [t.priority for t in queues["other"].pending()] == [50]
    drain("other")
    prio.refresh()
    assert prio.return_value == "done"


def test_async_task_runs_on_an_event_loop(deferred: None) -> None:
    result = djtasks.async_double.enqueue(21)
    drain("default")
    result.refresh()
    assert result.return_value == 42


def test_unknown_result_id(deferred: None) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("nope")


def test_immediate_queue_runs_at_enqueue() -> None:
    with override_settings(TASKS=TASKS, TASKS_Q={"default": {"BACKEND": "memory", "IMMEDIATE": True}}):
        result = djtasks.add.enqueue(4, 4)
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == 8


def test_aenqueue_and_aget_result(deferred: None) -> None:
    from asgiref.sync import async_to_sync

    result = async_to_sync(djtasks.add.aenqueue)(5, 6)
    drain("default")
    fetched = async_to_sync(djtasks.add.aget_result)(result.id)
    assert fetched.return_value == 11


def test_a_record_rebuilt_from_the_call_is_in_aware_utc_without_use_tz() -> None:
    conf = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}
    with override_settings(USE_TZ=False, TASKS=TASKS, TASKS_Q={"default": conf, "other": conf}):
        hub = queues["default"]
        assert hub.aware_datetimes is False  # the call's datetimes are naive: Django's convention without USE_TZ
        result = djtasks.add.enqueue(2, 3)
        [view] = hub.pending_entries()
        hub.delete_record(record_key(result.id))  # the worker rebuilds it from the call it runs
        drain("default")
        rebuilt = task_backends["default"].get_result(result.id)
        assert rebuilt.return_value == 5
        assert rebuilt.enqueued_at == view.task.enqueued_at and rebuilt.enqueued_at.tzinfo is dt.UTC
