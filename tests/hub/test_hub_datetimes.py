"""The hub's datetime convention: a queue built in code shows naive datetimes as huey does (UTC, or local time
with ``utc=False``), a queue built from ``TASKS_Q`` shows aware UTC ones when ``USE_TZ`` is on; naive and aware
datetimes given to either are compared correctly, ``expires`` is kept as given beside ``expires_resolved``, and
messages are the same whichever convention wrote them (older messages included)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task
from django_tasks_q.messages.envelope import Message
from django_tasks_q.timeutils import present, to_utc
from tests.support.hub import UTC, Recorder, later, naive_utc, new_queue

QUEUE = "datetimes"
NOON = dt.datetime(2100, 6, 1, 12, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


@task(queue=QUEUE, context=True)
def stamp(task: Any = None) -> str:
    """Return the call's eta as text (what a ``context=True`` task sees)."""
    return repr(task.eta)


def is_naive(value: dt.datetime) -> bool:
    """Whether ``value`` has no time zone."""
    return value.tzinfo is None


# ---------------------------------------------------------------------------------------------- the helper pair


def test_present_shows_a_moment_in_each_convention_and_to_utc_reads_it_back(new_york_time: None) -> None:
    assert present(NOON, aware=True) == NOON and present(NOON, aware=True).tzinfo is UTC
    assert present(NOON, aware=False) == dt.datetime(2100, 6, 1, 12, 0)
    assert present(NOON, aware=False, naive_is_utc=False) == dt.datetime(2100, 6, 1, 8, 0)  # EDT is UTC-4
    paris = NOON.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert present(paris, aware=True).tzinfo is UTC and present(paris, aware=True) == NOON
    for aware in (True, False):
        for naive_is_utc in (True, False):
            shown = present(NOON, aware=aware, naive_is_utc=naive_is_utc)
            assert to_utc(shown, naive_is_utc=naive_is_utc) == NOON
            assert to_utc(shown, naive_is_utc=naive_is_utc).tzinfo is UTC


# ---------------------------------------------------------------------------------------------- queues built in code


def test_a_queue_built_in_code_shows_naive_utc_times_everywhere() -> None:
    q = new_queue()
    events = Recorder(q)
    seen: list[tuple[dt.datetime | None, ...]] = []

    @q.task(context=True)
    def work(task: Any = None) -> str:
        seen.append((task.eta, task.expires_resolved, task.enqueued_at))
        return "ran"

    call = work.s(eta=NOON, expires=NOON + HOUR)  # aware datetimes given: shown naive UTC
    assert (call.eta, call.expires, call.expires_resolved) == (naive_utc(NOON), NOON + HOUR, naive_utc(NOON + HOUR))
    before = naive_utc(later(0))
    q.enqueue(call)
    [pending] = q.pending()
    assert (pending.eta, pending.expires_resolved) == (naive_utc(NOON), naive_utc(NOON + HOUR))
    assert is_naive(pending.enqueued_at) and before <= pending.enqueued_at <= naive_utc(later(0))
    taken = q.dequeue()
    assert taken.eta == naive_utc(NOON)
    assert q.execute(taken) is None  # not due yet: moved to the schedule
    [scheduled] = q.scheduled()
    assert scheduled.eta == naive_utc(NOON)
    assert q.read_schedule(naive_utc(NOON) - dt.timedelta(seconds=1)) == []
    [due] = q.read_schedule(NOON)
    assert due.eta == naive_utc(NOON)
    assert q.execute(due, dt.datetime(2100, 6, 1, 12, 30)) == "ran"  # a naive timestamp: UTC, before the expiry
    [(eta, expires_resolved, enqueued_at)] = seen
    assert (eta, expires_resolved) == (naive_utc(NOON), naive_utc(NOON + HOUR)) and is_naive(enqueued_at)
    assert events.signals() == ["enqueued", "scheduled", "executing", "complete"]
    assert all(is_naive(event.task.eta) for event in events.events)  # what signal receivers were given


