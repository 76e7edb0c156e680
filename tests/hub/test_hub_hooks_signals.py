"""Signals (huey's names, the exact sequence for every outcome) and the hooks: pre/post execute, startup/shutdown."""

from __future__ import annotations

import logging

import pytest

from django_tasks_q import CancelExecution, TaskException
from django_tasks_q.signals import ALL_SIGNALS, task_event
from tests.support.hub import Recorder, drain, later, new_queue, run_next

HUEY_SIGNALS = {
    "enqueued",
    "executing",
    "complete",
    "error",
    "retrying",
    "scheduled",
    "revoked",
    "expired",
    "canceled",
    "locked",
    "timeout",
    "rate-limited",
    "interrupted",
}


def test_signal_names_are_hueys_plus_the_delivery_events():
    assert HUEY_SIGNALS | {"dead-lettered", "reclaimed", "lost-lease"} == ALL_SIGNALS


# ---------------------------------------------------------------------------------------------- one per outcome


def outcome_queue():
    q = new_queue()
    events = Recorder(q)

    @q.pre_execute()
    def cancel_some(task):
        if task.kwargs.get("cancel"):
            raise CancelExecution(retry=False)

    lock = q.lock_task("outcomes")
    limit = q.rate_limit("outcomes", 1, 3600)

    @q.task(name="t.work")
    def work(kind, cancel=False):
        if kind == "error":
            raise ValueError("boom")
        if kind == "locked":
            with lock:
                return "unreachable"
        if kind == "rate":
            with limit:
                return "within the limit"
        if kind == "slow":
            while True:
                pass
        if kind == "interrupt":
            raise KeyboardInterrupt
        return kind

    return q, events, work, lock


def test_signals_for_complete():
    q, events, work, _lock = outcome_queue()
    work("ok")
    drain(q)
    assert events.pairs() == [("enqueued", "work"), ("executing", "work"), ("complete", "work")]


def test_signals_for_error_carry_the_exception():
    q, events, work, _lock = outcome_queue()
    work("error")
    drain(q)
    assert events.signals() == ["enqueued", "executing", "error"]
    error = events.events[-1]
    assert error.args[0].__class__ is ValueError
    assert str(error.args[0]) == "boom"
    assert [event.args for event in events.events[:-1]] == [(), ()]


def test_signals_for_retrying_now_and_later():
    q, events, work, _lock = outcome_queue()
    work.schedule(("error",), retries=1)
    drain(q)
    assert events.signals() == [
        "enqueued",
        "executing",
        "error",
        "retrying",
        "enqueued",
        "executing",
        "error",
    ]
    events.clear()
    work.schedule(("error",), retries=1, retry_delay=30)
    drain(q)
    assert events.signals() == ["enqueued", "executing", "error", "retrying", "scheduled"]


def test_signals_for_scheduled():
    q, events, work, _lock = outcome_queue()
    work.schedule(("ok",), delay=30)
    assert events.signals() == ["enqueued"]  # into the queue, as in huey
    drain(q)
    assert events.signals() == ["enqueued", "scheduled"]  # the worker took it early
    drain(q, later(31))
    assert events.signals() == ["enqueued", "scheduled", "executing", "complete"]


def test_a_not_yet_due_call_that_reaches_a_worker_goes_back_to_the_schedule():
    q, events, work, _lock = outcome_queue()
    result = work.schedule(("ok",), delay=30)
    assert run_next(q) is True
    q.enqueue_due(later(31))  # the scheduler's clock runs ahead of the worker's
    assert run_next(q) is True
    assert events.signals() == ["enqueued", "scheduled", "scheduled"]
    assert [t.id for t in q.scheduled()] == [result.id]
    assert len(q) == 0


def test_signals_for_revoked():
    q, events, work, _lock = outcome_queue()
    work("ok").revoke()
    drain(q)
    assert events.signals() == ["enqueued", "revoked"]


def test_signals_for_expired():
    q, events, work, _lock = outcome_queue()
    work.schedule(("ok",), expires=5)
    drain(q, later(6))
    assert events.signals() == ["enqueued", "expired"]


def test_signals_for_canceled():
    q, events, work, _lock = outcome_queue()
    work("ok", cancel=True)
    drain(q)
    assert events.signals() == ["enqueued", "canceled"]


def test_signals_for_locked():
    q, events, work, lock = outcome_queue()
    work("locked")
    with lock:
        drain(q)
    assert events.signals() == ["enqueued", "executing", "locked"]


def test_signals_for_timeout():
    q, events, work, _lock = outcome_queue()
    work("slow", timeout=0.05)
    drain(q)
    assert events.signals() == ["enqueued", "executing", "timeout"]


