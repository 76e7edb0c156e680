"""A consumer that fails fast at start and logs an outage once: start-up verification, outage and retry logging."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_tasks_q import RedisHuey
from django_tasks_q.consumer import Consumer, ConsumerOptions
from django_tasks_q.consumer.outages import OutageLog, StorageUnavailable, verify_storages
from tests.support.deployments import Deployment, eventually
from tests.support.hub import drain, later, new_queue, run_next
from tests.support.redis_servers import RedisServer, free_ports

ROOT = Path(__file__).resolve().parents[2]


def storage_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if "storage" in r.getMessage() and r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------------ the outage log


def test_an_outage_is_logged_once_however_many_reports(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog("q", initial_delay=0.01, max_delay=0.08)
    with caplog.at_level(logging.INFO, logger="django_tasks_q"):
        delays = []
        for index in range(40):
            delays.append(outage.failed(ConnectionError("refused"), f"worker q-{index % 4}"))
            time.sleep(0.005)
        outage.recovered()
        outage.recovered()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0][0] == "ERROR"
    assert messages[0][1].startswith("queue 'q': storage unavailable (ConnectionError: refused, seen by worker q-0)")
    assert messages[1][0] == "INFO"
    assert messages[1][1].startswith("queue 'q': storage available again after ")
    assert messages[1][1].endswith("(40 failed call(s) meanwhile)")
    assert delays[0] == 0.01 and max(delays) <= 0.08 and delays[-1] > 0.04  # grew, capped


def test_the_wait_grows_once_per_wait_not_once_per_report() -> None:
    outage = OutageLog("q", initial_delay=10.0, max_delay=30.0)
    delays = {outage.failed(OSError("down"), f"worker {index}") for index in range(20)}
    assert delays == {10.0}  # twenty workers reporting at once do not push it to the cap


@pytest.mark.slow
def test_a_consumer_logs_one_error_per_outage_and_one_info_at_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (port,) = free_ports(1)  # nothing listens there yet
    hub = RedisHuey(f"outage-{port}", url=f"redis://127.0.0.1:{port}/0", block_timeout=0.2)

    @hub.task(name="outage.one")
    def one() -> int:
        return 1

    consumer = Consumer([hub], ConsumerOptions(workers=4), install_signal_handlers=False, monitor=False)
    outage = consumer.outages[hub.name]
    server = RedisServer(port, tmp_path / "redis")
    with caplog.at_level(logging.INFO, logger="django_tasks_q"):
        consumer.start()
        try:
            eventually(lambda: outage._failures >= 12, 20, what="a dozen failed storage calls")
            during = storage_lines(caplog.records)
            server.start()
            eventually(lambda: not outage.in_outage, 40, what="the end of the outage")
            assert one().get(blocking=True, timeout=30) == 1
        finally:
            consumer.shutdown()
            server.stop()
            hub.storage.close()
    errors = [r for r in during if r.levelno == logging.ERROR and "storage unavailable" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in during]
    assert not [r for r in during if "retrying in" in r.getMessage()]  # no line per worker per retry
    ends = [r for r in caplog.records if "storage available again" in r.getMessage()]
    assert len(ends) == 1 and ends[0].levelno == logging.INFO


# ------------------------------------------------------------------------------------------ start-up checks


def test_verification_names_the_unreachable_storage() -> None:
    (port,) = free_ports(1)
    hub = RedisHuey(f"verify-{port}", url=f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StorageUnavailable) as caught:
            verify_storages([hub])
    finally:
        hub.storage.close()
    assert str(caught.value).startswith(f"queue {hub.name!r}: storage RedisStorage unavailable: ")


def test_waiting_for_a_storage_ends_with_a_stop_request(caplog: pytest.LogCaptureFixture) -> None:
    (port,) = free_ports(1)
    hub = RedisHuey(f"verify-{port}", url=f"redis://127.0.0.1:{port}/0")
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    try:
        with caplog.at_level(logging.WARNING, logger="django_tasks_q"), pytest.raises(StorageUnavailable) as caught:
            verify_storages([hub], wait=True, stop=stop)
    finally:
        hub.storage.close()
    assert "stopped while waiting for it" in str(caught.value)
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.endswith("; waiting for it (--wait-for-storage)")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_tasks_exits_with_one_clear_error_when_redis_is_unreachable(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    deployment = Deployment(tmp_path, f"redis://127.0.0.1:{port}/0")
    try:
        started = time.monotonic()
        consumer = deployment.consumer("--workers", "4")
        assert consumer.wait(30) == 1
        assert time.monotonic() - started < 20
        log = consumer.log()
        assert "queue 'default': storage RedisStorage unavailable: " in log
        assert "The consumer did not start" in log and "--wait-for-storage" in log
        assert " starting" not in log
        assert len(log.splitlines()) < 10, log
    finally:
        deployment.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_tasks_exits_when_the_orm_tables_are_missing(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, "orm://", migrate=False)  # a database nobody migrated
    try:
        consumer = deployment.consumer()
        assert consumer.wait(30) == 1
        log = consumer.log()
        assert "do not exist in database 'default'" in log and "python manage.py migrate" in log, log
        assert " starting" not in log
    finally:
        deployment.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_tasks_waits_for_redis_with_the_flag(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    deployment = Deployment(tmp_path, f"redis://127.0.0.1:{port}/0")
    server = RedisServer(port, tmp_path / "redis")
    try:
        consumer = deployment.consumer("--wait-for-storage")
        eventually(lambda: "waiting for it (--wait-for-storage)" in consumer.log(), 30, what="the wait's warning")
        assert consumer.alive and " starting" not in consumer.log()
        server.start()
        eventually(lambda: " starting" in consumer.log(), 60, what="the consumer's start")
        deployment.enqueue(2)
        eventually(lambda: deployment.finished() == {0, 1}, 30, what="two tasks finished")
        consumer.signal(signal.SIGTERM)
        assert consumer.wait(30) == 0, consumer.log()
    finally:
        deployment.close()
        server.stop()
    log = consumer.log()
    assert log.count("waiting for it (--wait-for-storage)") == 1, log
    assert "queue 'default': storage available after " in log


# ------------------------------------------------------------------------------------------ retries


def test_a_retry_is_one_warning_and_the_last_failure_one_traceback(caplog: pytest.LogCaptureFixture) -> None:
    q = new_queue()

    @q.task(name="flaky.fetch", retries=2, retry_delay=3)
    def fetch() -> None:
        raise ConnectionError("unreachable")

    result = fetch()
    with caplog.at_level(logging.INFO, logger="django_tasks_q"):
        assert run_next(q)
        first = [r for r in caplog.records if r.levelno >= logging.WARNING]
        drain(q, now=later(10))
        drain(q, now=later(20))
    assert [r.getMessage() for r in first] == [
        f"task flaky.fetch ({result.id}) failed (ConnectionError: unreachable); will retry in 3 s, attempt 2 of 3"
    ]
    assert first[0].exc_info is None
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in loud] == ["WARNING", "WARNING", "ERROR"]
    assert loud[1].getMessage().endswith("will retry in 3 s, attempt 3 of 3")
    assert loud[2].getMessage() == f"task flaky.fetch ({result.id}) failed"
    assert loud[2].exc_info is not None and loud[2].exc_info[0] is ConnectionError


# ------------------------------------------------------------------------------------------ a quiet start


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_pruning_history_on_a_locked_sqlite_database_retries_quietly(tmp_path: Path) -> None:
    """Every consumer prunes as it starts, beside its workers' first writes: SQLite's "database is locked"."""
    database = tmp_path / "django.sqlite3"
    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path / 'queue.db'}")  # migrates django.sqlite3
    deployment.close()
    script = f"""
import logging, sqlite3, sys
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="x" * 50,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_tasks_q"],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(database)!r},
                            "OPTIONS": {{"timeout": 0.05}}}}}},
)
django.setup()
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
from django_tasks_q.history import recorder

holder = sqlite3.connect({str(database)!r}, isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # another process writing: the database is locked
history = recorder.HistoryRecorder()
for attempt in range(1, 5):
    history._next_prune = 0.0
    history._run_jobs()
    print("after attempt", attempt, "conflicts", history._prune_conflicts)
holder.execute("ROLLBACK")
history._next_prune = 0.0
history._run_jobs()
print("after the lock", "conflicts", history._prune_conflicts)
"""
    done = subprocess.run(
        [sys.executable, "-u", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[:3] == [f"after attempt {n} conflicts {n}" for n in (1, 2, 3)], done.stdout
    assert lines[3].startswith("WARNING could not prune task history: OperationalError: database is locked")
    assert lines[4:] == ["after attempt 4 conflicts 4", "after the lock conflicts 0"], done.stdout