def test_utc_false_shows_local_time_and_the_message_holds_utc(new_york_time: None) -> None:
    q = new_queue(utc=False)

    @q.task()
    def work() -> str:
        return "ran"

    local_noon = dt.datetime(2100, 6, 1, 12, 0)  # noon in New York: 16:00 UTC
    work.schedule(eta=local_noon, expires=local_noon + HOUR)
    [task] = q.pending()
    assert (task.eta, task.expires, task.expires_resolved) == (local_noon, local_noon + HOUR, local_noon + HOUR)
    [view] = q.pending_entries()
    utc_noon = dt.datetime(2100, 6, 1, 16, 0, tzinfo=UTC)
    assert (view.task.eta, view.task.expires_resolved) == (utc_noon, utc_noon + HOUR)
    assert not q.ready_to_run(task, local_noon - dt.timedelta(minutes=1))
    assert q.ready_to_run(task, local_noon) and q.ready_to_run(task, utc_noon)
    taken = q.dequeue()
    assert q.execute(taken, local_noon + 2 * HOUR) is None  # expired: an hour past 13:00 local
    work.schedule(eta=local_noon, expires=local_noon + HOUR)
    assert q.execute(q.dequeue(), utc_noon + HOUR / 2) == "ran"  # an aware timestamp, within the hour


@pytest.mark.parametrize("given", [30, 2.5, dt.timedelta(minutes=1)], ids=["int", "float", "timedelta"])
def test_a_relative_expiry_is_kept_as_given_and_resolved_when_enqueued(given: Any) -> None:
    q = new_queue()

    @q.task()
    def work() -> None:
        return None

    call = work.s(expires=given)
    assert (call.expires, call.expires_resolved) == (given, None)
    seconds = dt.timedelta(seconds=given) if not isinstance(given, dt.timedelta) else given
    before = naive_utc(later(0))
    q.enqueue(call)
    assert before + seconds <= call.expires_resolved <= naive_utc(later(0)) + seconds
    taken = q.dequeue()  # the message carries both
    assert taken.expires == given and type(taken.expires) is type(given)
    assert taken.expires_resolved == call.expires_resolved


def test_a_retry_keeps_the_expiry_fixed_at_the_first_enqueue() -> None:
    q = new_queue()

    @q.task(retries=1, retry_delay=60, expires=30)
    def broken() -> None:
        raise RuntimeError("no")

    broken()
    first = q.dequeue()
    q.execute(first)
    [retry] = q.scheduled()
    assert (retry.expires, retry.expires_resolved) == (30, first.expires_resolved)


# ---------------------------------------------------------------------------------------------- queues built from settings


@pytest.mark.parametrize("use_tz", [True, False])
def test_a_queue_built_from_settings_follows_use_tz(use_tz: bool) -> None:
    conf = {QUEUE: {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}}
    with override_settings(USE_TZ=use_tz, TASKS_Q=conf):
        hub = queues[QUEUE]
        assert hub.aware_datetimes is use_tz
        shown = NOON if use_tz else naive_utc(NOON)
        call = stamp.s(eta=NOON, expires=NOON + HOUR)
        assert (call.eta, call.expires_resolved) == (shown, shown + HOUR)
        hub.enqueue(call)
        [pending] = hub.pending()
        assert (pending.eta, pending.expires_resolved) == (shown, shown + HOUR)
        assert (pending.enqueued_at.tzinfo is UTC) if use_tz else is_naive(pending.enqueued_at)
        assert hub.execute(hub.dequeue(), NOON) == repr(shown)  # what the context=True task saw


def test_a_queue_built_from_settings_is_rebuilt_when_use_tz_changes() -> None:
    with override_settings(TASKS_Q={QUEUE: {"BACKEND": "memory"}}):
        assert queues[QUEUE].aware_datetimes is True  # the test settings have USE_TZ = True
        with override_settings(USE_TZ=False):
            assert queues[QUEUE].aware_datetimes is False


# ---------------------------------------------------------------------------------------------- mixed inputs


