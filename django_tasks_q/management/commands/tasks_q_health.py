"""``python manage.py tasks_q_health``: exit 0 when every queue is healthy, 1 when a threshold is broken,
2 when a storage cannot be reached. For monitoring and container health probes."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks_q.conf import configured_queues
from django_tasks_q.history.health import Thresholds, evaluate, snapshot

EXIT_UNHEALTHY = 1
EXIT_UNREACHABLE = 2


class Command(BaseCommand):
    """Report queue health against thresholds, as text or JSON."""

    help = "Check queue health: backlog, oldest pending age, consumer heartbeats, dead letters."

    def add_arguments(self, parser: CommandParser) -> None:
        """Queues, thresholds and the output format."""
        parser.add_argument("--queue", "-q", action="append", dest="queues", metavar="NAME")
        parser.add_argument("--max-backlog", type=int, help="pending tasks above this are unhealthy")
        parser.add_argument("--max-oldest-age", type=float, help="seconds the oldest pending task may wait")
        parser.add_argument("--max-heartbeat-age", type=float, help="seconds since the last consumer heartbeat")
        parser.add_argument("--max-dead-letters", type=int, help="dead letters above this are unhealthy")
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        """Measure, compare, print, and exit with 0, 1 or 2."""
        configured = list(configured_queues())
        names = options["queues"] or configured
        unknown = [name for name in names if name not in configured]
        if unknown:
            raise CommandError(f"unknown queue(s) {unknown}; TASKS_Q configures {configured}")
        limits = Thresholds(
            max_backlog=options["max_backlog"],
            max_oldest_age=options["max_oldest_age"],
            max_heartbeat_age=options["max_heartbeat_age"],
            max_dead_letters=options["max_dead_letters"],
        )
        report = [evaluate(snapshot(name), limits) for name in names]
        if options["format"] == "json":
            self.stdout.write(json.dumps([health.as_dict() for health in report], indent=2))
        else:
            for health in report:
                self.stdout.write(_text(health))
        if any(health.error for health in report):
            sys.exit(EXIT_UNREACHABLE)
        if any(health.problems for health in report):
            sys.exit(EXIT_UNHEALTHY)


def _text(health: Any) -> str:
    if health.error:
        return f"{health.queue}: UNREACHABLE ({health.error})"
    state = "UNHEALTHY" if health.problems else "ok"
    age = "-" if health.oldest_pending_age is None else f"{health.oldest_pending_age:.0f}s"
    line = (
        f"{health.queue}: {state} — {health.pending} pending (oldest {age}), {health.scheduled} scheduled, "
        f"{health.in_flight} in flight, {health.dead_letters} dead letters, "
        f"{health.consumers_alive if health.consumers_alive is not None else '?'} consumer(s) alive"
    )
    return line + "".join(f"\n  - {problem}" for problem in health.problems)