def test_signals_for_rate_limited():
    q, events, work, _lock = outcome_queue()
    work("rate")
    work("rate")
    drain(q)
    assert events.signals() == [
        "enqueued",
        "enqueued",
        "executing",
        "complete",
        "executing",
        "rate-limited",
        "retrying",
        "scheduled",
    ]


def test_signals_for_interrupted():
    q, events, work, _lock = outcome_queue()
    result = work("interrupt")
    reservation = q.reserve()
    with pytest.raises(KeyboardInterrupt):
        q.process(reservation)
    assert events.signals() == ["enqueued", "executing", "interrupted"]
    # the message stays reserved for the consumer to release (or for its lease to run out)
    assert q.storage.in_flight_size() == 1
    assert result.is_ready() is False
    assert q.release(reservation) is True
    assert len(q) == 1


def test_signals_for_dead_lettered_reclaimed_and_lost_lease():
    q, events, work, _lock = outcome_queue()
    q.storage.enqueue(b"garbage")
    run_next(q)
    [dead] = events.events
    assert dead.signal == "dead-lettered"
    assert dead.task is None
    assert dead.args[0] == "decode_error"
    events.clear()

    result = work("ok")
    stale = q.reserve(lease=5)
    q.reclaim_expired(later(6))
    fresh = q.reserve()
    q.process(stale)
    q.process(fresh)
    # "complete" follows the stored result: the stale worker's outcome is dropped, so it sends none
    assert events.signals() == [
        "enqueued",
        "reclaimed",
        "executing",
        "lost-lease",
        "executing",
        "complete",
    ]
    assert events.events[1].args == (result.id, stale.message_id)
    assert events.events[3].args == (stale.message_id,)


def test_signals_in_immediate_mode():
    q = new_queue(immediate=True)
    events = Recorder(q)

    @q.task()
    def work(fail):
        if fail:
            raise ValueError("x")
        return 1

    work(False)
    work.schedule((True,), retries=1)
    assert events.signals() == [
        "enqueued",
        "executing",
        "complete",
        "enqueued",
        "executing",
        "error",
        "retrying",
        "enqueued",
        "executing",
        "error",
    ]


# ---------------------------------------------------------------------------------------------- receivers


def test_a_receiver_gets_only_the_signals_it_names():
    q = new_queue()
    errors = Recorder(q, "error", "complete")

    @q.task()
    def work(fail):
        if fail:
            raise ValueError("x")

    work(True)
    work(False)
    drain(q)
    assert errors.signals() == ["error", "complete"]


def test_disconnect_a_receiver():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def work():
        return 1

    assert q.disconnect_signal(events) is True
    assert q.disconnect_signal(events) is False
    work()
    drain(q)
    assert events.signals() == []


def test_disconnect_some_signals_of_a_receiver():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def work():
        return 1

    assert q.disconnect_signal(events, "executing", "enqueued") is True
    work()
    drain(q)
    assert events.signals() == ["complete"]


def test_unknown_signal_names_are_refused():
    q = new_queue()
    with pytest.raises(ValueError) as info:
        q.signal("completed")(lambda *a: None)
    assert str(info.value).startswith("unknown signal name(s) ['completed']; known: ")


def test_a_failing_receiver_is_logged_and_the_task_still_runs(caplog):
    q = new_queue()
    events = Recorder(q)

    @q.signal("executing")
    def broken_receiver(signal, task, *args):
        raise RuntimeError("receiver bug")

    @q.task()
    def work():
        return "done"

    result = work()
    with caplog.at_level(logging.ERROR, logger="django_tasks_q.signals"):
        drain(q)
    assert result() == "done"
    assert events.signals() == ["enqueued", "executing", "complete"]
    [record] = [r for r in caplog.records if r.name == "django_tasks_q.signals"]
    assert record.getMessage().startswith("signal receiver ")
    assert record.exc_info[1].args == ("receiver bug",)


def test_every_signal_is_also_a_django_signal():
    q = new_queue()
    seen = []

    def receiver(sender, event, task, args, **kwargs):
        seen.append((sender, event, task.id, args))

    @q.task()
    def work():
        return 1

    task_event.connect(receiver)
    try:
        result = work()
        drain(q)
    finally:
        task_event.disconnect(receiver)
    assert seen == [
        (q, "enqueued", result.id, ()),
        (q, "executing", result.id, ()),
        (q, "complete", result.id, ()),
    ]


# ---------------------------------------------------------------------------------------------- hooks


