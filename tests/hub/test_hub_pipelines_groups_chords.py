"""Pipelines (.then / .error), group() and chord() with ChordResult; exceptions reaching handlers and callbacks."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from django_tasks_q import (
    CancelExecution,
    ChordResult,
    MemoryHuey,
    RedisHuey,
    ResultGroup,
    Task,
    TaskException,
    chord,
    group,
)
from django_tasks_q.consumer import Consumer, ConsumerOptions
from tests.support.hub import UTC, Recorder, drain, later, new_queue, run_next


def make():
    q = new_queue()
    events = Recorder(q)
    calls = []

    @q.task(name="t.add")
    def add(a, b=0):
        calls.append(("add", a, b))
        return a + b

    @q.task(name="t.pair")
    def pair(a):
        calls.append(("pair", a))
        return (a, a)

    @q.task(name="t.as_kwargs")
    def as_kwargs(a, b):
        calls.append(("as_kwargs", a, b))
        return {"b": a * b}

    @q.task(name="t.nothing")
    def nothing(*args, **kwargs):
        calls.append(("nothing", args, kwargs))

    @q.task(name="t.fail")
    def fail(*args):
        calls.append(("fail", args))
        raise ValueError(f"failed with {args}")

    @q.task(name="t.handler")
    def handler(*args):
        calls.append(("handler", args))
        return "handled"

    @q.task(name="t.total")
    def total(*args):
        calls.append(("total", args))
        return sum(args[-1]) + sum(args[:-1])

    return q, events, calls, add, pair, as_kwargs, nothing, fail, handler, total


# ---------------------------------------------------------------------------------------------- pipelines


def test_a_pipeline_passes_each_result_to_the_next_step():
    q, _events, calls, add, pair, as_kwargs, nothing, _fail, _handler, _total = make()
    pipeline = add.s(1, 2).then(pair).then(as_kwargs).then(add, 5).then(nothing)
    results = q.enqueue(pipeline)
    assert isinstance(results, ResultGroup)
    assert [r.id for r in results] == [step.id for step in pipeline.chain()]
    assert len(q) == 1  # only the head is enqueued; each step enqueues the next
    assert drain(q) == 5
    assert calls == [
        ("add", 1, 2),
        ("pair", 3),  # a scalar is appended to the arguments
        ("as_kwargs", 3, 3),  # a tuple extends them
        ("add", 5, 9),  # a dict updates the keyword arguments
        ("nothing", (14,), {}),
    ]
    assert results.get() == [3, (3, 3), {"b": 9}, 14, None]


def test_a_dict_result_becomes_keyword_arguments_and_none_adds_nothing():
    q, _events, calls, add, _pair, as_kwargs, nothing, _fail, _handler, _total = make()
    results = q.enqueue(as_kwargs.s(2, 5).then(add, 1).then(nothing).then(nothing, "x"))
    drain(q)
    assert calls == [
        ("as_kwargs", 2, 5),
        ("add", 1, 10),  # {"b": 10} updated the keyword arguments of add.s(1)
        ("nothing", (11,), {}),
        ("nothing", ("x",), {}),  # the previous step returned None: nothing added
    ]
    assert results.get() == [{"b": 10}, 11, None, None]


def test_pipeline_signals():
    q, events, _calls, add, *_ = make()
    q.enqueue(add.s(1).then(add, 2))
    drain(q)
    assert events.pairs() == [
        ("enqueued", "add"),
        ("executing", "add"),
        ("complete", "add"),
        ("enqueued", "add"),
        ("executing", "add"),
        ("complete", "add"),
    ]


def test_a_failing_step_stops_the_pipeline_and_runs_its_error_handler():
    q, events, calls, add, _pair, _as_kwargs, _nothing, fail, handler, _total = make()
    failing_step = fail.s("extra").error(handler, "context")
    results = q.enqueue(add.s(1, 2).then(failing_step).then(add, 100))
    assert len(results) == 3
    assert drain(q) == 3
    assert [c[0] for c in calls] == ["add", "fail", "handler"]
    assert calls[1] == ("fail", ("extra", 3))
    _name, (context, error) = calls[2]
    assert context == "context"
    # the handler gets the exception the task raised, its own class and args, as in huey
    assert type(error) is ValueError
    assert error.args == ("failed with ('extra', 3)",)
    step_results = list(results)
    assert results[0] == 3  # indexing a ResultGroup reads the value, as in huey
    # reading the failed step's result raises TaskException with the stored metadata, as in huey
    with pytest.raises(TaskException) as info:
        step_results[1].get()
    assert info.value.error == "ValueError(\"failed with ('extra', 3)\")"
    assert info.value.metadata["task"] == "t.fail"
    assert info.value.metadata["task_id"] == step_results[1].id
    assert info.value.metadata["type"] == "builtins.ValueError"
    assert info.value.traceback.endswith("ValueError: failed with ('extra', 3)\n")
    assert step_results[2].get() is None  # never ran
    assert events.pairs() == [
        ("enqueued", "add"),
        ("executing", "add"),
        ("complete", "add"),
        ("enqueued", "fail"),
        ("executing", "fail"),
        ("error", "fail"),
        ("enqueued", "handler"),
        ("executing", "handler"),
        ("complete", "handler"),
    ]


def test_error_belongs_to_the_task_it_is_called_on():
    q, _events, calls, add, _pair, _as_kwargs, _nothing, fail, handler, _total = make()
    # as in huey, .error() on the head attaches the handler to the head, not to later steps
    q.enqueue(add.s(1).then(fail).error(handler))
    drain(q)
    assert [c[0] for c in calls] == ["add", "fail"]
    calls.clear()
    q.enqueue(fail.s(1).then(add, 2).error(handler))
    drain(q)
    assert [c[0] for c in calls] == ["fail", "handler"]


def test_an_error_handler_runs_for_each_failed_attempt_as_in_huey():
    q, events, calls, _add, _pair, _as_kwargs, _nothing, fail, handler, _total = make()
    q.enqueue(fail.s(retries=2).error(handler))
    assert drain(q) == 6
    assert [c[0] for c in calls] == ["fail", "handler", "fail", "handler", "fail", "handler"]
    assert events.signals().count("retrying") == 2
    # each handler call gets only its own attempt's error
    assert [len(args) for name, args in calls if name == "handler"] == [1, 1, 1]


def test_without_intermediate_errors_an_error_handler_waits_for_the_last_retry():
    q = new_queue(store_intermediate_errors=False)
    calls = []

    @q.task(retries=2)
    def fail():
        calls.append("fail")
        raise ValueError("no")

    @q.task()
    def handler(error):
        calls.append(("handler", repr(error)))

    result = q.enqueue(fail.s().error(handler))
    run_next(q)
    assert result.is_ready() is False  # the failed attempt stored nothing
    assert drain(q) == 3
    assert calls == ["fail", "fail", "fail", ("handler", "ValueError('no')")]


def test_a_step_that_succeeds_on_a_retry_continues_the_pipeline_once():
    q = new_queue()
    calls = []

    @q.task(retries=2)
    def flaky(x):
        calls.append(("flaky", x))
        if len(calls) < 2:
            raise ConnectionError("once")
        return x + 1

    @q.task()
    def after(x):
        calls.append(("after", x))
        return x * 2

    results = q.enqueue(flaky.s(1).then(after))
    assert drain(q) == 3
    assert calls == [("flaky", 1), ("flaky", 1), ("after", 2)]
    assert results.get() == [2, 4]


def test_a_pipeline_in_immediate_mode():
    q = new_queue(immediate=True)

    @q.task()
    def add(a, b):
        return a + b

    results = q.enqueue(add.s(1, 2).then(add, 10).then(add, 100))
    assert results.get() == [3, 13, 113]


def test_a_pipeline_with_a_delayed_head():
    q, _events, calls, add, *_ = make()
    results = q.enqueue(add.s(1, 1, delay=60).then(add, 5))
    assert len(q) == 1
    drain(q)
    assert calls == []
    assert len(q) == 0
    assert [t.id for t in q.scheduled()] == [next(iter(results)).id]
    drain(q, later(61))
    assert results.get() == [2, 7]


# ---------------------------------------------------------------------------------------------- group


def test_a_group_is_built_first_and_enqueued_later():
    q, events, _calls, add, _pair, _as_kwargs, _nothing, fail, *_ = make()
    calls = group([add.s(1, 2), add.s(3, 4), fail.s()])
    assert len(q) == 0  # nothing is written until the group is enqueued
    results = q.enqueue(calls)
    assert isinstance(results, ResultGroup)
    assert len(q) == 3
    assert events.signals() == ["enqueued", "enqueued", "enqueued"]
    drain(q)
    assert [results[0], results[1]] == [3, 7]
    with pytest.raises(TaskException):
        results[2]


def test_group_results_iterate_and_complete():
    q, _events, _calls, add, *_ = make()
    calls_made = [add.s(x, x) for x in range(3)]
    results = group(iter(calls_made)).enqueue()
    assert [r.id for r in results] == [c.id for c in calls_made]
    drain(q)
    assert list(results.as_completed()) == [0, 2, 4]


# ---------------------------------------------------------------------------------------------- chord


def test_a_chord_runs_its_callback_with_the_members_results_in_order():
    q, events, calls, add, _pair, _as_kwargs, _nothing, _fail, _handler, total = make()
    result = q.enqueue(chord([add.s(x, 10, priority=x) for x in (1, 2, 3)], total.s(1000)))
    assert isinstance(result, ChordResult)
    assert len(result.results) == 3
    assert result.pipeline_results is None
    assert repr(result) == f"<ChordResult {result.task!r} after 3 tasks>"
    assert len(q) == 3
    assert drain(q) == 4
    # the members ran in priority order (3, 2, 1) but the callback gets them in header order
    assert [c[1] for c in calls[:3]] == [3, 2, 1]
    assert calls[3] == ("total", (1000, [11, 12, 13]))
    assert result.get() == 1036
    assert result.results.get() == [11, 12, 13]
    assert result.callback.get() == 1036
    assert events.pairs()[-3:] == [("enqueued", "total"), ("executing", "total"), ("complete", "total")]


def test_the_callback_runs_only_after_the_last_member():
    q, _events, _calls, add, _pair, _as_kwargs, _nothing, _fail, _handler, total = make()
    result = chord([add.s(1), add.s(2)], total).enqueue()  # a bare task is a callback without arguments
    run_next(q)
    assert len(q) == 1
    assert result.get() is None
    run_next(q)
    assert len(q) == 1  # now the callback is enqueued
    run_next(q)
    assert result.get() == 3


def test_a_chord_callback_receives_a_failed_members_error_in_its_place():
    q, events, calls, add, _pair, _as_kwargs, _nothing, fail, handler, _total = make()

    @q.task(name="t.inspect")
    def inspect_members(values):
        calls.append(("inspect", [repr(v) if isinstance(v, Exception) else v for v in values]))
        return len([v for v in values if type(v) is ValueError])

    result = q.enqueue(chord([add.s(1), fail.s("member"), add.s(3)], inspect_members.s().error(handler)))
    drain(q)
    assert [c[0] for c in calls] == ["add", "fail", "add", "inspect"]  # as in huey, the callback runs
    assert calls[-1] == ("inspect", [1, "ValueError(\"failed with ('member',)\")", 3])
    assert result.get() == 1
    members = list(result.results)
    assert members[0].get() == 1
    with pytest.raises(TaskException):
        members[1].get()
    assert members[2].get() == 3
    assert [e.short for e in events.events if e.signal == "error"] == ["fail"]


def test_a_chord_pipeline_member_counts_with_its_last_step():
    q, _events, calls, add, _pair, _as_kwargs, _nothing, fail, _handler, total = make()
    result = q.enqueue(chord([add.s(1).then(add, 10), fail.s().then(add, 5), add.s(2)], total))
    drain(q)
    [(_name, (values,))] = [c for c in calls if c[0] == "total"]
    assert values[0] == 11 and values[2] == 2
    assert type(values[1]) is ValueError  # the head failed: its pipeline's place holds its exception
    assert values[1].args == ("failed with ()",)
    members = list(result.results)
    assert members[0].get() == 11


def test_a_chord_with_a_chained_callback_and_a_nested_chord():
    q, _events, _calls, add, _pair, _as_kwargs, _nothing, _fail, _handler, total = make()
    inner = chord([add.s(1), add.s(2)], total)
    result = q.enqueue(group([inner, add.s(10)]).then(total).then(add, 100))
    drain(q)
    assert result.get() == 13  # total([total([1, 2]), 10])
    assert result.pipeline_results.get() == [13, 113]
def test_a_chord_member_that_succeeds_on_retry_lets_the_callback_run_once():
    q = new_queue()
    attempts = []

    @q.task(retries=1)
    def flaky(x):
        attempts.append(x)
        if attempts.count(x) == 1 and x == 2:
            raise ConnectionError("once")
        return x

    @q.task()
    def collect(values):
        return values

    result = q.enqueue(chord([flaky.s(1), flaky.s(2)], collect.s()))
    assert drain(q) == 4
    assert result.get() == [1, 2]


def test_a_member_run_twice_does_not_fire_the_callback_twice():
    q, _events, calls, add, _pair, _as_kwargs, _nothing, _fail, _handler, total = make()
    result = q.enqueue(chord([add.s(1), add.s(2)], total.s()))
    first = q.reserve()
    member = Task.from_message(q.codec.decode(first.data), q.registry.get)
    q.process(first)
    q.execute(member)  # a redelivery of the same member after a crash before its ack
    assert len(q) == 1  # the other member only
    drain(q)
    assert [c[0] for c in calls].count("total") == 1
    assert result.get() == 3


def test_a_chord_in_immediate_mode():
    q = new_queue(immediate=True)

    @q.task()
    def square(x):
        return x * x

    @q.task()
    def collect(values):
        return sum(values)

    result = q.enqueue(chord([square.s(x) for x in range(1, 4)], collect.s()))
    assert result.get() == 14
    assert result.results.get() == [1, 4, 9]


@pytest.mark.parametrize("how", ["revoked", "expired", "canceled"])
def test_a_chord_member_that_never_runs_gives_the_callback_none_instead_of_hanging(how):
    q, events, calls, add, _pair, _as_kwargs, _nothing, _fail, handler, _total = make()

    @q.pre_execute()
    def cancel_marked(task):
        if task.kwargs.get("b") == -1:
            raise CancelExecution()

    skipped = add.s(2, b=-1) if how == "canceled" else add.s(2, expires=5) if how == "expired" else add.s(2)
    @q.task(name="t.collect")
    def collect(values):
        calls.append(("collect", values))
        return values

    result = q.enqueue(chord([add.s(1), skipped], collect.s().error(handler)))
    if how == "revoked":
        list(result.results)[1].revoke()
    drain(q, later(6) if how == "expired" else None)
    assert [c[0] for c in calls] == ["add", "collect"]
    assert result.get() == [1, None]  # as in huey, a member that never ran contributes None
    assert events.for_task(result.id) == ["enqueued", "executing", "complete"]


def test_a_pipeline_steps_relative_expiry_counts_from_its_own_enqueue(monkeypatch):
    import django_tasks_q.hub.enqueue as enqueue_module
    import django_tasks_q.hub.execution as execution_module
    import django_tasks_q.timeutils as timeutils_module

    start = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clock = {"now": start}
    monkeypatch.setattr(timeutils_module, "now_utc", lambda: clock["now"])
    monkeypatch.setattr(enqueue_module, "now_utc", lambda: clock["now"])
    monkeypatch.setattr(execution_module, "now_utc", lambda: clock["now"])
    q = new_queue()
    ran = []

    @q.task(expires=60)
    def step(x):
        ran.append(x)
        return x + 1

    q.enqueue(step.s(1).then(step))
    clock["now"] = start + dt.timedelta(seconds=50)  # the first step starts in time and enqueues the second
    assert run_next(q, clock["now"]) is True
    assert ran == [1]
    clock["now"] = start + dt.timedelta(seconds=100)  # 50 s after the second step was enqueued
    assert run_next(q, clock["now"]) is True
    assert ran == [1, 2]


def test_a_chord_whose_callback_is_no_longer_registered_fails_instead_of_vanishing():
    q = new_queue()

    @q.task()
    def part(n):
        return n

    @q.task()
    def combine(values):
        return sum(values)

    result = q.enqueue(chord([part.s(1), part.s(2)], combine.s()))
    q.registry.unregister(combine.path)
    drain(q)
    with pytest.raises(TaskException) as info:
        result.get()
    assert "callback task is not registered" in info.value.error
    assert [r.get() for r in result.results] == [1, 2]


# ------------------------------------------------------------------------- exceptions through a consumer


class QuotaError(Exception):
    """Raised by the tasks below; its module is imported in the consumer, so it is rebuilt there."""


class TwoPartError(Exception):
    """Its args do not fit its __init__: it reaches handlers as a TaskException holding the error metadata."""

    def __init__(self, used, limit):
        super().__init__(f"{used} of {limit}")


@pytest.fixture(params=["memory", "redis"])
def consumed_queue(request):
    """A queue of each storage; ``consume(queue)`` runs a real consumer on it until nothing is left."""
    name = f"exc-{uuid.uuid4().hex[:10]}"
    if request.param == "memory":
        queue = MemoryHuey(name, block_timeout=0)
    else:
        queue = RedisHuey(name, url=request.getfixturevalue("redis_url"), blocking=False)
    yield queue
    queue.storage.flush_all()
    queue.storage.close()


def consume(queue):
    options = ConsumerOptions(workers=2, initial_delay=0.01, max_delay=0.05)
    consumer = Consumer([queue], options, burst=True, install_signal_handlers=False, monitor=False)
    assert consumer.run() == 0


def test_an_error_handler_receives_the_exception_the_task_raised(consumed_queue):
    q = consumed_queue
    received = []

    @q.task()
    def over_quota(used, limit):
        raise QuotaError(used, {"limit": limit, "at": dt.datetime(2030, 1, 1, tzinfo=UTC)})

    @q.task()
    def two_parts(used, limit):
        raise TwoPartError(used, limit)

    @q.task()
    def on_error(context, error):
        received.append((context, error))

    first = q.enqueue(over_quota.s(5, 3).error(on_error, "quota"))
    second = q.enqueue(two_parts.s(5, 3).error(on_error, "two parts"))
    consume(q)
    errors = dict(received)
    assert type(errors["quota"]) is QuotaError
    assert errors["quota"].args == (5, {"limit": 3, "at": dt.datetime(2030, 1, 1, tzinfo=UTC)})
    fallback = errors["two parts"]  # cannot be rebuilt from its args: the TaskException of its metadata
    assert type(fallback) is TaskException
    assert repr(fallback) == "TwoPartError('5 of 3')"
    assert fallback.metadata["task_id"] == second.id
    assert fallback.traceback.endswith("TwoPartError: 5 of 3\n")
    with pytest.raises(TaskException) as info:  # reading the result still raises TaskException
        first.get()
    assert info.value.error == "QuotaError(5, {'limit': 3, 'at': datetime.datetime(2030, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)})"
    assert info.value.metadata["type"] == f"{__name__}.QuotaError"


def test_a_chord_callback_and_its_error_handler_receive_the_exceptions_raised(consumed_queue):
    q = consumed_queue
    handled = []

    @q.task()
    def member(n):
        if n < 0:
            raise QuotaError(n)
        return n

    @q.task()
    def collect(values):
        return values  # the members' exceptions included: stored as values

    @q.task()
    def explode(values):
        raise KeyError(len(values))

    @q.task()
    def on_error(error):
        handled.append(error)

    result = q.enqueue(chord([member.s(1), member.s(-2).then(member), member.s(-3)], collect.s()))
    failing = q.enqueue(chord([member.s(1), member.s(-1)], explode.s().error(on_error)))
    consume(q)
    values = result.get()
    assert values[0] == 1
    # a pipeline member whose head failed contributes the head's exception
    assert type(values[1]) is QuotaError and values[1].args == (-2,)
    assert type(values[2]) is QuotaError and values[2].args == (-3,)
    with pytest.raises(TaskException):  # the failed member's own result still raises TaskException
        list(result.results)[2].get()
    assert [type(e) for e in handled] == [KeyError] and handled[0].args == (2,)
    with pytest.raises(TaskException) as info:
        failing.get()
    assert info.value.error == "KeyError(2)"


def test_a_task_may_return_an_exception(consumed_queue):
    q = consumed_queue

    @q.task()
    def diagnose(code):
        return [QuotaError(code), SystemExit(code)]

    result = diagnose(7)
    consume(q)
    found, stopped = result.get()
    assert type(found) is QuotaError and found.args == (7,)
    # a SystemExit is never re-created from data: it comes back as a TaskException with its repr
    assert type(stopped) is TaskException and repr(stopped) == "SystemExit(7)"


def test_an_exception_too_large_to_carry_again_reaches_its_handler_as_task_exception():
    # The error metadata holds the error's text three times already and must fit in one value of max_size:
    # an exception whose args and repr would take over a quarter of it more is left out of the metadata.
    q = new_queue(max_message_size=64 * 1024)
    received = []

    @q.task()
    def shout(size):
        raise ValueError("x" * size)

    @q.task()
    def on_error(error):
        received.append(error)

    small = q.enqueue(shout.s(1000).error(on_error))
    large = q.enqueue(shout.s(9000).error(on_error))
    drain(q)
    assert type(received[0]) is ValueError and received[0].args == ("x" * 1000,)
    assert type(received[1]) is TaskException and received[1].error == repr("x" * 9000).join(("ValueError(", ")"))
    assert "exception" not in received[1].metadata
    for result in (small, large):
        with pytest.raises(TaskException):
            result.get()