@pytest.mark.parametrize("aware_queue", [False, True], ids=["naive-queue", "aware-queue"])
@pytest.mark.parametrize("aware_eta", [False, True], ids=["naive-eta", "aware-eta"])
def test_an_eta_set_by_hand_may_be_naive_or_aware(aware_queue: bool, aware_eta: bool) -> None:
    q = new_queue(aware_datetimes=aware_queue)
    ran = []

    @q.task()
    def work() -> str:
        ran.append(1)
        return "ran"

    work()
    taken = q.dequeue()
    moment = later(3600)
    taken.eta = moment if aware_eta else naive_utc(moment)
    assert not q.ready_to_run(taken)
    assert q.ready_to_run(taken, moment) and q.ready_to_run(taken, naive_utc(moment))
    assert q.execute(taken) is None and ran == []  # not due: moved to the schedule at that eta
    [scheduled] = q.scheduled()
    assert scheduled.eta == (moment if aware_queue else naive_utc(moment))
    assert q.read_schedule(moment - dt.timedelta(seconds=1)) == []
    [due] = q.read_schedule(naive_utc(moment))
    assert q.execute(due, naive_utc(moment) if aware_queue else moment) == "ran"  # the other kind of timestamp
    assert ran == [1]


def test_revoke_until_and_expires_take_either_kind() -> None:
    q = new_queue(aware_datetimes=True)
    events = Recorder(q)

    @q.task()
    def work() -> str:
        return "ran"

    work.revoke(revoke_until=naive_utc(later(60)))  # naive on an aware queue: UTC
    assert work.is_revoked() and not work.is_revoked(timestamp=later(61))
    work.restore()
    deadline = later(60)
    result = work.schedule(expires=naive_utc(deadline))
    assert result.task.expires_resolved == deadline
    assert q.execute(q.dequeue(), naive_utc(later(120))) is None
    assert events.for_task(result.id) == ["enqueued", "expired"]


# ---------------------------------------------------------------------------------------------- messages


def test_a_message_reads_the_same_on_a_naive_and_an_aware_queue() -> None:
    naive = new_queue()
    aware = new_queue(aware_datetimes=True, registry=naive.registry)
    aware.storage = naive.storage

    @naive.task()
    def work() -> None:
        return None

    work.schedule(eta=NOON, expires=30)
    [from_naive], [from_aware] = naive.pending(), aware.pending()
    assert (from_naive.eta, from_aware.eta) == (naive_utc(NOON), NOON)
    assert (from_naive.expires, from_aware.expires) == (30, 30)
    assert from_aware.expires_resolved == from_naive.expires_resolved.replace(tzinfo=UTC)
    written_by_naive = naive.codec.decode(naive.serialize_task(from_naive)).to_dict()
    written_by_aware = aware.codec.decode(aware.serialize_task(from_aware)).to_dict()
    assert written_by_naive == written_by_aware


OLD_FORMAT = {
    "version": 1,
    "id": "0123456789abcdef0123456789abcdef",
    "name": "",
    "args": [],
    "kwargs": {},
    "eta": "2100-06-01T12:00:00+00:00",
    "priority": None,
    "retries": 0,
    "retry_delay": 0,
    "retry_backoff": 1.0,
    "expires": "2100-06-01T13:00:00+00:00",
    "timeout": None,
    "on_complete": None,
    "on_error": None,
    "chord": None,
    "enqueued_at": "2100-06-01T11:00:00+00:00",
    "extra": {},
}
"""An envelope as written before ``task.expires`` was kept as given: ``expires`` the resolved moment, and the
seconds of a relative expiry (as a float) in ``extra``."""


@pytest.mark.parametrize(
    ("changes", "expires", "expires_resolved"),
    [
        ({}, naive_utc(NOON + HOUR), naive_utc(NOON + HOUR)),
        ({"extra": {"expires_in": 3600.0}}, 3600.0, naive_utc(NOON + HOUR)),
        ({"expires": None, "extra": {"expires_in": 30.0}}, 30.0, None),  # a pipeline step not enqueued yet
    ],
    ids=["absolute", "relative", "relative-unresolved"],
)
def test_an_older_message_still_decodes(changes: dict[str, Any], expires: Any, expires_resolved: Any) -> None:
    q = new_queue()

    @q.task()
    def work() -> None:
        return None

    data = q.codec.encode(Message.from_dict({**OLD_FORMAT, "name": work.path, **changes}))
    q.storage.enqueue(data, None)
    taken = q.dequeue()
    assert (taken.eta, taken.enqueued_at) == (naive_utc(NOON), naive_utc(NOON - HOUR))
    assert (taken.expires, taken.expires_resolved) == (expires, expires_resolved)
    assert taken.extra == {}
    if expires_resolved is None:
        q.enqueue(taken.copy())
        [again] = q.pending()
        assert again.expires == 30.0 and again.expires_resolved is not None