def test_hooks_and_signals_happen_in_hueys_order():
    q = new_queue()
    timeline = []
    q.signal()(lambda signal, task, *args: timeline.append(signal))

    @q.pre_execute()
    def before(task):
        timeline.append(f"pre {task.args}")

    @q.post_execute()
    def after(task, value, exc):
        timeline.append(f"post {value} {type(exc).__name__ if exc else None}")

    @q.task()
    def work(x):
        timeline.append(f"run {x}")
        if x == 2:
            raise ValueError("two")
        return x * 10

    work(1)
    work(2)
    drain(q)
    assert timeline == [
        "enqueued",
        "enqueued",
        "pre (1,)",
        "executing",
        "run 1",
        "post 10 None",
        "complete",
        "pre (2,)",
        "executing",
        "run 2",
        "error",
        "post None ValueError",
    ]


def test_pre_execute_hooks_run_in_order_and_can_be_unregistered():
    q = new_queue()
    calls = []

    @q.pre_execute()
    def first(task):
        calls.append("first")

    @q.pre_execute(name="second")
    def another(task):
        calls.append("second")

    @q.task()
    def work():
        return None

    work()
    drain(q)
    assert calls == ["first", "second"]
    assert q.unregister_pre_execute("second") is True
    assert q.unregister_pre_execute(first) is True
    assert q.unregister_pre_execute(first) is False
    work()
    drain(q)
    assert calls == ["first", "second"]


def test_a_failing_pre_execute_hook_is_logged_and_the_task_runs(caplog):
    q = new_queue()
    events = Recorder(q)
    calls = []

    @q.pre_execute()
    def broken(task):
        raise RuntimeError("hook bug")

    @q.pre_execute()
    def fine(task):
        calls.append(task.id)

    @q.task()
    def work():
        return "ran"

    result = work()
    with caplog.at_level(logging.ERROR, logger="django_tasks_q"):
        assert drain(q) == 1
    assert result() == "ran"
    assert calls == [result.id]
    assert events.signals() == ["enqueued", "executing", "complete"]
    assert q.storage.in_flight_size() == 0
    [record] = [r for r in caplog.records if "pre-execute hook" in r.getMessage()]
    assert record.getMessage() == f"pre-execute hook 'broken' failed for task {result.task!r}"


def test_pre_execute_cancel_stops_the_task_and_later_hooks():
    q = new_queue()
    calls = []

    @q.pre_execute()
    def gate(task):
        raise CancelExecution()

    @q.pre_execute()
    def later_hook(task):
        calls.append("later")

    @q.post_execute()
    def after(task, value, exc):
        calls.append("post")

    @q.task()
    def work():
        calls.append("run")

    work()
    drain(q)
    assert calls == []


def test_post_execute_hooks_get_value_and_exception_and_can_be_unregistered(caplog):
    q = new_queue()
    seen = []

    @q.post_execute()
    def broken(task, value, exc):
        raise RuntimeError("post hook bug")

    tasks = []

    @q.post_execute(name="recorder")
    def record(task, value, exc):
        tasks.append(task)
        seen.append((task.args, value, exc))

    @q.task()
    def work(x):
        if x is None:
            raise LookupError("none")
        return x

    work(5)
    failed = work(None)
    with caplog.at_level(logging.ERROR, logger="django_tasks_q"):
        drain(q)
    assert seen[0] == ((5,), 5, None)
    assert seen[1][:2] == ((None,), None)
    assert type(seen[1][2]) is LookupError
    with pytest.raises(TaskException):
        failed.get()
    assert [r.getMessage() for r in caplog.records if "post-execute" in r.getMessage()] == [
        f"post-execute hook failed for task {task!r}" for task in tasks
    ]
    assert q.unregister_post_execute("recorder") is True
    assert q.unregister_post_execute(broken) is True
    work(6)
    drain(q)
    assert len(seen) == 2


def test_startup_and_shutdown_hooks(caplog):
    q = new_queue()
    calls = []

    @q.on_startup()
    def open_connections():
        calls.append("start 1")

    @q.on_startup(name="broken start")
    def broken():
        raise RuntimeError("start bug")

    @q.on_startup()
    def warm_cache():
        calls.append("start 2")

    @q.on_shutdown()
    def close_connections():
        calls.append("stop")

    assert calls == []
    with caplog.at_level(logging.ERROR, logger="django_tasks_q"):
        q.run_startup_hooks()
    assert calls == ["start 1", "start 2"]
    [record] = caplog.records
    assert record.getMessage() == f"startup hook 'broken start' of queue {q.name!r} failed"
    q.run_shutdown_hooks()
    assert calls == ["start 1", "start 2", "stop"]

    assert q.unregister_on_startup("broken start") is True
    assert q.unregister_on_startup(warm_cache) is True
    assert q.unregister_on_shutdown(close_connections) is True
    assert q.unregister_on_shutdown(close_connections) is False
    q.run_startup_hooks()
    q.run_shutdown_hooks()
    assert calls == ["start 1", "start 2", "stop", "start 1"]
