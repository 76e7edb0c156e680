"""lock_task (decorator and context manager), rate_limit, and task time limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import threading
import time
import types

import pytest

from django_tasks_q import RateLimitExceeded, TaskException, TaskLockedException
from django_tasks_q import locks as locks_module
from django_tasks_q.exceptions import InvalidOption
from tests.support.hub import UTC, Recorder, drain, later, naive_utc, new_queue, run_next

# ---------------------------------------------------------------------------------------------- locks


def test_a_held_lock_stops_a_decorated_task():
    q = new_queue()
    events = Recorder(q)
    ran = []
    lock = q.lock_task("reports")

    @q.task()
    @lock
    def report(x):
        ran.append(x)
        return x

    with lock:
        assert q.is_locked("reports") is True
        held = report(1)
        assert drain(q) == 1
    assert ran == []
    assert events.signals() == ["enqueued", "executing", "locked"]
    with pytest.raises(TaskException) as info:
        held.get()
    assert info.value.error == "TaskLockedException(\"unable to acquire lock 'reports': it is held\")"
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.TaskLockedException"

    assert q.is_locked("reports") is False
    free = report(2)
    drain(q)
    assert ran == [2]
    assert free() == 2
    assert q.is_locked("reports") is False  # released after the task


def test_the_decorated_task_keeps_its_name_and_signature():
    q = new_queue()

    @q.task()
    @q.lock_task("sig")
    def locked(a, b=2):
        return a + b

    assert locked.path.endswith(".locked") and locked.name == "locked"
    with pytest.raises(InvalidOption):
        locked(1, 2, 3)


def test_a_lock_as_context_manager_inside_a_task():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def guarded():
        with q.lock_task("inner"):
            assert q.is_locked("inner") is True
            return "inside"

    q.lock_task("inner").acquire()
    blocked = guarded()
    drain(q)
    with pytest.raises(TaskException) as info:
        blocked.get()
    assert info.value.error == "TaskLockedException(\"unable to acquire lock 'inner': it is held\")"
    assert events.signals() == ["enqueued", "executing", "locked"]

    assert q.flush_locks() == {"inner"}
    ok = guarded()
    drain(q)
    assert ok() == "inside"


def test_a_lock_is_released_when_the_task_fails():
    q = new_queue()

    @q.task()
    @q.lock_task("fragile")
    def fragile():
        raise ValueError("inside the lock")

    fragile()
    drain(q)
    assert q.is_locked("fragile") is False


def test_a_locked_task_is_retried_and_runs_when_the_lock_is_free():
    q = new_queue()
    events = Recorder(q)
    lock = q.lock_task("retry-lock")

    @q.task(retries=1, retry_delay=10)
    @lock
    def work():
        return "got it"

    result = work()
    lock.acquire()
    assert drain(q) == 1
    assert events.signals() == ["enqueued", "executing", "locked", "retrying", "scheduled"]
    lock.release()
    assert drain(q, later(11)) == 1
    assert result() == "got it"


def test_lock_used_directly_raises_task_locked_exception():
    q = new_queue()
    lock = q.lock_task("direct")
    with lock, pytest.raises(TaskLockedException) as info, q.lock_task("direct"):
        pass
    assert str(info.value) == "unable to acquire lock 'direct': it is held"
    assert lock.is_locked() is False


def test_flush_locks_reports_what_was_held():
    q = new_queue()
    a = q.lock_task("a")
    q.lock_task("b")
    a.acquire()
    q.storage.put_data(f"{q.name}.lock.unregistered", b"1")  # the key huey-style code writes
    assert q.flush_locks() == {"a"}
    assert q.flush_locks("unregistered", "never") == {"unregistered"}
    assert q.is_locked("a") is False
    assert q.is_locked("unregistered") is False


def test_a_lock_with_a_ttl_lapses_by_itself():
    q = new_queue()
    lock = q.lock_task("short", ttl=0.05)
    assert lock.acquire() is True
    assert lock.acquire() is False
    time.sleep(0.1)
    assert q.is_locked("short") is False
    assert lock.acquire() is True


def test_a_lock_on_an_async_task():
    q = new_queue()
    lock = q.lock_task("async-lock")

    @q.task()
    @lock
    async def work(x):
        await asyncio.sleep(0)
        return x

    held = work(1)
    with lock:
        drain(q)
    free = work(2)
    drain(q)
    with pytest.raises(TaskException):
        held.get()
    assert free() == 2


def test_a_lock_needs_a_name():
    q = new_queue()
    with pytest.raises(InvalidOption) as info:
        q.lock_task("")
    assert str(info.value) == "lock name must be a non-empty string, got ''"


# ---------------------------------------------------------------------------------------------- rate limits


@pytest.fixture
def frozen_clock(monkeypatch):
    """Freeze the rate limiter's clock 100 s into an hour-long window that has not ended yet."""
    window_start = (time.time() // 3600 + 1) * 3600
    clock = types.SimpleNamespace(now=window_start + 100)
    monkeypatch.setattr(locks_module, "time", types.SimpleNamespace(time=lambda: clock.now))
    return clock, window_start


def test_a_rate_limit_reschedules_the_call_for_the_next_window(frozen_clock):
    clock, window_start = frozen_clock
    q = new_queue()
    events = Recorder(q)
    ran = []

    @q.task(retries=2)
    @q.rate_limit("api", limit=2, per=3600)
    def call_api(x):
        ran.append(x)
        return x

    first, second, third = call_api(1), call_api(2), call_api(3)
    assert drain(q) == 3
    assert ran == [1, 2]
    assert events.for_task(third.id) == ["enqueued", "executing", "rate-limited", "retrying", "scheduled"]
    [waiting] = q.scheduled()
    assert waiting.id == third.id
    assert waiting.eta == naive_utc(dt.datetime.fromtimestamp(window_start + 3600, UTC))
    assert waiting.retries == 2  # no retry was used
    with pytest.raises(TaskException) as info:
        third()  # as in huey, the rate-limited attempt's error is stored until the retry's outcome
    assert "RateLimitExceeded" in info.value.error

    clock.now = window_start + 3600 + 1
    assert drain(q, waiting.eta) == 1
    assert ran == [1, 2, 3]
    third.reset()
    assert third() == 3
    assert first() == 1
    assert second() == 2


def test_rate_limit_exceeded_names_the_limit_and_the_next_window(frozen_clock):
    clock, _window_start = frozen_clock
    q = new_queue()
    limit = q.rate_limit("direct", 1, 60)
    with limit:
        pass
    with pytest.raises(RateLimitExceeded) as info, limit:
        pass
    next_window = (clock.now // 60 + 1) * 60
    assert info.value.retry_at == next_window
    assert str(info.value) == (
        f"rate limit 'direct' of 1 per 60 s reached; next window in {next_window - clock.now:.2f} s"
    )


def test_a_rate_limit_hit_in_immediate_mode_is_scheduled(frozen_clock):
    _clock, window_start = frozen_clock
    q = new_queue(immediate=True)
    events = Recorder(q)

    @q.task()
    @q.rate_limit("imm", 1, 3600)
    def work(x):
        return x

    assert work(1)() == 1
    second = work(2)
    with pytest.raises(TaskException):
        second()
    assert events.for_task(second.id) == ["enqueued", "executing", "rate-limited", "retrying", "scheduled"]
    assert [t.eta for t in q.scheduled()] == [naive_utc(dt.datetime.fromtimestamp(window_start + 3600, UTC))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1, 1), "rate limit name must be a non-empty string, got ''"),
        (("r", 0, 1), "rate limit 'r': limit must be an int >= 1, got 0"),
        (("r", 1.5, 1), "rate limit 'r': limit must be an int >= 1, got 1.5"),
        (("r", 1, 0), "rate limit 'r': per must be seconds > 0, got 0"),
        (("r", 1, float("inf")), "rate limit 'r': per must be seconds > 0, got inf"),
    ],
)
def test_rate_limit_arguments_are_checked(args, message):
    q = new_queue()
    with pytest.raises(InvalidOption) as info:
        q.rate_limit(*args)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------- timeouts


