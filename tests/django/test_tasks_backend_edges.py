"""The django.tasks backend where Django's own tests found it departing from Django's backends.

A task that raises ``SystemExit`` is a failed task (as in Django's immediate backend) on every path that runs
it — an immediate queue, ``drain()`` and a consumer's worker thread, which lives on and acknowledges the
message; ``KeyboardInterrupt`` still propagates (it is the shutdown). ``QUEUES: []`` restricts nothing and
``enqueue()`` reads back from the queue it wrote to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.test import override_settings

try:
    from django.tasks import TaskResultStatus, task_backends
except ImportError:
    from django_tasks import TaskResultStatus, task_backends  # type: ignore[no-redef]

from django_tasks_q.conf import queues
from django_tasks_q.consumer import Consumer, ConsumerOptions
from django_tasks_q.testing import drain
from tests import djtasks
from tests.consumer.test_consumer import FAST
from tests.support import eventually

BACKEND = "django_tasks_q.tasks_backend.TasksQBackend"
MEMORY = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0.05}, "LEASE": 1}


@pytest.fixture
def deferred() -> Iterator[None]:
    with override_settings(TASKS={"default": {"BACKEND": BACKEND}}, TASKS_Q={"default": MEMORY}):
        yield


def assert_failed_with_system_exit(result) -> None:
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in result.errors] == ["builtins.SystemExit"]
    assert result.errors[0].traceback.endswith("SystemExit: leaving from inside a task\n")


def assert_acknowledged(name: str = "default") -> None:
    hub = queues[name]
    assert (hub.pending_count(), hub.storage.in_flight_size(), hub.dead_letter_count()) == (0, 0, 0)


def test_system_exit_in_an_immediate_queue_is_a_failed_result() -> None:
    conf = {"default": {"BACKEND": "memory", "IMMEDIATE": True}}
    with override_settings(TASKS={"default": {"BACKEND": BACKEND}}, TASKS_Q=conf):
        result = djtasks.leave.enqueue()
        assert result.status == TaskResultStatus.FAILED
        assert_failed_with_system_exit(result)


def test_system_exit_under_drain_is_a_failed_result(deferred: None) -> None:
    result = djtasks.leave.enqueue()
    after = djtasks.add.enqueue(1, 2)
    assert drain() == 2
    assert_failed_with_system_exit(result)
    after.refresh()
    assert after.return_value == 3
    assert_acknowledged()


def test_system_exit_under_a_consumer_keeps_the_worker_and_acknowledges(deferred: None) -> None:
    consumer = Consumer([queues["default"]], ConsumerOptions(**FAST, workers=1), install_signal_handlers=False,
                        monitor=False)  # fmt: skip
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        result = djtasks.leave.enqueue()
        eventually(lambda: result.refresh() or result.status == TaskResultStatus.FAILED, timeout=10)
        assert_failed_with_system_exit(result)
        # The only worker thread is still there to run the next task.
        after = djtasks.add.enqueue(2, 2)
        eventually(lambda: after.refresh() or after.status == TaskResultStatus.SUCCESSFUL, timeout=10)
        assert_acknowledged()
        assert result.attempts == 1
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_keyboard_interrupt_still_propagates_from_an_immediate_queue() -> None:
    conf = {"default": {"BACKEND": "memory", "IMMEDIATE": True}}
    with override_settings(TASKS={"default": {"BACKEND": BACKEND}}, TASKS_Q=conf), pytest.raises(KeyboardInterrupt):
        djtasks.interrupt.enqueue()


@pytest.mark.parametrize("immediate", [False, True], ids=["deferred", "immediate"])
def test_empty_queues_list_restricts_nothing_and_enqueue_reads_back(immediate: bool) -> None:
    conf = {"default": {"BACKEND": "memory", "IMMEDIATE": immediate}, "other": {"BACKEND": "memory"}}
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": []}}, TASKS_Q=conf):
        result = djtasks.add.enqueue(3, 4)
        expected = TaskResultStatus.SUCCESSFUL if immediate else TaskResultStatus.READY
        assert result.status == expected
        if not immediate:
            drain()
        again = task_backends["default"].get_result(result.id)
        assert again.return_value == 7
        other = djtasks.prioritised.enqueue()
        assert other.status == TaskResultStatus.READY  # queue "other" is never immediate
        assert task_backends["default"].get_result(other.id).id == other.id
