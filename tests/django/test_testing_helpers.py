"""django_tasks_q.testing and the pytest fixtures it ships."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.test import override_settings

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task
from django_tasks_q.testing import capture_tasks, drain, immediate_queues, memory_queues

ORM_LIKE = {"default": {"BACKEND": "blackhole", "RESULT_TTL": 30}, "mail": {"URL": "blackhole://"}}


@task(queue="default")
def double(n: int) -> int:
    return n * 2


@task(queue="mail", retries=1)
def send(to: str) -> str:
    if to == "flaky@example.com" and not send.sent:
        send.sent = True
        raise OSError("smtp down")
    return f"sent to {to}"


send.sent = False


@override_settings(TASKS_Q=ORM_LIKE)
def test_immediate_queues_runs_tasks_in_memory_and_keeps_other_keys() -> None:
    with immediate_queues():
        assert double(21)() == 42
        assert queues["default"].result_ttl == 30
        assert queues["mail"].immediate is True
    assert queues["default"].immediate is False


@override_settings(TASKS_Q=ORM_LIKE)
def test_immediate_queues_by_name_leaves_the_others() -> None:
    with immediate_queues("mail"):
        assert send("a@example.com")() == "sent to a@example.com"
        assert type(queues["default"].storage).__name__ == "BlackHoleStorage"


@override_settings(TASKS_Q=ORM_LIKE)
def test_memory_queues_and_drain_run_pending_work_and_retries() -> None:
    send.sent = False
    with memory_queues():
        first = double(4)
        flaky = send("flaky@example.com")
        later = double.schedule((100,), delay=3600)
        assert first() is None
        assert drain() == 3
        assert first() == 8
        assert flaky() == "sent to flaky@example.com"
        assert later() is None
        assert queues["default"].scheduled_count() == 1


def test_drain_stops_at_its_limit_and_leaves_the_rest_pending() -> None:
    with memory_queues("default"):
        for n in range(3):
            double(n)
        with pytest.raises(RuntimeError, match="drain\\(\\) ran 2 tasks"):
            drain("default", limit=2)
        hub = queues["default"]
        assert (hub.pending_count(), hub.in_flight_count()) == (1, 0)
        assert drain("default", limit=1) == 1  # exactly at the limit, with nothing left: no error


@pytest.mark.redis
def test_drain_never_waits_on_an_empty_blocking_storage(settings, fresh_redis_url: str) -> None:
    """A Redis reserve on an empty queue blocks for ``block_timeout``; drain() checks the queue first."""
    settings.TASKS_Q = {
        "default": {"URL": fresh_redis_url, "OPTIONS": {"block_timeout": 30}},
        "mail": {"BACKEND": "memory"},
    }
    double(1)
    double(2)
    started = time.monotonic()
    assert drain("default") == 2
    assert drain("default") == 0
    assert time.monotonic() - started < 10  # one wait of block_timeout would take 30 s
    queues["default"].storage.close()


@override_settings(TASKS_Q=ORM_LIKE)
def test_capture_tasks_and_its_assertions() -> None:
    with memory_queues(), capture_tasks() as captured:
        double(1)
        double(2)
        send("x@example.com")
    assert captured.names() == [double.name, double.name, send.name]
    assert len(captured.assert_enqueued(double)) == 2
    captured.assert_enqueued(double, args=(2,), count=1)
    captured.assert_enqueued("tests.django.test_testing_helpers.send", args=("x@example.com",))
    with pytest.raises(AssertionError, match=r"was enqueued 2 time\(s\), expected 3"):
        captured.assert_enqueued(double, count=3)
    with pytest.raises(AssertionError, match="was not enqueued"):
        captured.assert_enqueued(double, args=(3,))
    with pytest.raises(AssertionError, match="was enqueued"):
        captured.assert_not_enqueued(send)


@override_settings(TASKS_Q=ORM_LIKE)
def test_capture_by_queue_name() -> None:
    with memory_queues(), capture_tasks("mail") as captured:
        double(1)
        send("y@example.com")
    assert captured.names() == [send.name]


def test_fixtures_are_registered_by_the_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makepyfile(
        """
        from django.test import override_settings
        from django_tasks_q.decorators import task

        @task()
        def triple(n):
            return n * 3

        def test_immediate(tasks_q_immediate):
            assert triple(3)() == 9

        def test_memory(tasks_q_memory, tasks_q_captured):
            result = triple(2)
            assert result() is None
            assert tasks_q_memory() == 1
            assert result() == 6
            assert tasks_q_captured.names() == [triple.name]
        """
    )
    outcome = pytester.runpytest_subprocess("-p", "django", "--ds", "tests.settings", "-W", "error")
    outcome.assert_outcomes(passed=2)