def spin(seconds):
    """Busy Python code for up to ``seconds`` (a time limit interrupts it long before that)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "finished"


def test_a_task_over_its_timeout_is_stopped_and_fails():
    q = new_queue()
    events = Recorder(q)

    @q.task(timeout=0.05)
    def slow():
        return spin(5)

    result = slow()
    drain(q)
    assert events.signals() == ["enqueued", "executing", "timeout"]
    with pytest.raises(TaskException) as info:
        result.get()
    expected = f"task {slow.path} ({result.id}) ran longer than its timeout of 0.05 s"
    assert info.value.error == f"TaskTimeout({expected!r})"
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.TaskTimeout"


def test_a_sleeping_task_is_interrupted_in_the_main_thread():
    q = new_queue()

    @q.task(timeout=0.05)
    def sleepy():
        time.sleep(5)
        return "woke"

    result = sleepy()
    drain(q)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.TaskTimeout"


def test_a_timed_out_task_with_retries_is_retried():
    q = new_queue()
    events = Recorder(q)
    attempts = []

    @q.task(retries=1, timeout=0.05)
    def sometimes_slow():
        attempts.append(1)
        if len(attempts) == 1:
            spin(5)
        return "fast enough"

    result = sometimes_slow()
    assert drain(q) == 2
    assert result() == "fast enough"
    assert events.signals() == [
        "enqueued",
        "executing",
        "timeout",
        "retrying",
        "enqueued",
        "executing",
        "complete",
    ]


def test_the_call_timeout_overrides_the_decorator():
    q = new_queue()

    @q.task(timeout=30)
    def slow():
        return spin(5)

    result = slow.schedule(timeout=0.05)
    drain(q)
    with pytest.raises(TaskException):
        result.get()


def test_a_task_in_time_leaves_no_alarm_behind():
    q = new_queue()
    previous = signal.getsignal(signal.SIGALRM)

    @q.task(timeout=0.05)
    def quick():
        return "quick"

    result = quick()
    drain(q)
    assert result() == "quick"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is previous
    time.sleep(0.1)  # an alarm left running would fire here


def test_a_timeout_in_a_worker_thread():
    q = new_queue()
    events = Recorder(q)

    @q.task(timeout=0.05)
    def slow():
        return spin(5)

    result = slow()
    worker = threading.Thread(target=drain, args=(q,))
    worker.start()
    worker.join(5)
    assert not worker.is_alive()
    assert events.signals() == ["enqueued", "executing", "timeout"]
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.TaskTimeout"


def test_a_task_in_time_in_a_worker_thread_is_not_interrupted_later():
    q = new_queue()

    @q.task(timeout=0.05)
    def quick():
        return "quick"

    result = quick()
    after = []

    def worker():
        drain(q)
        after.append(spin(0.1))  # a late injected exception would land here

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert after == ["finished"]
    assert result() == "quick"


def test_timeouts_apply_to_immediate_mode():
    q = new_queue(immediate=True)

    @q.task(timeout=0.05)
    def slow():
        return spin(5)

    result = slow()
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.TaskTimeout"
    assert run_next(q) is False
