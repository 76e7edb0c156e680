"""``manage.py feed_demo``: keep demo tasks flowing so the admin has something to show."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo.tasks import enqueue_demo_batch


class Command(BaseCommand):
    """Enqueue a batch of demo tasks every few seconds until interrupted."""

    help = "Enqueue a batch of demo tasks every few seconds (Ctrl-C stops)."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--every SECONDS`` and ``--batches N`` (0: forever)."""
        parser.add_argument("--every", type=float, default=5.0)
        parser.add_argument("--batches", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        """Feed until interrupted or ``--batches`` were sent."""
        sent = 0
        try:
            while not options["batches"] or sent < options["batches"]:
                enqueue_demo_batch()
                sent += 1
                time.sleep(options["every"])
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"fed {sent} batch(es) of demo tasks")
