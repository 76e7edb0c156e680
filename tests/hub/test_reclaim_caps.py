"""The hub's reaper: which cap applies to an expired reservation, the dead-letter reason, the MAX_RECLAIMS setting."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q import MemoryHuey
from django_tasks_q.conf import queues
from django_tasks_q.exceptions import ConfigurationError
from django_tasks_q.signals import SIGNAL_DEAD_LETTERED
from django_tasks_q.timeutils import now_utc


def make_queue(**kwargs: Any) -> MemoryHuey:
    return MemoryHuey(f"caps-{uuid.uuid4().hex[:8]}", block_timeout=0, lease=10.0, **kwargs)


def expire(queue: MemoryHuey, renew_for: float | None) -> list[Any]:
    """Reserve the next message, renew its lease for ``renew_for`` seconds (None: never), let the reaper take it."""
    reservation = queue.reserve()
    assert reservation is not None
    if renew_for is not None:
        assert queue.storage.renew(reservation, renew_for)
    return queue.reclaim_expired(now_utc() + dt.timedelta(hours=1))


def test_a_task_whose_worker_vanished_mid_run_is_dead_lettered_as_max_reclaims_after_max_reclaims() -> None:
    queue = make_queue(max_attempts=1, max_reclaims=3)
    seen: list[tuple[str, str]] = []

    @queue.signal(SIGNAL_DEAD_LETTERED)
    def dead(signal: str, task: Any, reason: str, detail: str, *rest: Any) -> None:
        seen.append((reason, detail))

    @queue.task()
    def long_running() -> None:
        """Never called: the test plays the worker."""

    result = long_running()
    # Renewed 30 s past a 10 s lease: the task was running when its worker vanished.
    assert [item.dead_lettered for item in (expire(queue, 30.0)[0], expire(queue, 30.0)[0])] == [False, False]
    (last,) = expire(queue, 30.0)
    assert last.dead_lettered and last.reason == "max_reclaims"
    ((reason, detail),) = seen
    assert reason == "max_reclaims"
    assert result.id in detail and "vanished" in detail
    (letter,) = queue.storage.dead_letters()
    assert (letter.reason, letter.attempts) == ("max_reclaims", 3)


def test_a_reservation_renewed_only_at_its_claim_is_capped_by_max_attempts() -> None:
    queue = make_queue(max_attempts=1, max_reclaims=3)

    @queue.task()
    def crashes() -> None:
        """Never called."""

    crashes()
    (item,) = expire(queue, 10.0)  # renewed right after the claim: no sign the task ran
    assert item.dead_lettered and item.reason == "max_attempts"


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "20"])
def test_max_reclaims_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_reclaims must be an int >= 1"):
        make_queue(max_reclaims=value)


def test_the_max_reclaims_setting_reaches_the_queue() -> None:
    with override_settings(TASKS_Q={"default": {"BACKEND": "memory", "MAX_RECLAIMS": 7}}):
        assert queues["default"].max_reclaims == 7
    assert make_queue().max_reclaims == 20
