"""The consumer in-process (thread workers, memory storage): scheduling, leases, shutdown, recovery.

The consumers here run with ``monitor=False``: these tests have no database, and a recorder that cannot write
its history retries for a second at shutdown (monitoring is tested in ``tests/django/test_history_consumer.py``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_tasks_q import MemoryHuey, crontab
from django_tasks_q.backends.memory import MemoryStorage
from django_tasks_q.consumer import Consumer, ConsumerOptions, workers
from django_tasks_q.exceptions import ConfigurationError, StorageError
from tests.support import eventually

FAST = {"initial_delay": 0.01, "max_delay": 0.05, "scheduler_interval": 0.05, "health_check_interval": 0.1}


def make_queue(**kwargs: Any) -> MemoryHuey:
    kwargs.setdefault("block_timeout", 0.05)
    return MemoryHuey(f"consumer-{uuid.uuid4().hex[:8]}", **kwargs)


class Running:
    """A consumer running in a background thread."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.status = self.consumer.run()

    def stop(self, timeout: float = 10) -> None:
        self.consumer.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "consumer did not stop"


def run_until_started(q: MemoryHuey, started: threading.Event, shutdown_timeout: float) -> Running:
    """A consumer of ``q`` in the background, once the task that sets ``started`` runs."""
    running = Running(Consumer([q], ConsumerOptions(**FAST, shutdown_timeout=shutdown_timeout), install_signal_handlers=False, monitor=False))
    assert started.wait(5)
    return running


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(queues: list[Any], burst: bool = False, **options: Any) -> Running:
        consumer = Consumer(
            queues, ConsumerOptions(**(FAST | options)), burst=burst, install_signal_handlers=False, monitor=False
        )
        running = Running(consumer)
        started.append(running)
        return running

    yield run
    for running in started:
        if running.thread.is_alive():
            running.stop()


def test_burst_mode_runs_everything_due_then_exits(start: Callable[..., Running]) -> None:
    q = make_queue()
    done: list[int] = []

    @q.task()
    def record(n: int) -> int:
        done.append(n)
        return n * 2

    results = [record(n) for n in range(20)]
    later = record.schedule((99,), delay=3600)
    running = start([q], burst=True, workers=3)
    running.thread.join(10)
    assert not running.thread.is_alive()
    assert running.status == 0
    assert sorted(done) == list(range(20))
    assert [r.get() for r in results] == [n * 2 for n in range(20)]
    assert q.scheduled_count() == 1
    assert later.get() is None


def test_consumer_fed_while_running(start: Callable[..., Running]) -> None:
    q = make_queue()

    @q.task()
    def square(n: int) -> int:
        return n * n

    running = start([q], workers=2)
    results = []
    for n in range(30):
        results.append(square(n))
        time.sleep(0.002)
    assert [r.get(blocking=True, timeout=5) for r in results] == [n * n for n in range(30)]
    running.stop()
    assert q.storage.in_flight_size() == 0


def test_delayed_task_runs_within_a_second_of_its_eta(start: Callable[..., Running]) -> None:
    q = make_queue()
    ran_at: list[float] = []

    @q.task()
    def stamp() -> None:
        ran_at.append(time.time())

    start([q])
    eta = time.time() + 0.5
    stamp.schedule(eta=dt.datetime.fromtimestamp(eta, dt.UTC))
    eventually(lambda: ran_at, timeout=5)
    assert eta <= ran_at[0] < eta + 1.0


def test_periodic_tasks_enqueue_once_per_minute_with_two_consumers() -> None:
    q = make_queue()

    @q.periodic_task(crontab(minute="*"))
    def tick() -> None:
        return None

    @q.periodic_task(crontab(minute="0"))
    def hourly() -> None:
        return None

    first = Consumer([q], ConsumerOptions(**FAST), install_signal_handlers=False, monitor=False)
    second = Consumer([q], ConsumerOptions(**FAST), install_signal_handlers=False, monitor=False)
    minute = dt.datetime(2026, 11, 27, 10, 5, 30, tzinfo=dt.UTC)
    for consumer in (first, second, first):
        consumer.scheduler.tick(minute, {q.name: 0.0}, {q.name: 1.0}, {})
    assert [task.name for task in q.pending()] == [tick.name]
    top_of_hour = dt.datetime(2026, 11, 27, 11, 0, 10, tzinfo=dt.UTC)
    for consumer in (second, first):
        consumer.scheduler.tick(top_of_hour, {q.name: 0.0}, {q.name: 1.0}, {})
    assert sorted(task.name for task in q.pending()) == sorted([tick.name, tick.name, hourly.name])


