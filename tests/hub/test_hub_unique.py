"""Unique tasks: a duplicate of a pending, scheduled or running call returns the existing Result."""

from __future__ import annotations

import pytest

from django_tasks_q import InvalidOption
from django_tasks_q.exceptions import EnqueueError
from tests.support.hub import drain, later, new_queue, run_next


def test_unique_task_returns_the_pending_call_for_the_same_arguments():
    q = new_queue()

    @q.task(unique=True)
    def report(account, period="month"):
        return f"{account}/{period}"

    first = report(7, period="week")
    again = report(7, period="week")
    other = report(8, period="week")
    assert again.id == first.id
    assert other.id != first.id
    assert q.pending_count() == 2
    drain(q)
    assert first() == "7/week"
    assert again() is None  # the value was read through the first handle
    fresh = report(7, period="week")
    assert fresh.id != first.id
    assert q.pending_count() == 1


def test_keyword_order_does_not_matter():
    q = new_queue()

    @q.task(unique=True)
    def job(a=1, b=2):
        return a + b

    assert job(a=1, b=2).id == job(b=2, a=1).id


def test_explicit_unique_key_at_call_time():
    q = new_queue()

    @q.task()
    def sync(account, full=False):
        return full

    first = sync(1, unique_key="sync-account-1")
    second = sync(1, full=True, unique_key="sync-account-1")
    assert second.id == first.id
    assert q.pending_count() == 1
    with pytest.raises(InvalidOption, match="unique_key must be a non-empty string"):
        sync(1, unique_key="")


def test_key_is_held_while_scheduled_and_while_retrying():
    q = new_queue()
    calls = []

    @q.task(unique=True, retries=1, retry_delay=30)
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first")
        return "ok"

    first = flaky()
    run_next(q)
    assert q.scheduled_count() == 1
    assert flaky().id == first.id
    drain(q, later(31))
    assert first() == "ok"
    assert flaky().id != first.id


def test_key_is_released_when_the_call_fails_for_good_or_is_revoked():
    q = new_queue()

    @q.task(unique=True)
    def broken():
        raise ValueError("no")

    first = broken()
    drain(q)
    assert broken().id != first.id
    q.flush()
    pending = broken()
    pending.revoke()
    drain(q)
    assert broken().id != pending.id


def test_unique_ttl_lets_a_stuck_key_lapse():
    q = new_queue()

    @q.task(unique=True, unique_ttl=0.05)
    def job():
        return 1

    first = job()
    import time

    time.sleep(0.1)
    assert job().id != first.id


def test_unique_in_a_group_returns_the_holders_results():
    q = new_queue()

    @q.task(unique=True)
    def square(n):
        return n * n

    held = square(3)
    group = square.map([3, 4])
    assert next(iter(group)).id == held.id
    assert q.pending_count() == 2


def test_bad_unique_ttl_is_refused_at_decoration():
    q = new_queue()
    with pytest.raises(InvalidOption, match="unique_ttl must be seconds > 0"):

        @q.task(unique=True, unique_ttl=0)
        def job():
            return None


def test_held_keys_are_listed_with_their_task_and_holder_and_can_be_released():
    q = new_queue()

    @q.task(name="billing.sync", unique=True)
    def sync(account):
        return account

    @q.task(name="billing.sync.full")
    def full_sync(account):
        return account

    plain = sync(1)
    keyed = full_sync(2, unique_key="acct.2")
    held = q.unique_keys_held()
    assert {(row["task"], row["holder"]) for row in held} == {("billing.sync", plain.id), ("billing.sync.full", keyed.id)}
    assert [row["key"] for row in held] == sorted(row["key"] for row in held)
    by_holder = {row["holder"]: row for row in held}
    assert by_holder[keyed.id]["key"] == "unique.billing.sync.full.acct.2"
    assert by_holder[keyed.id]["task"] == "billing.sync.full"  # the longest registered name wins
    assert by_holder[plain.id]["task"] == "billing.sync"
    assert q.release_unique("unique.billing.sync.full.acct.2") is True
    assert [row["holder"] for row in q.unique_keys_held()] == [plain.id]
    assert full_sync(2, unique_key="acct.2").id != keyed.id
    with pytest.raises(ValueError, match="not a unique-task key"):
        q.release_unique("lock.something")
    drain(q)
    assert [row["holder"] for row in q.unique_keys_held()] == []


def test_a_key_released_under_every_claim_refuses_the_call_rather_than_duplicate_it():
    q = new_queue()

    @q.task(unique=True)
    def churn():
        return None

    def always_released(key, value, ttl=None):  # the key is taken, and gone again before it can be read
        return False

    q.storage.put_if_empty = always_released
    with pytest.raises(EnqueueError, match="taken and released 100 times"):
        churn()
    assert q.pending_count() == 0
