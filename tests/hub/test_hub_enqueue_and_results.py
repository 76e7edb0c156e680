"""The hub's constructor, the task decorator, calling and scheduling tasks, results and introspection."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import pytest

from django_tasks_q import (
    ConfigurationError,
    MemoryHuey,
    Result,
    ResultGroup,
    ResultTimeout,
    Task,
    TaskException,
    TaskQueue,
    TaskWrapper,
)
from django_tasks_q.backends.memory import MemoryStorage
from django_tasks_q.messages.codec import FLAG_COMPRESSED, FLAG_SIGNED
from django_tasks_q.result import StoredError
from tests.support.hub import UTC, Recorder, drain, later, naive_utc, new_queue, run_next

# ---------------------------------------------------------------------------------------------- the hub


def test_defaults_follow_huey():
    q = TaskQueue(storage_class=MemoryStorage)
    assert q.name == "huey"
    assert q.results is True
    assert q.store_none is False
    assert q.utc is True
    assert q.immediate is False
    assert q.serializer == "json"
    assert q.compression is False
    assert isinstance(q.storage, MemoryStorage)
    assert q.storage.name == "huey"
    assert repr(q) == "<TaskQueue 'huey'>"


def test_storage_class_and_storage_kwargs_reach_the_storage():
    q = TaskQueue("kw-" + uuid.uuid4().hex[:8], storage_class=MemoryStorage, block_timeout=0.25)
    assert isinstance(q.storage, MemoryStorage)
    assert q.storage.name == q.name
    assert q.storage.block_timeout == 0.25
    assert q.storage is q.storage  # built once


def test_storage_is_built_lazily():
    built = []

    class CountingStorage(MemoryStorage):
        def __init__(self, name, **kwargs):
            built.append(name)
            super().__init__(name, **kwargs)

    q = TaskQueue("lazy", storage_class=CountingStorage)

    @q.task()
    def noop():
        return None

    assert built == []
    noop()
    assert built == ["lazy"]


def test_get_storage_can_be_overridden():
    made = []

    class MyQueue(TaskQueue):
        def get_storage(self, **kwargs):
            made.append(kwargs)
            return MemoryStorage(self.name + "-custom", block_timeout=0)

    q = MyQueue("mine", flavour="x")
    assert q.storage.name == "mine-custom"
    assert made == [{"flavour": "x"}]


def test_create_storage_can_be_overridden():
    class MyQueue(TaskQueue):
        def create_storage(self):
            return MemoryStorage("made-by-create", block_timeout=0)

    q = MyQueue("mine")

    @q.task()
    def double(x):
        return x * 2

    result = double(4)
    assert q.storage.name == "made-by-create"
    drain(q)
    assert result() == 8


def test_a_queue_without_a_storage_says_how_to_get_one():
    q = TaskQueue("bare")
    with pytest.raises(ConfigurationError) as info:
        q.storage  # noqa: B018
    assert str(info.value) == (
        "queue 'bare' has no storage: pass storage_class=..., use one of the *Huey classes, "
        "or override get_storage()"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "queue name must be a non-empty string, got ''"),
        ({"name": 3}, "queue name must be a non-empty string, got 3"),
        ({"name": "q", "lease": 0}, "queue 'q': lease must be > 0 seconds, got 0"),
        ({"name": "q", "max_attempts": 0}, "queue 'q': max_attempts must be an int >= 1, got 0"),
        ({"name": "q", "max_attempts": True}, "queue 'q': max_attempts must be an int >= 1, got True"),
        ({"name": "q", "result_ttl": -1}, "queue 'q': result_ttl must be > 0 seconds, got -1"),
    ],
)
def test_bad_queue_options_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError) as info:
        MemoryHuey(**kwargs)
    assert str(info.value) == message


def test_always_eager_is_an_alias_of_immediate():
    q = MemoryHuey("eager-" + uuid.uuid4().hex[:8], always_eager=True)
    assert q.immediate is True


# ---------------------------------------------------------------------------------------------- decorator


def test_task_decorator_options_are_kept_on_the_wrapper():
    q = new_queue()

    @q.task(
        retries=3,
        retry_delay=5,
        retry_backoff=2,
        priority=7,
        name="custom.name",
        expires=60,
        timeout=9,
        color="blue",
    )
    def work(x):
        """Docs."""
        return x

    assert isinstance(work, TaskWrapper)
    assert work.name == work.path == "custom.name"
    assert (work.retries, work.retry_delay, work.retry_backoff, work.priority) == (3, 5, 2, 7)
    assert (work.expires, work.timeout, work.context) == (60, 9, False)
    assert work.extra == {"color": "blue"}
    assert work.__doc__ == "Docs."
    assert work.__name__ == "work"
    assert q.registry.get("custom.name") is work
    assert repr(work) == f"<task 'custom.name' on queue {q.name!r}>"


def test_default_task_path_is_module_and_qualname_and_its_name_the_function_name():
    q = new_queue()

    @q.task()
    def work():
        return 1

    assert work.path == f"{__name__}.test_default_task_path_is_module_and_qualname_and_its_name_the_function_name.<locals>.work"
    assert work.name == "work"


def test_calling_a_task_enqueues_it_and_returns_a_result():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def add(a, b):
        return a + b

    result = add(2, b=3)
    assert isinstance(result, Result)
    assert len(q) == 1
    [pending] = q.pending()
    assert (pending.id, pending.name, pending.args, pending.kwargs) == (result.id, add.name, (2,), {"b": 3})
    assert events.signals() == ["enqueued"]
    assert result.is_ready() is False
    assert result.get() is None

    assert drain(q) == 1
    assert result.is_ready() is True
    assert result() == 5
    assert events.signals() == ["enqueued", "executing", "complete"]


def test_results_false_returns_none_and_stores_nothing():
    q = new_queue(results=False)

    @q.task()
    def add(a, b):
        return a + b

    assert add(1, 2) is None
    assert add.schedule((1, 2), delay=10) is None
    assert drain(q) == 2  # one ran; the call with a delay was taken early and moved to the schedule
    assert q.scheduled_count() == 1
    assert q.all_results() == {}
    assert q.result_count() == 0


def test_s_builds_a_call_without_enqueueing():
    q = new_queue()

    @q.task(priority=3)
    def add(a, b):
        return a + b

    call = add.s(1, 2, priority=9)
    assert isinstance(call, Task)
    assert (call.name, call.args, call.kwargs, call.priority) == (add.name, (1, 2), {}, 9)
    assert len(q) == 0
    result = q.enqueue(call)
    assert result.id == call.id
    drain(q)
    assert result() == 3


def test_schedule_with_every_option():
    q = new_queue()

    @q.task()
    def add(a, b):
        return a + b

    eta = dt.datetime(2100, 1, 2, 3, 4, 5, tzinfo=UTC)
    expires = dt.datetime(2100, 1, 3, tzinfo=UTC)
    result = add.schedule(
        (1,), {"b": 2}, eta=eta, priority=4, retries=2, retry_delay=3, expires=expires, timeout=8, id="my-id"
    )
    assert result.id == "my-id"
    assert q.scheduled_count() == 0  # enqueued: the worker that takes it early moves it to the schedule
    assert run_next(q) and len(q) == 0
    [task] = q.scheduled()
    # Aware datetimes given to a queue built in code come back naive UTC, as in huey.
    assert (task.id, task.args, task.kwargs, task.eta, task.priority) == ("my-id", (1,), {"b": 2}, naive_utc(eta), 4)
    assert (task.retries, task.retry_delay, task.timeout) == (2, 3, 8)
    assert task.expires == task.expires_resolved == naive_utc(expires)


def test_schedule_with_delay_seconds_or_timedelta():
    q = new_queue()

    @q.task()
    def add(a, b):
        return a + b

    before = naive_utc(dt.datetime.now(UTC))
    add.schedule((1, 2), delay=30)
    add.schedule((3, 4), delay=dt.timedelta(minutes=2))
    after = naive_utc(dt.datetime.now(UTC))
    assert drain(q) == 2  # both taken before their eta: moved to the schedule
    first, second = q.scheduled()
    assert before + dt.timedelta(seconds=30) <= first.eta <= after + dt.timedelta(seconds=30)
    assert before + dt.timedelta(minutes=2) <= second.eta <= after + dt.timedelta(minutes=2)
    assert q.scheduled_count() == 2
    assert drain(q) == 0  # nothing is due yet
    assert drain(q, later(31)) == 1
    assert drain(q, later(121)) == 1


def test_schedule_eta_in_the_past_is_enqueued_at_once():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def add(a, b):
        return a + b

    add.schedule((1, 2), eta=dt.datetime(2000, 1, 1, tzinfo=UTC))
    assert len(q) == 1
    assert q.scheduled() == []
    assert events.signals() == ["enqueued"]


def test_naive_eta_is_utc_by_default():
    q = new_queue()

    @q.task()
    def noop():
        return None

    noop.schedule(eta=dt.datetime(2100, 6, 1, 12, 0))
    assert q.pending()[0].eta == dt.datetime(2100, 6, 1, 12, 0)
    [view] = q.pending_entries()
    assert view.task.eta == dt.datetime(2100, 6, 1, 12, 0, tzinfo=UTC)  # what the message holds


def test_naive_eta_is_local_time_with_utc_false(new_york_time):
    q = new_queue(utc=False)

    @q.task()
    def noop():
        return None

    noop.schedule(eta=dt.datetime(2100, 6, 1, 12, 0))
    assert q.pending()[0].eta == dt.datetime(2100, 6, 1, 12, 0)  # shown in local time, as given
    [view] = q.pending_entries()
    assert view.task.eta == dt.datetime(2100, 6, 1, 16, 0, tzinfo=UTC)  # the message holds UTC: EDT is UTC-4


def test_map_enqueues_one_call_per_item():
    q = new_queue()

    @q.task()
    def add(a, b=10):
        return a + b

    group = add.map([1, (2, 3), 4])
    assert isinstance(group, ResultGroup)
    assert [task.args for task in q.pending()] == [(1,), (2, 3), (4,)]
    drain(q)
    assert group.get() == [11, 5, 14]


def test_call_local_runs_here_and_enqueues_nothing():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def add(a, b):
        return a + b

    assert add.call_local(2, 5) == 7
    assert len(q) == 0
    assert events.signals() == []


def test_reserved_call_keywords_are_options():
    q = new_queue()

    @q.task()
    def work(x):
        return x

    work(1, priority=5, retries=2, retry_delay=3, timeout=4, expires=dt.timedelta(hours=1))
    work(2, delay=60)
    work(3, eta=dt.datetime(2100, 1, 1, tzinfo=UTC))
    first, *later_calls = q.pending()
    assert (first.args, first.kwargs, first.priority, first.retries, first.retry_delay, first.timeout) == (
        (1,),
        {},
        5,
        2,
        3,
        4,
    )
    assert first.expires == dt.timedelta(hours=1)  # as given; the moment it stands for is fixed at the enqueue
    assert isinstance(first.expires_resolved, dt.datetime)
    assert [(t.args, t.eta is not None) for t in later_calls] == [((2,), True), ((3,), True)]


def test_a_keyword_the_function_declares_is_an_argument_not_an_option():
    q = new_queue()

    @q.task()
    def work(priority, delay=0):
        return [priority, delay]

    result = work(priority=5, delay=2)
    [task] = q.pending()
    assert task.priority is None
    assert task.eta is None
    assert task.kwargs == {"priority": 5, "delay": 2}
    drain(q)
    assert result() == [5, 2]


def test_higher_priority_runs_first():
    q = new_queue()
    order = []

    @q.task()
    def work(x):
        order.append(x)

    work(1)
    work(2, priority=10)
    work(3, priority=-5)
    work(4, priority=10)
    assert [t.args[0] for t in q.pending()] == [2, 4, 1, 3]
    drain(q)
    assert order == [2, 4, 1, 3]


def test_task_priority_default_comes_from_the_decorator():
    q = new_queue()

    @q.task(priority=20)
    def urgent():
        return None

    @q.task()
    def normal():
        return None

    normal()
    urgent()
    assert [t.name for t in q.pending()] == [urgent.name, normal.name]
    assert q.pending()[0].priority == 20


# ---------------------------------------------------------------------------------------------- results


def test_result_get_removes_the_value_and_caches_it():
    q = new_queue()

    @q.task()
    def value():
        return {"a": [1, 2]}

    result = value()
    drain(q)
    assert q.result_count() == 1
    assert result.get() == {"a": [1, 2]}
    assert q.result_count() == 0  # read once: removed from the storage
    assert result.get() == {"a": [1, 2]}  # cached on the handle
    assert result.is_ready() is True
    result.reset()
    assert result.get() is None
    assert result.is_ready() is False


def test_result_get_preserve_keeps_the_value():
    q = new_queue()

    @q.task()
    def value():
        return 42

    result = value()
    drain(q)
    assert result.get(preserve=True) == 42
    assert q.all_results() == {result.id: 42}
    result.reset()
    assert result.get() == 42
    assert q.all_results() == {}


def test_result_of_a_failed_task_raises_task_exception_with_error_and_traceback():
    q = new_queue()

    @q.task()
    def broken(x):
        raise KeyError(f"missing {x}")

    result = broken("thing")
    drain(q)
    with pytest.raises(TaskException) as info:
        result.get()
    error = info.value
    assert str(error) == "KeyError('missing thing')"  # repr() of the exception, as in huey
    assert error.error == "KeyError('missing thing')"
    assert repr(error) == "KeyError('missing thing')"
    assert error.metadata["task_id"] == result.id
    assert error.metadata["task"] == broken.path
    assert error.metadata["type"] == "builtins.KeyError"
    assert error.metadata["retries"] == 0
    assert error.metadata["attempt"] == 1
    assert error.traceback.startswith("Traceback (most recent call last):\n")
    assert error.traceback.endswith("KeyError: 'missing thing'\n")
    assert 'raise KeyError(f"missing {x}")' in error.traceback
    # the stored error is text, not an exception object
    assert isinstance(result._get(preserve=True), StoredError)


def test_result_call_forwards_to_get():
    q = new_queue()

    @q.task()
    def value():
        return "v"

    result = value()
    assert result() is None
    drain(q)
    assert result(preserve=True) == "v"


def test_blocking_get_without_a_result_times_out():
    q = new_queue()

    @q.task()
    def value():
        return 1

    result = value()
    started = time.monotonic()
    with pytest.raises(ResultTimeout) as info:
        result.get(blocking=True, timeout=0.05)
    assert time.monotonic() - started >= 0.05
    assert str(info.value) == f"task {result.id} ({value.path}) produced no result in 0.05 s"
    assert result.is_revoked() is False


def test_blocking_get_revoke_on_timeout_revokes_the_task():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def value():
        return 1

    result = value()
    with pytest.raises(ResultTimeout):
        result.get(blocking=True, timeout=0.02, revoke_on_timeout=True)
    assert result.is_revoked() is True
    drain(q)
    assert events.signals() == ["enqueued", "revoked"]
    assert result() is None


def test_blocking_get_returns_when_a_worker_stores_the_value():
    q = new_queue()

    @q.task()
    def value():
        return "done"

    result = value()
    worker = threading.Timer(0.05, drain, args=(q,))
    worker.start()
    try:
        assert result.get(blocking=True, timeout=5) == "done"
    finally:
        worker.join()


def test_blocking_get_polls_with_backoff_up_to_max_delay():
    q = new_queue()

    @q.task()
    def value():
        return "late"

    result = value()
    waits = []

    def fake_wait(id, timeout):
        assert id == result.id
        waits.append(round(timeout, 6))
        if len(waits) == 6:
            drain(q)

    q.wait_for_result = fake_wait
    assert result.get(blocking=True, backoff=2, max_delay=0.01) == "late"
    assert waits == [0.001, 0.002, 0.004, 0.008, 0.01, 0.01]


def test_blocking_get_waits_no_longer_than_what_remains_of_the_timeout():
    q = new_queue()

    @q.task()
    def value():
        return 1

    result = value()
    waits = []
    q.wait_for_result = lambda id, timeout: waits.append(timeout)
    with pytest.raises(ResultTimeout):
        result.get(blocking=True, timeout=0.03, backoff=10, max_delay=5)
    assert waits  # it looked at least once
    assert max(waits) <= 0.03


def test_store_none():
    stores = new_queue(store_none=True)
    skips = new_queue()

    @stores.task()
    def nothing_stored():
        return None

    @skips.task()
    def nothing_skipped():
        return None

    kept = nothing_stored()
    dropped = nothing_skipped()
    drain(stores)
    drain(skips)
    assert stores.all_results() == {kept.id: None}
    assert kept.is_ready() is True
    assert skips.all_results() == {}
    assert dropped.is_ready() is False


def test_result_ttl_expires_stored_results():
    q = new_queue(result_ttl=0.05)

    @q.task()
    def value():
        return 1

    result = value()
    drain(q)
    assert result.is_ready() is True
    time.sleep(0.1)
    assert result.is_ready() is False
    assert result() is None


def test_queue_result_by_id():
    q = new_queue()

    @q.task()
    def value():
        return [1, "two"]

    result = value()
    assert q.result(result.id) is None
    drain(q)
    assert q.result_exists(result.id) is True
    assert q.result(result.id, preserve=True) == [1, "two"]
    assert q.result(result.id) == [1, "two"]
    assert q.result_exists(result.id) is False


def test_put_result_stores_a_value_for_an_id():
    q = new_queue()
    q.put_result("some-id", {"x": 1})
    assert q.result("some-id") == {"x": 1}


# ---------------------------------------------------------------------------------------------- groups


def test_result_group_get_iteration_and_indexing():
    q = new_queue()

    @q.task()
    def square(x):
        return x * x

    group = square.map(range(4))
    assert len(group) == 4
    assert repr(group) == "<ResultGroup of 4>"
    assert all(isinstance(r, Result) for r in group)
    assert group.get() == [None, None, None, None]
    drain(q)
    assert group.get(preserve=True) == [0, 1, 4, 9]
    assert group() == [0, 1, 4, 9]
    assert [r.get() for r in group] == [0, 1, 4, 9]
    assert group[2] == 4  # indexing reads the value (waiting for it), as in huey
    assert q.result_count() == 4  # read with preserve=True, then served from the handles' cache
    group.reset()
    assert group.get() == [0, 1, 4, 9]
    assert q.result_count() == 0
    group.reset()
    assert group.get() == [None, None, None, None]


def test_result_group_as_completed_yields_in_completion_order():
    q = new_queue()

    @q.task()
    def square(x):
        return x * x

    # priorities make the worker finish them in reverse order
    group = ResultGroup([square.schedule((x,), priority=x) for x in (1, 2, 3)])
    completed = group.as_completed(max_delay=0.01)
    run_next(q)
    assert next(completed) == 9
    run_next(q)
    assert next(completed) == 4
    run_next(q)
    assert next(completed) == 1
    assert list(completed) == []


def test_result_group_as_completed_raises_for_a_failed_member():
    q = new_queue()

    @q.task()
    def check(x):
        if x == 2:
            raise ValueError("two")
        return x

    group = check.map([1, 2])
    drain(q)
    seen = []
    with pytest.raises(TaskException) as info:
        for value in group.as_completed():
            seen.append(value)
    assert seen == [1]
    assert info.value.error == "ValueError('two')"


def test_result_group_as_completed_times_out():
    q = new_queue()

    @q.task()
    def value(x):
        return x

    group = value.map([1, 2])
    run_next(q)
    seen = []
    with pytest.raises(ResultTimeout) as info:
        for item in group.as_completed(timeout=0.05, max_delay=0.01):
            seen.append(item)
    assert seen == [1]
    assert str(info.value) == "1 task(s) of the group produced no result in 0.05 s"


# ---------------------------------------------------------------------------------------------- introspection


def test_pending_scheduled_all_results_len_and_flush():
    q = new_queue()

    @q.task()
    def value(x):
        return x

    value.schedule((3,), delay=600)
    value.schedule((4,), delay=60)
    assert len(q) == 2
    assert drain(q) == 2  # taken before their eta: moved to the schedule
    a = value(1)
    value(2)
    assert len(q) == 2
    assert q.pending_count() == 2
    assert [t.args for t in q.pending()] == [(1,), (2,)]
    assert [t.args for t in q.pending(limit=1)] == [(1,)]
    assert [t.args for t in q.scheduled()] == [(4,), (3,)]  # soonest first
    assert [t.args for t in q.scheduled(limit=1)] == [(4,)]
    assert q.scheduled_count() == 2

    run_next(q)
    assert q.all_results() == {a.id: 1}
    assert q.result_count() == 1
    assert len(q) == 1

    q.lock_task("held").acquire()
    q.flush()
    assert len(q) == 0
    assert q.scheduled() == []
    assert q.all_results() == {}
    assert q.is_locked("held") is False


def test_all_results_includes_stored_errors():
    q = new_queue()

    @q.task()
    def broken():
        raise RuntimeError("x")

    result = broken()
    drain(q)
    stored = q.all_results()
    assert list(stored) == [result.id]
    assert isinstance(stored[result.id], StoredError)
    assert stored[result.id].metadata["error"] == "RuntimeError('x')"
    assert repr(stored[result.id]) == "<StoredError \"RuntimeError('x')\">"


# ---------------------------------------------------------------------------------------------- task kinds


def test_context_true_passes_the_task():
    q = new_queue()

    @q.task(context=True)
    def who(x, task=None):
        return [task.id, task.name, task.attempt, task.redelivered, x]

    result = who(7)
    drain(q)
    assert result() == [result.id, who.name, 1, False, 7]


def test_context_true_needs_a_task_parameter():
    q = new_queue()
    with pytest.raises(ConfigurationError) as info:

        @q.task(context=True, name="no.task.param")
        def lacks(x):
            return x

    assert str(info.value) == (
        "task 'no.task.param' is declared with context=True, so it is called with a 'task' keyword "
        "argument; add a 'task' parameter (or **kwargs) to the function"
    )


class Resource:
    def __init__(self):
        self.log = []

    def __enter__(self):
        self.log.append("enter")
        return "handle"

    def __exit__(self, *exc_info):
        self.log.append("exit" if exc_info[0] is None else f"exit {exc_info[0].__name__}")


def test_context_task_runs_inside_the_context_manager():
    q = new_queue()
    resource = Resource()

    @q.context_task(resource)
    def work(x):
        resource.log.append(f"run {x}")
        return x

    result = work(1)
    assert resource.log == []
    drain(q)
    assert result() == 1
    assert resource.log == ["enter", "run 1", "exit"]


def test_context_task_as_argument_passes_what_it_yields():
    q = new_queue()
    resource = Resource()

    @q.context_task(resource, as_argument=True, retries=0)
    def work(handle, x):
        if x == "fail":
            raise ValueError("inside")
        return [handle, x]

    ok = work(1)
    bad = work("fail")
    drain(q)
    assert ok() == ["handle", 1]
    with pytest.raises(TaskException):
        bad()
    assert resource.log == ["enter", "exit", "enter", "exit ValueError"]
    assert work.call_local(2) == ["handle", 2]


def test_async_task_is_awaited():
    q = new_queue()

    @q.task()
    async def double(x):
        return x * 2

    result = double(21)
    drain(q)
    assert result() == 42


def test_async_task_inside_a_running_event_loop():
    import asyncio

    q = new_queue()

    @q.task()
    async def double(x):
        await asyncio.sleep(0)
        return x * 2

    result = double(4)

    async def consumer():
        drain(q)

    asyncio.run(consumer())
    assert result() == 8


# ---------------------------------------------------------------------------------------------- serialization


EXACT_VALUES = [
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2024, 2, 29, 12, 0),
    dt.date(1999, 12, 31),
    dt.time(13, 14, 15, 161718),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    Decimal("3.14159265358979323846264338327950288"),
    Decimal("-0.000"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    (1, (2, "three")),
    b"\x00\xff",
]


@pytest.mark.parametrize("value", EXACT_VALUES, ids=repr)
def test_json_round_trips_arguments_and_results_exactly(value):
    q = new_queue()
    seen = []

    @q.task()
    def echo(arg, *, kw):
        seen.append((arg, kw))
        return {"arg": arg, "list": [arg]}

    result = echo(value, kw=value)
    drain(q)
    [(arg, kw)] = seen
    assert (type(arg), type(kw)) == (type(value), type(value))
    assert arg == value
    assert kw == value
    assert str(arg) == str(value)
    back = result()
    assert type(back["arg"]) is type(value)
    assert back == {"arg": value, "list": [value]}


def test_stored_messages_are_signed_json_by_default():
    q = new_queue()

    @q.task()
    def echo(x):
        return x

    echo("hello")
    [data] = q.storage.enqueued_items()
    assert data[:3] == b"DTQ"
    assert data[4] & FLAG_SIGNED
    assert b'"name":"' + echo.path.encode() + b'"' in data
    assert q.codec.signed is True


def test_signing_false_writes_unsigned_frames():
    q = new_queue(signing=False)

    @q.task()
    def echo(x):
        return x

    result = echo(1)
    [data] = q.storage.enqueued_items()
    assert not data[4] & FLAG_SIGNED
    drain(q)
    assert result() == 1


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_pickle_serializer_is_opt_in():
    json_queue = new_queue()
    pickle_queue = new_queue(serializer="pickle")

    @json_queue.task()
    def json_echo(p):
        return p

    @pickle_queue.task()
    def pickle_echo(p):
        return Point(p.y, p.x)

    with pytest.raises(Exception) as info:
        json_echo(Point(1, 2))
    assert type(info.value).__name__ == "SerializationError"
    assert len(json_queue) == 0

    result = pickle_echo(Point(1, 2))
    drain(pickle_queue)
    assert result() == Point(2, 1)


def test_compression_shrinks_large_messages_and_round_trips():
    plain = new_queue()
    packed = new_queue(compression=True)
    payload = "abc" * 5000

    @plain.task()
    def plain_echo(x):
        return x

    @packed.task()
    def packed_echo(x):
        return x

    plain_echo(payload)
    result = packed_echo(payload)
    [plain_data] = plain.storage.enqueued_items()
    [packed_data] = packed.storage.enqueued_items()
    assert not plain_data[4] & FLAG_COMPRESSED
    assert packed_data[4] & FLAG_COMPRESSED
    assert len(packed_data) < len(plain_data) // 10
    drain(packed)
    assert result() == payload


def test_use_zlib_is_an_alias_of_compression():
    q = new_queue(use_zlib=True)
    assert q.compression is True
    assert q.codec.compression_level == 6


def test_a_call_option_given_as_none_means_the_task_s_default():
    q = new_queue()

    @q.task(timeout=1, priority=3, retries=2, retry_delay=4, expires=60)
    def work():
        return None

    work(timeout=None, priority=None, retries=None, retry_delay=None, expires=None)
    work.schedule(timeout=0, priority=0, retries=0, retry_delay=0)
    defaulted, overridden = q.pending()
    assert (defaulted.timeout, defaulted.priority, defaulted.retries, defaulted.retry_delay) == (1, 3, 2, 4)
    assert defaulted.expires is not None  # the decorator's 60 s, counted from the enqueue
    assert (overridden.timeout, overridden.priority, overridden.retries, overridden.retry_delay) == (0, 0, 0, 0)
