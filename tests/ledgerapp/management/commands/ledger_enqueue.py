"""``ledger_enqueue COUNT``: enqueue ``record`` tasks (numbered from ``--start``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tests.ledgerapp.tasks import kill_own_worker, record


class Command(BaseCommand):
    """Enqueue ledger tasks."""

    def add_arguments(self, parser: CommandParser) -> None:
        """COUNT, --start, --sleep, --delay, --killer."""
        parser.add_argument("count", type=int)
        parser.add_argument("--start", type=int, default=0)
        parser.add_argument("--sleep", type=float, default=0.0)
        parser.add_argument("--delay", type=float, default=None)
        parser.add_argument("--killer", action="store_true", help="enqueue one kill_own_worker task first")

    def handle(self, *args: Any, **options: Any) -> None:
        """Enqueue and print the number enqueued."""
        if options["killer"]:
            kill_own_worker(-99)
        for n in range(options["start"], options["start"] + options["count"]):
            if options["delay"] is not None:
                record.schedule((n,), {"sleep": options["sleep"]}, delay=options["delay"])
            else:
                record(n, sleep=options["sleep"])
        self.stdout.write(str(options["count"]))