def test_scheduler_logs_skipped_minutes(caplog: pytest.LogCaptureFixture) -> None:
    q = make_queue()

    @q.periodic_task(crontab())
    def tick() -> None:
        return None

    consumer = Consumer([q], ConsumerOptions(**FAST), install_signal_handlers=False, monitor=False)
    last: dict[str, dt.datetime] = {}
    t0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    consumer.scheduler.tick(t0, {q.name: 0.0}, {q.name: 1.0}, last)
    consumer.scheduler.tick(t0 + dt.timedelta(minutes=4), {q.name: 0.0}, {q.name: 1.0}, last)
    assert q.pending_count() == 2
    assert "skipped 3 minute(s)" in caplog.text


def test_lease_is_renewed_so_a_long_task_runs_once(start: Callable[..., Running]) -> None:
    q = make_queue(lease=0.3)
    runs: list[str] = []

    @q.task()
    def slow() -> str:
        runs.append("start")
        time.sleep(1.0)
        return "done"

    start([q], workers=2)
    start([q], workers=2)
    result = slow()
    assert result.get(blocking=True, timeout=5) == "done"
    time.sleep(0.3)
    assert runs == ["start"]


def test_expired_lease_of_a_dead_worker_is_reclaimed(start: Callable[..., Running]) -> None:
    q = make_queue(lease=0.2)

    @q.task()
    def work() -> str:
        return "ok"

    result = work()
    abandoned = q.reserve()
    assert abandoned is not None and abandoned.attempt == 1
    start([q])
    assert result.get(blocking=True, timeout=5) == "ok"
    assert q.storage.in_flight_size() == 0


def test_graceful_stop_lets_running_task_finish() -> None:
    q = make_queue()
    started = threading.Event()

    @q.task()
    def slow() -> str:
        started.set()
        time.sleep(0.4)
        return "finished"

    result = slow()
    running = run_until_started(q, started, shutdown_timeout=5)
    running.stop()
    assert result.get() == "finished"
    assert q.storage.in_flight_size() == 0
    assert q.pending_count() == 0


class AckRecordingStorage(MemoryStorage):
    """Memory storage that records which acknowledgement a worker used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acks: list[str] = []

    def ack(self, *args: Any, **kwargs: Any) -> bool:
        self.acks.append("ack")
        return super().ack(*args, **kwargs)

    def ack_and_reserve(self, *args: Any, **kwargs: Any) -> Any:
        self.acks.append("ack_and_reserve")
        return super().ack_and_reserve(*args, **kwargs)


def test_a_stop_requested_while_a_task_runs_claims_nothing_at_its_acknowledgement() -> None:
    """Graceful shutdown: the choice to claim the next message is made when the task ends, not when it started."""
    q = make_queue(storage_class=AckRecordingStorage)
    started = threading.Event()

    @q.task()
    def slow() -> str:
        started.set()
        time.sleep(0.3)
        return "finished"

    first = slow()
    running = run_until_started(q, started, shutdown_timeout=5)
    second = slow()  # ready while the first runs
    running.stop()
    assert first.get() == "finished"
    assert q.storage.acks == ["ack"]
    assert second.get() is None
    assert (q.pending_count(), q.storage.in_flight_size()) == (1, 0)


def test_a_failing_connection_check_after_a_task_loses_no_claimed_message(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message claimed together with an acknowledgement is run even when the check after the task fails."""
    q = make_queue()
    broken = threading.Event()
    real_check = workers.close_old_connections

    def check(keep: tuple[str, ...] = ()) -> None:
        if broken.is_set():
            broken.clear()
            raise RuntimeError("database went away")
        real_check(keep)

    monkeypatch.setattr(workers, "close_old_connections", check)
    ran: list[int] = []

    @q.task()
    def step(n: int) -> None:
        ran.append(n)
        if n == 1:
            broken.set()

    for n in (1, 2, 3):
        step(n)
    start([q], workers=1)
    eventually(lambda: len(ran) == 3, timeout=5)
    assert sorted(ran) == [1, 2, 3]
    assert q.storage.in_flight_size() == 0


