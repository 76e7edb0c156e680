"""Task history: what the recorder writes for each outcome, the levels, counters, pruning, the thread (issue #7)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import warnings
from typing import Any

import pytest
from django.utils import timezone

from django_tasks_q import MemoryHuey
from django_tasks_q.conf import queues
from django_tasks_q.consumer import Consumer, ConsumerOptions
from django_tasks_q.decorators import task
from django_tasks_q.history.models import (
    ConsumerHeartbeat,
    QueueMinute,
    TaskHistory,
    TaskStatus,
    check_history_settings,
)
from django_tasks_q.history.recorder import HistoryRecorder
from django_tasks_q.history.writers import prune
from django_tasks_q.testing import drain
from tests.support.admin import Q, memory_settings, recording

_calls: dict[str, int] = {}


@task(queue=Q, retries=2, context=True)
def flaky(key: str, failures: int, task: Any = None) -> str:
    """Fail ``failures`` times, then succeed."""
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] <= failures:
        raise RuntimeError(f"attempt {task.attempt} of {key} failed")
    return f"done {key}"


@pytest.fixture(autouse=True)
def memory(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()
    _calls.clear()


def _row(result: Any) -> TaskHistory:
    return TaskHistory.objects.get(task_id=result.id)


@pytest.mark.django_db
def test_success_failure_and_retries_are_one_row_each() -> None:
    hub = queues[Q]
    with recording(hub):
        ok = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["ok", 0])
        retried = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["twice", 2])
        failed = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["always", 5])
        drain(Q)
    row = _row(ok)
    assert (row.status, row.attempts, row.result, row.error) == (TaskStatus.COMPLETE, 1, '"done ok"', "")
    assert row.queue == Q and row.name == "tests.django.test_history_recorder.flaky"
    assert row.args == '["ok", 0]' and row.kwargs == "{}" and row.arguments_exact
    assert row.enqueued_at <= row.started_at <= row.finished_at and row.duration >= 0
    assert row.worker
    row = _row(retried)
    assert (row.status, row.attempts, row.error, row.traceback) == (TaskStatus.COMPLETE, 3, "", "")
    row = _row(failed)
    assert (row.status, row.attempts) == (TaskStatus.FAILED, 3)
    assert row.error == "RuntimeError: attempt 1 of always failed" and "Traceback" in row.traceback
    assert TaskHistory.objects.count() == 3


@pytest.mark.django_db
def test_a_row_written_by_one_flush_is_updated_by_the_next() -> None:
    hub = queues[Q]
    with recording(hub) as recorder:
        retried = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["later", 1])
        reservation = hub.reserve()
        assert reservation is not None
        hub.process(reservation)  # attempt 1 fails: the row says "retrying"
        assert recorder.flush() == 1
        first = _row(retried)
        assert (first.status, first.attempts, first.result) == (TaskStatus.RETRYING, 1, "")
        drain(Q)  # attempt 2 succeeds: the same row, updated
    row = _row(retried)
    assert (row.pk, row.created_at) == (first.pk, first.created_at)
    assert (row.status, row.attempts, row.result, row.error, row.traceback) == (
        TaskStatus.COMPLETE, 2, '"done later"', "", ""
    )
    assert row.updated_at > first.updated_at and row.duration is not None and row.duration >= 0
    assert TaskHistory.objects.filter(task_id=retried.id).count() == 1


@pytest.mark.django_db
def test_a_call_taken_before_its_eta_is_recorded_as_scheduled() -> None:
    hub = queues[Q]
    with recording(hub):
        later = hub.enqueue_call("tests.support.admin.add", [1, 2], delay=3600)
        drain(Q)
    row = _row(later)
    assert row.status == TaskStatus.SCHEDULED and row.eta is not None and row.attempts == 0


@pytest.mark.django_db
def test_revoked_expired_and_dead_lettered_calls() -> None:
    hub = queues[Q]
    with recording(hub):
        revoked = hub.enqueue_call("tests.support.admin.add", [1, 2])
        hub.revoke_by_id(revoked.id)
        expired = hub.enqueue_call("tests.support.admin.add", [1, 2], expires=0.01)
        time.sleep(0.02)
        drain(Q)
        dead = hub.enqueue_call("tests.support.admin.add", [3, 4])
        hub.reserve(0.01)
        hub.max_attempts = 1
        hub.reclaim_expired(timezone.now() + dt.timedelta(seconds=5))
    assert _row(revoked).status == TaskStatus.REVOKED
    assert _row(expired).status == TaskStatus.EXPIRED
    assert _row(dead).status == TaskStatus.DEAD and "max_attempts" in _row(dead).error


@pytest.mark.django_db
def test_failures_level_keeps_only_failed_calls(settings: Any) -> None:
    settings.TASKS_Q_HISTORY = "failures"
    hub = queues[Q]
    with recording(hub) as recorder:
        ok = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["ok", 0])
        retried = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["once", 1])
        hub.reserve(0.01)  # picks "ok": a flush while it is in flight writes nothing
        recorder.flush()
        assert not TaskHistory.objects.exists()
        hub.flush_queue()
        hub.enqueue_call("tests.django.test_history_recorder.flaky", ["ok", 0])
        hub.enqueue_call("tests.django.test_history_recorder.flaky", ["once", 1])
        failed = hub.enqueue_call("tests.django.test_history_recorder.flaky", ["always", 9])
        drain(Q)
    assert list(TaskHistory.objects.values_list("task_id", flat=True)) == [failed.id]
    assert _row(failed).attempts == 3 and _row(failed).started_at is not None
    assert not TaskHistory.objects.filter(task_id__in=[ok.id, retried.id]).exists()


@pytest.mark.django_db
def test_off_level_writes_no_rows_but_still_counts(settings: Any) -> None:
    settings.TASKS_Q_HISTORY = "off"
    hub = queues[Q]
    with recording(hub):
        hub.enqueue_call("tests.django.test_history_recorder.flaky", ["ok", 0])
        hub.enqueue_call("tests.django.test_history_recorder.flaky", ["never", 9])
        drain(Q)
    assert not TaskHistory.objects.exists()
    minute = QueueMinute.objects.get(queue=Q)
    assert (minute.succeeded, minute.failed) == (1, 3)


@pytest.mark.django_db
def test_arguments_that_are_not_json_are_marked_inexact() -> None:
    hub = queues[Q]
    recorder = HistoryRecorder()
    huge = "x" * 30_000
    with recording(hub):
        exact = hub.enqueue_call("tests.support.admin.echo", ["fine"])
        long = hub.enqueue_call("tests.support.admin.echo", [huge])
        drain(Q)
    assert _row(exact).arguments_exact and not _row(long).arguments_exact
    assert len(_row(long).args) < 25_000
    assert recorder.settings.level == "all"


@pytest.mark.django_db
def test_prune_by_age(settings: Any) -> None:
    settings.TASKS_Q_HISTORY_DAYS = 2
    now = timezone.now()
    old = TaskHistory.objects.create(queue=Q, task_id="old", name="t", updated_at=now - dt.timedelta(days=3))
    TaskHistory.objects.create(queue=Q, task_id="new", name="t", updated_at=now - dt.timedelta(days=1))
    QueueMinute.objects.create(queue=Q, minute=now - dt.timedelta(days=3))
    QueueMinute.objects.create(queue=Q, minute=now)
    assert prune(now) == 1
    assert not TaskHistory.objects.filter(pk=old.pk).exists() and TaskHistory.objects.count() == 1
    assert QueueMinute.objects.count() == 1


def test_history_settings_are_checked(settings: Any) -> None:
    settings.TASKS_Q_HISTORY = "some"
    errors = check_history_settings()
    assert errors and "TASKS_Q_HISTORY" in errors[0].msg
    settings.TASKS_Q_HISTORY = "failures"
    settings.TASKS_Q_HISTORY_DAYS = 0
    assert [m.id for m in check_history_settings()] == ["django_tasks_q.E020"]
    settings.TASKS_Q_HISTORY_DAYS = 30
    assert not check_history_settings()


@pytest.mark.django_db
def test_a_broken_database_does_not_break_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = queues[Q]
    recorder = HistoryRecorder().connect()
    hub.enqueue_call("tests.support.admin.add", [1, 2])
    drain(Q)
    monkeypatch.setattr(
        "django_tasks_q.history.writers._HistoryRows.insert",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db down")),
    )
    assert recorder.flush() == 0  # logged, not raised; the counters are kept for the next flush
    monkeypatch.undo()
    recorder.disconnect()
    recorder.flush()
    assert QueueMinute.objects.get(queue=Q).succeeded == 1


@pytest.mark.django_db(transaction=True)
def test_the_consumer_records_history_and_heartbeats_from_its_thread(settings: Any) -> None:
    settings.TASKS_Q_HISTORY_FLUSH_INTERVAL = 0.05
    hub = queues[Q]
    results = [hub.enqueue_call("tests.django.test_history_recorder.flaky", [f"c{i}", 0]) for i in range(5)]
    # No periodic tasks: adm.tick (every 5 minutes) would otherwise run whenever the test falls on its minute.
    options = ConsumerOptions(
        initial_delay=0.01, max_delay=0.05, scheduler_interval=0.05, health_check_interval=0.1, periodic=False
    )
    consumer = Consumer([hub], options, burst=True, install_signal_handlers=False)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    deadline = time.monotonic() + 5
    while TaskHistory.objects.filter(status=TaskStatus.COMPLETE).count() < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {row.task_id for row in TaskHistory.objects.filter(status=TaskStatus.COMPLETE)} == {r.id for r in results}
    assert all(consumer.identity in row.worker for row in TaskHistory.objects.all())
    beat = ConsumerHeartbeat.objects.get(identity=consumer.identity)
    assert beat.stopped_at is not None and beat.tasks_run == 5 and beat.queues == Q and beat.workers == 1
    assert not beat.is_alive()
    assert QueueMinute.objects.filter(queue=Q, pending__isnull=False).exists()  # depth samples


@pytest.mark.django_db
def test_history_rows_inserted_in_bulk_read_back_as_written() -> None:
    from django_tasks_q.history.writers import _HistoryRows

    started = timezone.now().replace(microsecond=123456)
    rows = [
        TaskHistory(
            queue=Q, task_id=f"bulk-{n}", name="tests.add", status="complete", args='[1, "é"]', kwargs="{}",
            arguments_exact=bool(n), priority=-3, attempts=2, enqueued_at=started - dt.timedelta(seconds=1),
            started_at=started, finished_at=started + dt.timedelta(milliseconds=5), duration=0.005,
            worker="w-1", result="3",
        )
        for n in range(3)
    ]

    statement = _HistoryRows()
    statement.insert([statement.insert_params(vars(row)) for row in rows])

    stored = {row.task_id: row for row in TaskHistory.objects.filter(queue=Q, task_id__startswith="bulk-")}
    assert sorted(stored) == ["bulk-0", "bulk-1", "bulk-2"]
    for row in rows:
        again = stored[row.task_id]
        assert again.pk is not None
        for field in ("name", "status", "args", "kwargs", "arguments_exact", "priority", "attempts", "enqueued_at",
                      "eta", "started_at", "finished_at", "duration", "worker", "result", "error", "created_at",
                      "updated_at"):
            assert getattr(again, field) == getattr(row, field), field


@pytest.mark.django_db
def test_a_queue_built_in_code_is_recorded_in_aware_utc(new_york_time: None) -> None:
    hub = MemoryHuey("history-naive", utc=False, block_timeout=0)  # shows naive local times, as huey does

    @hub.task()
    def add(a: int, b: int) -> int:
        return a + b

    with recording(hub):
        result = add.schedule((1, 2), eta=dt.datetime(2100, 6, 1, 12, 0))  # noon in New York
        hub.execute(hub.dequeue())  # taken before its eta: moved to the schedule
    row = _row(result)
    assert row.status == TaskStatus.SCHEDULED
    assert row.eta == dt.datetime(2100, 6, 1, 16, 0, tzinfo=dt.UTC)  # EDT is UTC-4
    assert row.enqueued_at is not None and abs((timezone.now() - row.enqueued_at).total_seconds()) < 60


@pytest.mark.django_db
def test_history_columns_get_the_values_django_would_write() -> None:
    from django.db import connection

    from django_tasks_q.history.writers import _history_fields, _HistoryRows, _new_values

    paris = dt.timezone(dt.timedelta(hours=2))
    values = _new_values(
        (Q, "prep"),
        {
            "name": "tests.add", "status": TaskStatus.COMPLETE, "args": "[1]", "arguments_exact": False,
            "priority": -3, "_attempts": 2, "enqueued_at": dt.datetime(2026, 5, 1, 12, 0, 0, 5, tzinfo=paris),
            "started_at": timezone.now(), "finished_at": dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC), "duration": 0.5, "worker": "w",
            "created_at": timezone.now(), "updated_at": timezone.now(),
        },
    )  # fmt: skip
    assert values["eta"] is None and values["result"] == "" and values["attempts"] == 2
    naive = dict(values, eta=dt.datetime(2026, 5, 1, 12, 0))  # a naive time: the field's own path (and warning)
    statement = _HistoryRows()
    for row in (values, naive):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = [field.get_db_prep_save(row[field.attname], connection) for field in _history_fields()]
            assert statement.insert_params(row) == expected


@pytest.mark.django_db
def test_run_durations_are_counted_in_cumulative_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    import django_tasks_q.history.recorder as recorder_module

    # Three runs, timed from their "executing" to their "complete" event: 3 ms, 70 ms and 100 s (past every bound).
    clock = iter([0.0, 0.003, 10.0, 10.07, 20.0, 120.0])
    monkeypatch.setattr(recorder_module.time, "monotonic", lambda: next(clock))
    hub = queues[Q]
    with recording(hub):
        for number in range(3):
            hub.enqueue_call("tests.support.admin.add", [number, 1])
            drain(Q)
    fields = ["succeeded", "duration_count", "duration_sum", "duration_le_5ms", "duration_le_10ms",
              "duration_le_50ms", "duration_le_100ms", "duration_le_60s"]
    rows = QueueMinute.objects.filter(queue=Q).values_list(*fields)  # two rows if a minute ended meanwhile
    totals = dict(zip(fields, (sum(column) for column in zip(*rows, strict=True)), strict=True))
    assert (totals["succeeded"], totals["duration_count"]) == (3, 3)
    assert 100.0 < totals["duration_sum"] < 100.08
    assert (totals["duration_le_5ms"], totals["duration_le_10ms"], totals["duration_le_50ms"]) == (1, 1, 1)
    assert (totals["duration_le_100ms"], totals["duration_le_60s"]) == (2, 2)


class _NoTruth:
    """Like a NumPy array: comparing it or asking whether it is empty raises."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value is ambiguous")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "NoTruth()"


