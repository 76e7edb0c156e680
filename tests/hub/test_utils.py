"""django_tasks_q.utils: huey's documented helpers (naive UTC/local times, FileLock, process_timeout)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_tasks_q.exceptions import TaskTimeout
from django_tasks_q.utils import FileLock, normalize_expire_time, normalize_time, process_timeout, utcnow


@pytest.fixture
def pacific() -> Iterator[None]:
    """The process's local zone is Los Angeles (UTC-8 in January) for the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_utcnow_is_naive_utc() -> None:
    now = utcnow()
    assert now.tzinfo is None
    assert abs(now.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


@pytest.mark.usefixtures("pacific")
def test_normalize_time_of_naive_and_aware_etas() -> None:
    noon_local = dt.datetime(2000, 1, 1, 12)
    noon_utc_as_local = dt.datetime(2000, 1, 1, 4)
    assert normalize_time(noon_local, utc=False) == noon_local
    assert normalize_time(noon_local, utc=True) == dt.datetime(2000, 1, 1, 20)
    minus_eight = dt.timezone(dt.timedelta(hours=-8))
    assert normalize_time(noon_local.replace(tzinfo=minus_eight), utc=False) == noon_local
    assert normalize_time(noon_local.replace(tzinfo=minus_eight), utc=True) == dt.datetime(2000, 1, 1, 20)
    assert normalize_time(noon_local.replace(tzinfo=dt.UTC), utc=False) == noon_utc_as_local
    assert normalize_time(noon_local.replace(tzinfo=dt.UTC), utc=True) == noon_local


@pytest.mark.parametrize("utc", [True, False])
def test_a_delay_counts_from_now_and_zero_is_now(utc: bool) -> None:
    reference = utcnow() if utc else dt.datetime.now()
    for delay, expected in ((0, 0), (dt.timedelta(0), 0), (90, 90), (dt.timedelta(minutes=2), 120)):
        due = normalize_time(delay=delay, utc=utc)
        assert abs((due - reference).total_seconds() - expected) < 5
    assert abs((normalize_expire_time(0, utc=utc) - reference).total_seconds()) < 5
    eta = dt.datetime(2030, 1, 1)
    assert normalize_expire_time(eta, utc=utc) == normalize_time(eta, utc=utc)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"eta": dt.datetime(2030, 1, 1), "delay": 1}, {"eta": "2030-01-01"}, {"delay": "5"}, {"delay": True}],
)
def test_normalize_time_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        normalize_time(**kwargs)  # type: ignore[arg-type]


def test_file_lock_excludes_another_holder_and_keeps_its_file(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "a.lock"
    first = FileLock(path)
    first.acquire()
    inode = path.stat().st_ino
    second = FileLock(path)  # building another lock does not disturb the holder
    assert path.stat().st_ino == inode
    got_it = threading.Event()

    def take() -> None:
        with second:
            got_it.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert not got_it.wait(0.2)
    first.release()
    assert got_it.wait(5)
    thread.join(5)
    first.release()  # harmless when not held
    assert path.exists()


def test_process_timeout_fires_below_a_second_and_not_after_the_block() -> None:
    started = time.monotonic()
    with pytest.raises(TaskTimeout), process_timeout(0.15):
        time.sleep(2)
    assert time.monotonic() - started < 1.5
    with process_timeout(0.15):
        pass
    time.sleep(0.3)  # a stray alarm would raise here
    for bad in (0, -1, "1", None):
        with pytest.raises(ValueError):
            process_timeout(bad)  # type: ignore[arg-type]
