"""Queue health: one snapshot per queue, read through the hub, for ``tasks_q_health`` and ``/metrics``."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..conf import queues
from ..timeutils import now_utc


@dataclass
class QueueHealth:
    """What a queue looks like now; ``error`` is set (and the counts are None) when its storage failed."""

    queue: str
    storage: str = ""
    pending: int | None = None
    scheduled: int | None = None
    in_flight: int | None = None
    dead_letters: int | None = None
    results: int | None = None
    oldest_pending_age: float | None = None
    consumers_alive: int | None = None
    last_heartbeat_age: float | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Limits beyond which a queue is unhealthy (``None``: not checked)."""

    max_backlog: int | None = None
    max_oldest_age: float | None = None
    max_heartbeat_age: float | None = None
    max_dead_letters: int | None = None


def snapshot(name: str, now: dt.datetime | None = None) -> QueueHealth:
    """Measure queue ``name``; storage failures are reported in ``error``, never raised."""
    now = now or now_utc()
    health = QueueHealth(queue=name)
    try:
        hub = queues[name]
        health.storage = type(hub.storage).__name__
        health.pending = hub.pending_count()
        health.scheduled = hub.scheduled_count()
        health.in_flight = hub.in_flight_count()
        health.dead_letters = hub.dead_letter_count()
        health.results = hub.result_count()
        oldest = hub.pending(limit=1)
        if oldest and oldest[0].enqueued_at is not None:
            enqueued_at = hub.as_utc(oldest[0].enqueued_at)
            health.oldest_pending_age = max((now - enqueued_at).total_seconds(), 0.0)
    except Exception as exc:
        health.error = f"{type(exc).__name__}: {exc}"
        return health
    health.consumers_alive, health.last_heartbeat_age = _consumers(name, now)
    return health


def _consumers(name: str, now: dt.datetime) -> tuple[int | None, float | None]:
    """Live consumers of ``name`` and the age of the newest heartbeat (None when heartbeats are unavailable)."""
    try:
        from .models import ConsumerHeartbeat

        rows = [
            row
            for row in ConsumerHeartbeat.objects.filter(stopped_at__isnull=True)
            if name in [queue.strip() for queue in row.queues.split(",")]
        ]
    except Exception:
        return None, None
    alive = sum(1 for row in rows if row.is_alive(now))
    newest = max((row.last_heartbeat for row in rows), default=None)
    return alive, (now - newest).total_seconds() if newest else None


def evaluate(health: QueueHealth, limits: Thresholds) -> QueueHealth:
    """Fill ``health.problems`` with every threshold it breaks."""
    if health.error:
        health.problems.append(f"storage unavailable: {health.error}")
        return health
    if limits.max_backlog is not None and (health.pending or 0) > limits.max_backlog:
        health.problems.append(f"backlog {health.pending} > {limits.max_backlog}")
    if limits.max_oldest_age is not None and (health.oldest_pending_age or 0) > limits.max_oldest_age:
        health.problems.append(f"oldest pending task waited {health.oldest_pending_age:.0f}s > {limits.max_oldest_age:g}s")
    if limits.max_heartbeat_age is not None:
        age = health.last_heartbeat_age
        if age is None or age > limits.max_heartbeat_age:
            seen = "no consumer heartbeat at all" if age is None else f"last consumer heartbeat {age:.0f}s ago"
            health.problems.append(f"{seen} (limit {limits.max_heartbeat_age:g}s)")
    if limits.max_dead_letters is not None and (health.dead_letters or 0) > limits.max_dead_letters:
        health.problems.append(f"{health.dead_letters} dead letters > {limits.max_dead_letters}")
    return health