def test_values_become_the_json_text_json_dumps_would_write() -> None:
    import json

    from django_tasks_q.history.recorder import to_json_text

    for value in (None, True, False, 0, 1.5, "é", [], {}, [1, {"b": 2, "a": [None]}], {"z": 1, "a": "ü"}):
        assert to_json_text(value) == (json.dumps(value, ensure_ascii=False, sort_keys=True), True)
    assert to_json_text(_NoTruth()) == ('"NoTruth()"', False)
    assert to_json_text([_NoTruth()]) == ('["NoTruth()"]', False)


@pytest.mark.django_db(transaction=True)
def test_the_flusher_thread_forgets_the_statements_it_logged(settings: Any) -> None:
    from django.db import connection

    settings.DEBUG = True
    logged: list[int] = []
    recorder = HistoryRecorder(consumer_identity=None)
    recorder.every(0.05, lambda: logged.append(len(connection.queries_log)))  # runs in the flusher thread
    hub = queues[Q]
    recorder.attach(hub)
    recorder.start()
    try:
        for number in range(3):
            hub.enqueue_call("tests.support.admin.add", [number, 1])
            drain(Q)
            time.sleep(0.1)
    finally:
        recorder.stop()
    assert TaskHistory.objects.count() == 3
    assert len(logged) >= 3 and max(logged) < 20  # without the reset, every batch's statements would pile up
