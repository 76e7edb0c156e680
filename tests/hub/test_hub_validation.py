"""Enqueue-time validation (RELIABILITY R13): each bad call raises a specific exception naming the problem, and
nothing is written — no message, no schedule entry, no signal."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections import OrderedDict

import pytest

from django_tasks_q import (
    EnqueueError,
    InvalidEta,
    InvalidOption,
    InvalidPriority,
    MessageTooLarge,
    SerializationError,
    TaskNotRegistered,
    chord,
    group,
)
from tests.support.hub import UTC, Recorder, naive_utc, new_queue


class Color(enum.IntEnum):
    RED = 1


def make():
    """A queue with one task named ``t.f(a, b=1)`` and a recorder of its signals."""
    q = new_queue()
    events = Recorder(q)

    @q.task(name="t.f")
    def f(a, b=1):
        return a

    return q, events, f


def stored(q):
    """Everything a call could have written to the storage."""
    s = q.storage
    return {
        "queue": s.queue_size(),
        "schedule": s.schedule_size(),
        "results": s.result_store_size(),
        "in_flight": s.in_flight_size(),
        "dead": s.dead_letter_count(),
    }


def assert_message(error, expected):
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(str(error)), str(error)
    else:
        assert str(error) == expected


NOTHING = {"queue": 0, "schedule": 0, "results": 0, "in_flight": 0, "dead": 0}

BAD_CALLS = [
    # arguments that the serializer cannot round-trip
    (
        "object argument",
        lambda f: f(object()),
        SerializationError,
        "args",
        "args[0]: object of type object cannot be serialized as JSON",
    ),
    (
        "object nested in a keyword argument",
        lambda f: f(1, b={"x": [object()]}),
        SerializationError,
        "kwargs",
        "kwargs['b']['x'][0]: object of type object cannot be serialized as JSON",
    ),
    (
        "dict with an int key",
        lambda f: f({1: "one"}),
        SerializationError,
        "args",
        "args[0]: dict key 1 is not a string",
    ),
    (
        "NaN",
        lambda f: f(float("nan")),
        SerializationError,
        "args",
        "args[0]: float nan cannot be serialized as JSON (JSON has no NaN or Infinity)",
    ),
    (
        "an int subclass that would come back as int",
        lambda f: f(Color.RED),
        SerializationError,
        "args",
        "args[0]: object of type tests.hub.test_hub_validation.Color cannot be serialized as JSON "
        "(it is a subclass of int and would come back as a plain int)",
    ),
    (
        "an OrderedDict that would come back as dict",
        lambda f: f(OrderedDict(a=1)),
        SerializationError,
        "args",
        "args[0]: object of type collections.OrderedDict cannot be serialized as JSON "
        "(it is a subclass of dict and would come back as a plain dict)",
    ),
    (
        "a bad item in map()",
        lambda f: f.map([1, 2, object()]),
        SerializationError,
        "args",
        "args[0]: object of type object cannot be serialized as JSON",
    ),
    # arguments that do not fit the function
    (
        "unexpected keyword",
        lambda f: f(1, c=2),
        InvalidOption,
        "options",
        "task 't.f': arguments do not match its signature: got an unexpected keyword argument 'c'",
    ),
    (
        "too many positional arguments",
        lambda f: f(1, 2, 3),
        InvalidOption,
        "options",
        "task 't.f': arguments do not match its signature: too many positional arguments",
    ),
    (
        "missing argument",
        lambda f: f(),
        InvalidOption,
        "options",
        "task 't.f': arguments do not match its signature: missing a required argument: 'a'",
    ),
    (
        "missing argument through schedule()",
        lambda f: f.schedule(kwargs={"b": 2}, delay=5),
        InvalidOption,
        "options",
        "task 't.f': arguments do not match its signature: missing a required argument: 'a'",
    ),
    # unknown options
    (
        "unknown call option by name",
        lambda f: f.queue.enqueue_call("t.f", (1,), bogus=1),
        InvalidOption,
        "options",
        "task 't.f': unknown call option(s) ['bogus']",
    ),
    (
        "retries negative",
        lambda f: f(1, retries=-1),
        InvalidOption,
        "retries",
        "task 't.f': retries must be a non-negative int, got -1",
    ),
    (
        "retries not an int",
        lambda f: f.schedule((1,), retries=1.5),
        InvalidOption,
        "retries",
        "task 't.f': retries must be a non-negative int, got 1.5",
    ),
    (
        "retry_delay negative",
        lambda f: f(1, retry_delay=-1),
        InvalidOption,
        "retry_delay",
        "task 't.f': retry_delay must be a non-negative number, got -1",
    ),
    (
        "retry_delay NaN",
        lambda f: f(1, retry_delay=float("nan")),
        InvalidOption,
        "retry_delay",
        "task 't.f': retry_delay must be a non-negative number, got nan",
    ),
    (
        "timeout negative",
        lambda f: f(1, timeout=-1),
        InvalidOption,
        "timeout",
        "task 't.f': timeout must be a non-negative number, got -1",
    ),
    (
        "timeout negative",
        lambda f: f.schedule((1,), timeout=-1),
        InvalidOption,
        "timeout",
        "task 't.f': timeout must be a non-negative number, got -1",
    ),
    (
        "empty id",
        lambda f: f.schedule((1,), id=""),
        InvalidOption,
        "id",
        "task 't.f': id must be a non-empty string, got ''",
    ),
    (
        "id not a string",
        lambda f: f.schedule((1,), id=5),
        InvalidOption,
        "id",
        "task 't.f': id must be a non-empty string, got 5",
    ),
    # payload size
    (
        "payload over the size limit",
        lambda f: f("x" * (1024 * 1024)),
        MessageTooLarge,
        "payload",
        # the envelope's size varies by a byte or two with the enqueue time's text
        re.compile(r"encoded message body is 10488\d\d bytes, over the limit of 1048576 bytes"),
    ),
    # priority
    (
        "priority above the range",
        lambda f: f(1, priority=32768),
        InvalidPriority,
        "priority",
        "task 't.f': priority 32768 is out of range [-32768, 32767]",
    ),
    (
        "priority below the range",
        lambda f: f.schedule((1,), priority=-32769),
        InvalidPriority,
        "priority",
        "task 't.f': priority -32769 is out of range [-32768, 32767]",
    ),
    (
        "priority not an int",
        lambda f: f(1, priority="high"),
        InvalidPriority,
        "priority",
        "task 't.f': priority must be an int, got str: 'high'",
    ),
    (
        "priority a float",
        lambda f: f(1, priority=1.5),
        InvalidPriority,
        "priority",
        "task 't.f': priority must be an int, got float: 1.5",
    ),
    (
        "priority a bool",
        lambda f: f(1, priority=True),
        InvalidPriority,
        "priority",
        "task 't.f': priority must be an int, got bool: True",
    ),
    # eta, delay, expires
    (
        "eta a string",
        lambda f: f.schedule((1,), eta="tomorrow"),
        InvalidEta,
        "eta",
        "eta must be a datetime, got str: 'tomorrow'",
    ),
    (
        "eta a date",
        lambda f: f(1, eta=dt.date(2030, 1, 1)),
        InvalidEta,
        "eta",
        "eta must be a datetime, got date: datetime.date(2030, 1, 1)",
    ),
    (
        "eta and delay",
        lambda f: f.schedule((1,), eta=dt.datetime(2030, 1, 1, tzinfo=UTC), delay=5),
        InvalidEta,
        "eta",
        "give either eta or delay, not both",
    ),
    (
        "eta out of range once in UTC",
        lambda f: f.schedule((1,), eta=dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
        InvalidEta,
        "eta",
        "eta datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, "
        "tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=68400))) "
        "cannot be expressed in UTC: out of range",
    ),
    (
        "delay infinite",
        lambda f: f(1, delay=float("inf")),
        InvalidEta,
        "delay",
        "delay must be a finite duration, got inf",
    ),
    (
        "delay a string",
        lambda f: f.schedule((1,), delay="5"),
        InvalidEta,
        "delay",
        "delay must be a number of seconds or a timedelta, got str: '5'",
    ),
    (
        "delay beyond the last date",
        lambda f: f.schedule((1,), delay=1e12),
        InvalidEta,
        "delay",
        "delay 1000000000000.0 reaches beyond the last representable date",
    ),
    (
        "expires a string",
        lambda f: f.schedule((1,), expires="soon"),
        InvalidEta,
        "expires",
        "expires must be a number of seconds or a timedelta, got str: 'soon'",
    ),
    (
        "expires negative",
        lambda f: f(1, expires=-1),
        InvalidEta,
        "expires",
        "expires must be a finite, non-negative duration, got -1",
    ),
    (
        "expires beyond the last date",
        lambda f: f(1, expires=1e20),
        InvalidEta,
        "expires",
        "expires 1e+20 reaches beyond the last representable date",
    ),
]


@pytest.mark.parametrize(
    ("label", "call", "kind", "field", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_call_raises_a_specific_error_and_writes_nothing(label, call, kind, field, message):
    q, events, f = make()
    with pytest.raises(EnqueueError) as info:
        call(f)
    assert type(info.value) is kind
    assert_message(info.value, message)
    assert info.value.field == field
    assert stored(q) == NOTHING
    assert events.signals() == []


@pytest.mark.parametrize(
    ("label", "call", "kind", "field", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_call_in_immediate_mode_runs_nothing(label, call, kind, field, message):
    q = new_queue(immediate=True)
    events = Recorder(q)
    ran = []

    @q.task(name="t.f")
    def f(a, b=1):
        ran.append(a)
        return a

    with pytest.raises(kind) as info:
        call(f)
    assert_message(info.value, message)
    assert ran == []
    assert events.signals() == []
    assert stored(q) == NOTHING


def test_a_smaller_size_limit_is_enforced():
    q = new_queue(max_message_size=1024)
    events = Recorder(q)

    @q.task(name="t.g")
    def g(x):
        return x

    g("y" * 500)  # fits
    with pytest.raises(MessageTooLarge) as info:
        g("y" * 2000)
    assert str(info.value) == "encoded message body is 2303 bytes, over the limit of 1024 bytes"
    assert info.value.field == "payload"
    assert len(q) == 1
    assert events.signals() == ["enqueued"]


def test_the_extreme_priorities_are_accepted():
    q, _events, f = make()
    f(1, priority=32767)
    f(2, priority=-32768)
    assert [(t.args, t.priority) for t in q.pending()] == [((1,), 32767), ((2,), -32768)]


# ---------------------------------------------------------------------------------------------- registry


def test_a_task_removed_from_the_registry_cannot_be_enqueued():
    q, events, f = make()
    assert q.registry.unregister("t.f") is True
    with pytest.raises(TaskNotRegistered) as info:
        f(1)
    assert str(info.value) == f"task 't.f' is not registered on queue {q.name!r}"
    assert info.value.field == "name"
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_an_unknown_name_cannot_be_enqueued():
    q, events, _f = make()
    with pytest.raises(TaskNotRegistered) as info:
        q.enqueue_call("os.system", ("rm -rf /",))
    assert str(info.value) == f"no task named 'os.system' is registered on queue {q.name!r}"
    assert stored(q) == NOTHING
    assert events.signals() == []


def other_queue_task():
    other = new_queue("other")

    @other.task(name="t.other")
    def elsewhere(x=None):
        return x

    return elsewhere


def test_a_call_of_another_queues_task_is_refused():
    q, events, _f = make()
    with pytest.raises(TaskNotRegistered) as info:
        q.enqueue(other_queue_task().s())
    assert str(info.value) == f"no task named 't.other' is registered on queue {q.name!r}"
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_a_pipeline_step_of_another_queue_is_refused_before_anything_runs():
    q, events, f = make()
    with pytest.raises(TaskNotRegistered) as info:
        q.enqueue(f.s(1).then(f).then(other_queue_task()))
    assert str(info.value) == f"no task named 't.other' is registered on queue {q.name!r}"
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_an_error_handler_of_another_queue_is_refused():
    q, events, f = make()
    with pytest.raises(TaskNotRegistered):
        q.enqueue(f.s(1).error(other_queue_task()))
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_a_group_member_of_another_queue_is_refused_and_no_member_is_written():
    q, events, f = make()
    with pytest.raises(TaskNotRegistered):
        q.enqueue(group([f.s(1), f.s(2), other_queue_task().s()]))
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_a_group_with_a_bad_argument_writes_no_member():
    q, events, f = make()
    with pytest.raises(SerializationError) as info:
        group([f.s(1), f.s(object())]).enqueue()
    assert str(info.value) == "args[0]: object of type object cannot be serialized as JSON"
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_a_chord_callback_of_another_queue_is_refused():
    q, events, f = make()
    with pytest.raises(TaskNotRegistered):
        q.enqueue(chord([f.s(1), f.s(2)], other_queue_task().s()))
    assert stored(q) == NOTHING
    assert events.signals() == []


def test_group_and_chord_need_task_calls():
    q, _events, f = make()
    with pytest.raises(InvalidOption) as info:
        group([])
    assert str(info.value) == "group() needs at least one task call"
    with pytest.raises(InvalidOption) as info:
        chord([], f.s())
    assert str(info.value) == "chord() needs at least one task call in its header"
    with pytest.raises(InvalidOption) as info:
        group([f])
    assert str(info.value) == "group() and chord() take task calls made with .s()"
    with pytest.raises(InvalidOption) as info:
        chord([f.s(1)], "t.f")
    assert str(info.value) == "chord() callback must be a task, or a task call made with .s()"
    with pytest.raises(InvalidOption) as info:
        chord([group([f.s(1)])], f)
    assert str(info.value) == "a group cannot be a chord member: use group(...).then(callback) to make it a chord"
    with pytest.raises(InvalidOption) as info:
        q.enqueue("t.f")
    assert str(info.value) == "enqueue() takes a task call, a group or a chord, got str"
    assert stored(q) == NOTHING


def test_then_adds_its_arguments_to_a_task_call_and_refuses_what_is_not_a_task():
    _q, _events, f = make()
    step = f.s(2)
    f.s(1).then(step, 3)  # as in huey: arguments given to .then() are added to the call's
    assert step.args == (2, 3)
    with pytest.raises(InvalidOption) as info:
        f.s(1).then("t.f")
    assert str(info.value) == "expected a task or a task call (.s()), got str"


# ---------------------------------------------------------------------------------------------- decorator time


@pytest.mark.parametrize(
    ("options", "kind", "message"),
    [
        ({"priority": 40000}, InvalidPriority, "task 't.h': priority 40000 is out of range [-32768, 32767]"),
        ({"retries": -1}, InvalidOption, "task 't.h': retries must be a non-negative int, got -1"),
        ({"retries": True}, InvalidOption, "task 't.h': retries must be a non-negative int, got True"),
        (
            {"retry_delay": "x"},
            InvalidOption,
            "task 't.h': retry_delay must be a non-negative number, got 'x'",
        ),
        ({"retry_backoff": 0.5}, InvalidOption, "task 't.h': retry_backoff must be >= 1, got 0.5"),
        ({"timeout": -0.5}, InvalidOption, "task 't.h': timeout must be a non-negative number, got -0.5"),
        (
            {"expires": "soon"},
            InvalidOption,
            "task 't.h': expires must be seconds, a timedelta or a datetime",
        ),
    ],
)
def test_bad_decorator_options_fail_at_decoration(options, kind, message):
    q = new_queue()
    with pytest.raises(kind) as info:
        q.task(name="t.h", **options)(lambda: None)
    assert str(info.value) == message
    assert "t.h" not in q.registry


def test_two_functions_cannot_share_a_name():
    q = new_queue()

    @q.task(name="shared")
    def first():
        return 1

    with pytest.raises(Exception) as info:

        @q.task(name="shared")
        def second():
            return 2

    assert type(info.value).__name__ == "ConfigurationError"
    assert str(info.value) == (
        f"task name 'shared' on queue {q.name!r} is already used by {first.origin}; "
        f"{first.origin.replace('first', 'second')} needs another name (pass name=...)"
    )
    assert q.registry.get("shared") is first


def test_pipeline_steps_may_leave_arguments_for_the_previous_result():
    q, _events, f = make()
    step = f.s()  # 'a' comes from the previous step
    assert step.args == ()
    with pytest.raises(InvalidOption):
        f.s(1, 2, 3)  # too many is still refused
    assert stored(q) == NOTHING


def test_a_negative_delay_is_an_eta_in_the_past_and_runs_at_once():
    q, events, f = make()
    before = naive_utc(dt.datetime.now(UTC))
    seconds = f.schedule((1,), delay=-1)
    delta = f.schedule((2,), delay=dt.timedelta(seconds=-30))
    assert [t.eta < before for t in q.pending()] == [True, True]
    assert q.execute(q.dequeue()) == 1 and q.execute(q.dequeue()) == 2  # due: they run, nothing is scheduled
    assert (seconds.get(), delta.get(), q.scheduled_count()) == (1, 2, 0)
    assert events.signals() == ["enqueued", "enqueued", "executing", "complete", "executing", "complete"]


def test_naive_and_aware_etas_are_accepted():
    q, _events, f = make()
    f.schedule((1,), eta=dt.datetime(2100, 1, 1))
    f.schedule((2,), eta=dt.datetime(2100, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert [t.eta for t in sorted(q.pending(), key=lambda t: t.eta)] == [
        dt.datetime(2099, 12, 31, 22),
        dt.datetime(2100, 1, 1),
    ]
