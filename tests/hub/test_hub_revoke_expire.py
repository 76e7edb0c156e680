"""Revocation (by id, by task, once, until a time), restore, reschedule, and expiry."""

from __future__ import annotations

import datetime as dt

from tests.support.hub import UTC, Recorder, drain, later, naive_utc, new_queue, run_next


def make():
    q = new_queue()
    events = Recorder(q)
    ran = []

    @q.task()
    def work(x):
        ran.append(x)
        return x

    return q, events, ran, work


# ---------------------------------------------------------------------------------------------- by id


def test_result_revoke_skips_that_call_only():
    q, events, ran, work = make()
    revoked = work(1)
    kept = work(2)
    revoked.revoke()
    assert revoked.is_revoked() is True
    assert kept.is_revoked() is False
    assert drain(q) == 2
    assert ran == [2]
    assert events.for_task(revoked.id) == ["enqueued", "revoked"]
    assert events.for_task(kept.id) == ["enqueued", "executing", "complete"]
    assert revoked() is None
    assert revoked.is_ready() is False
    assert revoked.is_revoked() is False  # a once-revocation is used up by the skip


def test_result_restore_undoes_the_revoke():
    q, _events, ran, work = make()
    result = work(1)
    result.revoke()
    assert result.restore() is True
    assert result.restore() is False
    assert result.is_revoked() is False
    drain(q)
    assert ran == [1]
    assert result() == 1


def test_result_revoke_for_good_survives_being_checked():
    q, _events, ran, work = make()
    result = work(1)
    result.revoke(revoke_once=False)
    drain(q)
    assert ran == []
    assert result.is_revoked() is True  # not used up
    again = work.schedule((1,), id=result.id)  # the same id again: still revoked
    drain(q)
    assert ran == []
    assert again.is_revoked() is True


def test_queue_revoke_and_restore_by_id():
    q, events, ran, work = make()
    result = work(1)
    q.revoke_by_id(result.id)
    assert q.is_revoked(result.task) is True
    assert q.restore_by_id(result.id) is True
    assert q.is_revoked(result.task) is False
    q.revoke(result.task)
    drain(q)
    assert ran == []
    assert events.for_task(result.id) == ["enqueued", "revoked"]


def test_a_scheduled_call_revoked_before_it_is_due_never_runs():
    q, events, ran, work = make()
    result = work.schedule((1,), delay=60)
    assert drain(q) == 1  # taken before its eta: moved to the schedule
    result.revoke()
    assert drain(q, later(61)) == 1
    assert ran == []
    assert events.for_task(result.id) == ["enqueued", "scheduled", "revoked"]


def test_a_revoked_call_with_retries_is_not_retried():
    q, events, _ran, work = make()
    result = work.schedule((1,), retries=3)
    result.revoke()
    assert drain(q) == 1
    assert events.for_task(result.id) == ["enqueued", "revoked"]
    assert q.scheduled() == []


def test_a_revoked_pipeline_head_runs_no_follow_up():
    q, events, ran, work = make()
    group = q.enqueue(work.s(1).then(work).then(work))
    next(iter(group)).revoke()
    assert drain(q) == 1
    assert ran == []
    assert events.signals() == ["enqueued", "revoked"]


# ---------------------------------------------------------------------------------------------- by task


def test_revoking_a_task_skips_every_call_until_restored():
    q, events, ran, work = make()
    work.revoke()
    assert work.is_revoked() is True
    first = work(1)
    work(2)
    assert first.is_revoked() is True  # a call is revoked when its task is
    assert drain(q) == 2
    assert ran == []
    assert events.signals() == ["enqueued", "enqueued", "revoked", "revoked"]
    assert work.is_revoked() is True  # still revoked
    assert work.restore() is True
    assert work.restore() is False
    work(3)
    drain(q)
    assert ran == [3]


def test_revoke_once_skips_only_the_next_call():
    q, events, ran, work = make()
    work.revoke(revoke_once=True)
    work(1)
    work(2)
    work(3)
    assert drain(q) == 3
    assert ran == [2, 3]
    assert events.signals().count("revoked") == 1
    assert work.is_revoked() is False


def test_revoke_until_a_time():
    q, _events, ran, work = make()
    until = later(60)
    work.revoke(revoke_until=until)
    assert work.is_revoked() is True
    assert work.is_revoked(timestamp=later(59)) is True
    work(1)
    assert drain(q, later(30)) == 1
    assert ran == []
    work(2)
    assert drain(q, later(61)) == 1
    assert ran == [2]
    # the lapsed revocation was removed when it was found out of date
    assert work.is_revoked() is False


def test_revoke_until_a_naive_time_is_utc():
    _q, _events, _ran, work = make()
    until = dt.datetime(2100, 1, 1, 0, 0)
    work.revoke(revoke_until=until)
    assert work.is_revoked(timestamp=dt.datetime(2099, 12, 31, 23, 59, tzinfo=UTC)) is True
    assert work.is_revoked(timestamp=dt.datetime(2100, 1, 1, 0, 0, tzinfo=UTC)) is False


def test_revoke_all_and_restore_all_on_the_queue():
    q, _events, ran, work = make()
    q.revoke_all(work)
    work(1)
    drain(q)
    assert ran == []
    assert q.restore_all(work) is True
    work(2)
    drain(q)
    assert ran == [2]