def test_shutdown_timeout_hands_running_task_back_with_attempt_counted() -> None:
    q = make_queue()
    started = threading.Event()
    release = threading.Event()

    @q.task()
    def stuck() -> None:
        started.set()
        release.wait(5)

    stuck()
    running = run_until_started(q, started, shutdown_timeout=0.2)
    running.stop()
    assert q.pending_count() == 1
    assert q.storage.in_flight_size() == 0
    again = q.reserve()
    assert again is not None and again.attempt == 2
    release.set()


def test_recycled_worker_is_restarted_by_the_health_check(start: Callable[..., Running]) -> None:
    q = make_queue()

    @q.task()
    def echo(n: int) -> int:
        return n

    running = start([q], workers=1, max_tasks=2)
    results = [echo(n) for n in range(7)]
    assert [r.get(blocking=True, timeout=5) for r in results] == list(range(7))
    assert len(running.consumer._workers) == 1


class FlakyStorage(MemoryStorage):
    """A memory storage whose reserve fails while ``down`` is set."""

    down = threading.Event()

    def reserve(self, lease: float) -> Any:
        if self.down.is_set():
            raise StorageError("storage is down (test)")
        return super().reserve(lease)


def test_worker_backs_off_and_recovers_when_the_storage_fails(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    q = MemoryHuey(f"flaky-{uuid.uuid4().hex[:8]}", storage_class=FlakyStorage, block_timeout=0.05)

    @q.task()
    def echo(n: int) -> int:
        return n

    FlakyStorage.down.set()
    try:
        running = start([q])
        result = echo(7)
        eventually(lambda: "storage is down" in caplog.text)
        time.sleep(0.1)
        assert running.thread.is_alive()
        assert result.get() is None
    finally:
        FlakyStorage.down.clear()
    assert result.get(blocking=True, timeout=5) == 7


def test_task_log_line_per_task(start: Callable[..., Running], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="django_tasks_q.consumer")
    q = make_queue()

    @q.task()
    def fine() -> int:
        return 1

    @q.task()
    def broken() -> None:
        raise ValueError("nope")

    start([q])
    ok, bad = fine(), broken()
    assert ok.get(blocking=True, timeout=5) == 1
    eventually(lambda: f"{bad.id} error" in caplog.text)
    assert f"{fine.path} {ok.id} complete" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "workers must be an int > 0"),
        ({"worker_type": "greenlet"}, "worker_type must be one of"),
        ({"backoff": 0.5}, "backoff must be a number >= 1"),
        ({"max_tasks": -1}, "max_tasks must be an int > 0"),
    ],
)
def test_bad_consumer_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ConsumerOptions(**options)


def test_unknown_consumer_setting_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"TASKS_Q\['x'\]\['CONSUMER'\]: unknown consumer option"):
        ConsumerOptions.from_dict({"wokers": 2}, where="TASKS_Q['x']['CONSUMER']")


class BrokenScheduleStorage(MemoryStorage):
    """A memory storage whose schedule area fails."""

    def enqueue_due(self, timestamp: float) -> int:
        raise StorageError("schedule area is broken (test)")


def test_a_failing_scheduler_step_does_not_stop_the_reaper() -> None:
    q = MemoryHuey(f"broken-{uuid.uuid4().hex[:8]}", storage_class=BrokenScheduleStorage, block_timeout=0, lease=0.1)

    @q.task()
    def work() -> None:
        return None

    work()
    abandoned = q.reserve()
    assert abandoned is not None
    consumer = Consumer([q], ConsumerOptions(**FAST), install_signal_handlers=False, monitor=False)
    time.sleep(0.15)
    with pytest.raises(StorageError, match="schedule area is broken"):
        consumer.scheduler.tick(dt.datetime.now(dt.UTC), {q.name: 0.0}, {q.name: 1.0}, {})
    assert q.storage.in_flight_size() == 0
    assert q.pending_count() == 1
