"""Operations: the health command and the consumer's heartbeat file (Prometheus metrics: tests/django/test_metrics.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task
from django_tasks_q.history.health import snapshot
from django_tasks_q.history.models import ConsumerHeartbeat
from django_tasks_q.timeutils import now_utc

pytestmark = pytest.mark.django_db

MEMORY = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}
TWO_QUEUES = {"ops": MEMORY, "ops-idle": MEMORY}


@task(queue="ops")
def chore(n: int) -> int:
    return n


def health(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("tasks_q_health", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


def beat(queues_text: str, seconds_ago: float, stopped: bool = False) -> None:
    now = timezone.now()
    ConsumerHeartbeat.objects.create(
        identity=f"host:{seconds_ago}:{queues_text}",
        host="host",
        pid=1,
        queues=queues_text,
        workers=2,
        started_at=now - dt.timedelta(hours=1),
        last_heartbeat=now - dt.timedelta(seconds=seconds_ago),
        stopped_at=now if stopped else None,
        interval=10,
    )


@override_settings(TASKS_Q=TWO_QUEUES)
def test_health_is_ok_without_thresholds_and_reports_counts() -> None:
    chore(1)
    chore(2)
    code, out = health()
    assert code == 0
    assert "ops: ok — 2 pending" in out
    assert "ops-idle: ok — 0 pending" in out


@override_settings(TASKS_Q=TWO_QUEUES)
def test_backlog_and_dead_letter_thresholds_make_it_unhealthy() -> None:
    for n in range(5):
        chore(n)
    queues["ops"].storage.add_dead_letter(b"junk", "decode_error")
    code, out = health("--queue", "ops", "--max-backlog", "3", "--max-dead-letters", "0")
    assert code == 1
    assert "backlog 5 > 3" in out and "1 dead letters > 0" in out
    assert health("--queue", "ops", "--max-backlog", "5", "--max-dead-letters", "1")[0] == 0


@override_settings(TASKS_Q=TWO_QUEUES)
def test_oldest_pending_age_threshold() -> None:
    chore(1)
    time.sleep(0.3)
    code, out = health("--queue", "ops", "--max-oldest-age", "0.1", "--format", "json")
    assert code == 1
    [report] = json.loads(out)
    assert report["oldest_pending_age"] >= 0.3
    assert report["problems"][0].startswith("oldest pending task waited")
    assert health("--queue", "ops", "--max-oldest-age", "60")[0] == 0


@override_settings(TASKS_Q=TWO_QUEUES, USE_TZ=False)
def test_oldest_pending_age_of_a_queue_with_naive_datetimes() -> None:
    assert queues["ops"].aware_datetimes is False
    chore(1)
    report = snapshot("ops", now_utc() + dt.timedelta(seconds=30))
    assert report.error is None and 29 <= report.oldest_pending_age <= 31


@override_settings(TASKS_Q=TWO_QUEUES)
def test_heartbeat_threshold_uses_live_consumers_of_that_queue() -> None:
    assert health("--queue", "ops", "--max-heartbeat-age", "30")[0] == 1
    beat("ops-idle", 1)
    beat("ops", 100, stopped=True)
    code, out = health("--queue", "ops", "--max-heartbeat-age", "30")
    assert code == 1 and "no consumer heartbeat at all" in out
    beat("ops, ops-idle", 5)
    code, out = health("--queue", "ops", "--max-heartbeat-age", "30", "--format", "json")
    assert code == 0
    assert json.loads(out)[0]["consumers_alive"] == 1


@override_settings(TASKS_Q={"down": {"URL": "redis://127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 0.5}}})
def test_unreachable_storage_exits_2() -> None:
    code, out = health()
    assert code == 2
    assert "down: UNREACHABLE (StorageError" in out


@override_settings(TASKS_Q=TWO_QUEUES)
def test_unknown_queue_is_an_error() -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="unknown queue"):
        call_command("tasks_q_health", "--queue", "nope")


def test_consumer_heartbeat_file_is_refreshed(tmp_path: Path) -> None:
    from django_tasks_q import MemoryHuey
    from django_tasks_q.consumer import Consumer, ConsumerOptions
    from tests.consumer.test_consumer import Running

    q = MemoryHuey("heartbeat-file", block_timeout=0.05)
    path = tmp_path / "alive"
    consumer = Consumer([q], ConsumerOptions(health_check_interval=0.2), install_signal_handlers=False,
                        monitor=False, heartbeat_file=path)
    running = Running(consumer)
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first = os.stat(path).st_mtime_ns
    time.sleep(1.2)
    assert os.stat(path).st_mtime_ns > first
    running.stop()
