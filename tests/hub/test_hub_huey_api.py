"""huey's hub API on our hub: dequeue/execute by hand (without losing a message), the key/value helpers,
ready_to_run / read_schedule, serialize_task, is_revoked, rate limits used directly, build_error_result,
store_intermediate_errors, "complete" after the stored result, and the task-level helpers."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from django_tasks_q import (
    MemoryHuey,
    PeriodicTask,
    RateLimitExceeded,
    RedisHuey,
    Result,
    ResultTimeout,
    SqliteHuey,
    Task,
    TaskException,
    TaskQueue,
    TaskTimeout,
    crontab,
)
from tests.support.hub import UTC, Recorder, drain, later, new_queue, run_next


@pytest.fixture(params=["sqlite", "redis"])
def reliable_queue(request, tmp_path):
    if request.param == "sqlite":
        queue = SqliteHuey("huey-api", filename=str(tmp_path / "q.db"))
    else:
        url = request.getfixturevalue("fresh_redis_url")
        queue = RedisHuey("huey-api", url=url, block_timeout=0)
    yield queue
    queue.storage.close()


# ---------------------------------------------------------------------------------------------- dequeue


def test_dequeue_claims_the_message_and_execute_acknowledges_it(reliable_queue):
    q = reliable_queue

    @q.task()
    def add(a, b):
        return a + b

    result = add(1, 2)
    task = q.dequeue()
    assert task.id == result.id and task.reservation is not None
    assert len(q) == 0
    assert q.in_flight_count() == 1  # claimed, not removed: a crash here loses nothing
    assert q.execute(task) == 3
    assert q.in_flight_count() == 0  # acknowledged with the outcome
    assert task.reservation is None
    assert result.get() == 3
    assert q.dequeue() is None


def test_a_dequeued_call_that_is_never_executed_comes_back(reliable_queue):
    q = reliable_queue

    @q.task()
    def add(a, b):
        return a + b

    result = add(2, 3)
    q.dequeue()  # the process "dies" here
    assert len(q) == 0
    q.reclaim_expired(later(q.lease + 1))
    again = q.dequeue()
    assert again.id == result.id and again.redelivered
    assert q.execute(again) == 5
    assert q.in_flight_count() == 0


def test_dequeue_on_a_storage_without_reliable_delivery_removes_the_message_as_huey_does():
    from tests.storages.test_storage_custom import SeedOnlyStorage

    q = TaskQueue("seed-only", storage_class=SeedOnlyStorage)

    @q.task()
    def add(a, b):
        return a + b

    result = add(4, 5)
    task = q.dequeue()
    assert q.storage.queue_size() == 0  # removed: at most once, like huey
    assert q.execute(task) == 9
    assert result.get() == 9


def test_dequeue_dead_letters_a_message_that_does_not_verify_and_takes_the_next():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def echo(x):
        return x

    q.storage.enqueue(b"garbage")
    echo(1)
    task = q.dequeue()
    assert task.args == (1,)
    assert events.signals() == ["enqueued", "dead-lettered"]
    assert q.dead_letter_count() == 1


# ---------------------------------------------------------------------------------------------- signals and results


def test_complete_is_sent_once_the_result_can_be_read():
    q = new_queue()
    seen = []
    q.signal("complete")(lambda signal, task, *args: seen.append((task.name, q.result(task.id, preserve=True))))

    @q.task(name="t.add")
    def add(a, b):
        return a + b

    add(1, 2)
    run_next(q)  # a worker: the result is written with the acknowledgement
    q.enqueue(add.s(3, 4).then(add, 10))
    drain(q)  # with a follow-up: the result is written before the next step is enqueued
    assert seen == [("t.add", 3), ("t.add", 7), ("t.add", 17)]


def test_an_intermediate_error_never_overwrites_the_retry_value():
    q = new_queue()
    attempts = []

    @q.task(retries=1)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("once")
        return "ok"

    result = flaky()
    run_next(q)
    with pytest.raises(TaskException, match="ConnectionError"):
        result.get(preserve=True)
    run_next(q)
    result.reset()
    assert result.get() == "ok"


def test_build_error_result_can_add_to_the_stored_error():
    class Annotated(MemoryHuey):
        def build_error_result(self, task, exception):
            error = super().build_error_result(task, exception)
            error["args"] = task.args
            return error

    q = Annotated("annotated", block_timeout=0)

    @q.task()
    def boom(n):
        raise KeyError(n)

    result = boom(7)
    drain(q)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["args"] == (7,)
    assert info.value.error == "KeyError(7)"


# ---------------------------------------------------------------------------------------------- helpers


def test_key_value_helpers_sign_and_serialize_values():
    q = new_queue()
    q.put("k", {"a": (1, 2)})
    assert q.get("k", peek=True) == {"a": (1, 2)}
    assert q.put_if_empty("k", 1) is False
    assert q.get("k") == {"a": (1, 2)}
    assert q.get("k") is None
    assert q.put_if_empty("k", 1) is True
    assert q.delete("k") is True


def test_ready_to_run_read_schedule_and_task_serialization():
    q = new_queue(utc=True)

    @q.task()
    def add(a, b):
        return a + b

    @q.periodic_task(crontab(minute="1"))
    def tick():
        return 1

    eta = dt.datetime(2100, 1, 1, 12)  # naive: UTC on this queue
    result = add.schedule((1, 2), eta=eta)
    assert q.execute(q.dequeue()) is None  # taken before its eta: moved to the schedule
    [scheduled] = q.scheduled()
    assert q.ready_to_run(scheduled) is False
    assert q.ready_to_run(scheduled, eta) is True
    assert q.read_schedule(eta - dt.timedelta(seconds=1)) == []
    [due] = q.read_schedule(eta)
    assert due.id == result.id and q.scheduled_count() == 0

    call = add.s(1, 2)
    assert q.deserialize_task(q.serialize_task(call)) == call
    periodic = tick.s()
    assert isinstance(periodic, PeriodicTask)
    assert isinstance(q.deserialize_task(q.serialize_task(periodic)), PeriodicTask)
    assert periodic.execute() == 1


def test_is_revoked_only_peeks_and_takes_ids_results_and_tasks():
    q = new_queue()

    @q.task()
    def work():
        return 1

    until = dt.datetime(2000, 1, 1, tzinfo=UTC)
    work.revoke(revoke_until=until)
    assert work.is_revoked(timestamp=until - dt.timedelta(seconds=1)) is True
    assert work.is_revoked(timestamp=until) is False
    # peeking past revoke_until removed nothing: an earlier time still sees the revocation
    assert work.is_revoked(timestamp=until - dt.timedelta(seconds=1)) is True
    work.restore()

    result = work()
    result.revoke()
    assert q.is_revoked(result.id) and q.is_revoked(result) and q.is_revoked(result.task)
    assert q.is_revoked(result.id) is True  # a check does not use up a revoke_once


def test_a_rate_limit_used_directly():
    q = new_queue()
    limit = q.rate_limit("api", limit=2, per=3600, retry=False)
    limit.acquire()
    limit.acquire()
    with pytest.raises(RateLimitExceeded) as info:
        limit.acquire()
    assert info.value.key == "api" and 0 < info.value.delay <= 3600 and info.value.retry is False
    assert limit.current_usage() == 3
    limit.reset()
    assert limit.current_usage() == 0
    limit.acquire()


def test_a_rate_limit_without_retry_fails_the_call():
    q = new_queue()

    @q.task()
    @q.rate_limit("strict", limit=1, per=3600, retry=False)
    def call(n):
        return n

    call(1)
    second = call(2)
    drain(q)
    with pytest.raises(TaskException, match="RateLimitExceeded"):
        second.get()
    assert q.scheduled_count() == 0


def test_cooperative_timeout_helpers():
    q = new_queue()
    seen = []

    @q.task(timeout=30, context=True)
    def careful(task=None):
        seen.append((task.is_timed_out, 0 < task.time_remaining <= 30))
        task.check_timeout()
        return "in time"

    careful()
    drain(q)
    assert seen == [(False, True)]
    call = careful.s()
    assert call.time_remaining == float("inf") and call.is_timed_out is False
    call._deadline = time.monotonic() - 1
    with pytest.raises(TaskTimeout):
        call.check_timeout()


def test_a_task_of_another_queue_can_be_decorated_and_a_task_unregistered():
    first, second = new_queue(), new_queue()

    @first.task()
    def add(a, b):
        return a + b

    again = second.task(retries=1)(add)
    assert again.func is add.func and again.queue is second and again.retries == 1
    assert again(1, 2) is not None and len(second) == 1 and len(first) == 0
    assert add.unregister() is True
    assert add.path not in first.registry
    assert isinstance(Task.from_message(second.codec.decode(second.storage.dequeue())), Task)


def test_create_consumer_builds_a_consumer_of_this_queue():
    q = new_queue()
    consumer = q.create_consumer(workers=3, periodic=False, flush_locks=True)
    assert consumer.queues == [q]
    assert consumer.options[q.name].workers == 3 and consumer.options[q.name].periodic is False
    assert consumer.flush_locks is True


def test_a_blocking_get_whose_result_another_reader_took_stops_waiting():
    q = new_queue()

    @q.task()
    def work():
        return 1

    result = work()
    drain(q)
    assert q.result(result.id) == 1  # another caller reads (and removes) the value first
    q.storage.wait_result = lambda key, timeout=None: b"seen"  # the value was there when the wait ended
    with pytest.raises(ResultTimeout):
        result.get(blocking=True)


def test_a_result_handle_for_a_known_id():
    q = new_queue()

    @q.task()
    def work():
        return 1

    call = work()
    drain(q)
    assert Result(q, Task(id=call.id)).get() == 1
    with pytest.raises(ResultTimeout):
        Result(q, Task(id="never-enqueued")).get(blocking=True, timeout=0.01)


def test_a_steps_own_keyword_arguments_win_over_the_previous_steps_dict():
    q = new_queue()

    @q.task()
    def make(a, b):
        return {"a": a, "b": b}

    @q.task()
    def show(a, b):
        return [a, b]

    results = q.enqueue(make.s(1, 2).then(show, b=6))
    drain(q)
    assert results.get() == [{"a": 1, "b": 2}, [1, 6]]


def test_a_redis_queue_class_refuses_conflicting_connection_arguments_when_built() -> None:
    import redis

    from django_tasks_q import ConfigurationError, PriorityRedisHuey

    pool = redis.ConnectionPool()
    conflicting = [
        {"host": "localhost", "url": "redis://localhost"},
        {"host": "localhost", "connection_pool": pool},
        {"url": "redis://localhost", "connection_pool": pool},
    ]
    for queue_class in (RedisHuey, PriorityRedisHuey):
        for kwargs in conflicting:
            with pytest.raises(ConfigurationError):
                queue_class("conflicts", **kwargs)
    # Arguments left at None do not conflict, and building connects to nothing (port 1 has no server).
    RedisHuey("conflicts", host=None, port=None, db=None, url="redis://127.0.0.1:1/0")
    # In immediate mode the Redis storage is built too (and kept for when immediate mode is switched off).
    with pytest.raises(ConfigurationError):
        RedisHuey("conflicts", immediate=True, host="localhost", url="redis://localhost")
    # A queue class whose storage touches files stays lazy: nothing is created until the first use.
    assert SqliteHuey("lazy", filename="/nonexistent-dir/tasks.db")._storage is None
