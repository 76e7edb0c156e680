"""``ledger_watch``: write the default queue's depths to the ledger every ``--interval`` seconds, until killed.

Each sample is a ``depth`` event with ``pending`` and ``in_flight``; a test reads them to see *when* the store
reached a state (RELIABILITY R7: not-started messages are ready again within a second of SIGTERM).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_tasks_q.conf import queues
from tests.ledgerapp import ledger


class Command(BaseCommand):
    """Sample depths."""

    def add_arguments(self, parser: CommandParser) -> None:
        """--interval, --duration."""
        parser.add_argument("--interval", type=float, default=0.05)
        parser.add_argument("--duration", type=float, default=120.0)

    def handle(self, *args: Any, **options: Any) -> None:
        """Sample until killed (or ``--duration`` seconds passed); storage errors are samples too."""
        storage = queues["default"].storage
        end = time.monotonic() + options["duration"]
        ledger.write("watching", n=-1)
        while time.monotonic() < end:
            try:
                ledger.write("depth", n=-1, pending=storage.queue_size(), in_flight=storage.in_flight_size())
            except Exception as exc:
                ledger.write("depth", n=-1, error=str(exc))
            time.sleep(options["interval"])