def test_revoking_one_task_leaves_other_tasks_alone():
    q, _events, ran, work = make()

    @q.task()
    def other(x):
        ran.append(("other", x))

    work.revoke()
    work(1)
    other(2)
    drain(q)
    assert ran == [("other", 2)]
    assert other.is_revoked() is False


def test_a_revocation_that_does_not_verify_is_ignored():
    q, _events, ran, work = make()
    result = work(1)
    q.storage.put_data(f"revoke.{result.id}", b"not a signed value")
    assert result.is_revoked() is False
    drain(q)
    assert ran == [1]


# ---------------------------------------------------------------------------------------------- reschedule


def test_reschedule_revokes_the_call_and_enqueues_a_copy():
    q, events, ran, work = make()
    original = work.schedule((1,), delay=3600)
    moved = original.reschedule(delay=60)
    assert moved.id != original.id
    assert drain(q) == 2  # both taken before their eta: moved to the schedule
    assert sorted(t.id for t in q.scheduled()) == sorted([original.id, moved.id])
    [copy] = [t for t in q.scheduled() if t.id == moved.id]
    assert copy.args == (1,)
    assert abs((copy.eta - naive_utc(later(60))).total_seconds()) < 2
    assert drain(q, later(61)) == 1
    assert ran == [1]
    assert moved() == 1
    assert drain(q, later(3601)) == 1
    assert ran == [1]
    assert events.for_task(original.id) == ["enqueued", "scheduled", "revoked"]


def test_reschedule_to_now_with_a_new_priority_and_expiry():
    q, _events, _ran, work = make()
    original = work.schedule((5,), delay=600)
    moved = original.reschedule(priority=9, expires=300)
    [now_ready] = [t for t in q.pending() if t.eta is None]
    assert now_ready.id == moved.id
    assert now_ready.priority == 9
    assert now_ready.eta is None
    assert now_ready.expires == 300
    assert abs((now_ready.expires_resolved - naive_utc(later(300))).total_seconds()) < 2
    drain(q)
    assert moved() == 5


def test_reschedule_without_the_pipeline():
    q, _events, ran, work = make()
    group = q.enqueue(work.s(1).then(work))
    head = next(iter(group))
    plain = head.reschedule(preserve_pipeline=False)
    with_pipeline = head.reschedule()
    assert drain(q) == 4  # the head (revoked), the two copies, and one follow-up
    assert ran == [1, 1, 1]
    assert plain() == 1
    assert with_pipeline() == 1


# ---------------------------------------------------------------------------------------------- expiry


def test_a_call_that_waited_past_its_expiry_is_skipped():
    q, events, ran, work = make()
    result = work.schedule((1,), expires=10)
    assert drain(q, later(11)) == 1
    assert ran == []
    assert events.for_task(result.id) == ["enqueued", "expired"]
    assert result() is None


def test_a_call_that_runs_in_time_is_not_expired():
    q, _events, ran, work = make()
    result = work.schedule((1,), expires=dt.timedelta(seconds=10))
    assert drain(q, later(5)) == 1
    assert ran == [1]
    assert result() == 1


def test_expires_as_a_datetime():
    q, _events, ran, work = make()
    deadline = later(100)
    work.schedule((1,), expires=deadline)
    [task] = q.pending()
    assert task.expires == task.expires_resolved == naive_utc(deadline)
    drain(q, deadline + dt.timedelta(seconds=1))
    assert ran == []


def test_expiry_from_the_decorator_counts_from_each_enqueue():
    q = new_queue()
    events = Recorder(q)

    @q.task(expires=30)
    def work():
        return "ran"

    first = work()
    [task] = q.pending()
    assert task.expires == 30
    assert abs((task.expires_resolved - naive_utc(later(30))).total_seconds()) < 2
    assert drain(q, later(31)) == 1
    assert events.for_task(first.id) == ["enqueued", "expired"]
    second = work()
    drain(q)
    assert second() == "ran"


def test_a_scheduled_call_can_expire_before_it_is_due():
    q, events, ran, work = make()
    result = work.schedule((1,), delay=60, expires=30)
    assert drain(q) == 1  # taken before its eta: moved to the schedule
    assert drain(q, later(61)) == 1
    assert ran == []
    assert events.for_task(result.id) == ["enqueued", "scheduled", "expired"]


def test_an_expired_retry_is_not_run():
    q = new_queue()
    events = Recorder(q)

    @q.task(retries=1, retry_delay=60, expires=30)
    def broken():
        raise RuntimeError("no")

    result = broken()
    run_next(q)
    assert drain(q, later(61)) == 1
    assert events.for_task(result.id) == [
        "enqueued",
        "executing",
        "error",
        "retrying",
        "scheduled",
        "expired",
    ]


def test_reschedule_to_an_eta():
    q, _events, ran, work = make()
    original = work(3)
    eta = dt.datetime(2100, 1, 1, 9, 30, tzinfo=UTC)
    moved = original.reschedule(eta=eta)
    assert drain(q) == 2  # the original, now revoked, and the copy, taken early: moved to the schedule
    assert [(t.id, t.eta) for t in q.scheduled()] == [(moved.id, naive_utc(eta))]
    assert ran == []
    assert drain(q, eta) == 1
    assert moved() == 3
