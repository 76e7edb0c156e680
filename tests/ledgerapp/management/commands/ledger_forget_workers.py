"""``ledger_forget_workers``: delete every record of running consumers and workers (RELIABILITY R6).

Recovery must never need such a record; this command removes what the monitoring keeps (heartbeat rows),
when that model exists, and prints how many rows it deleted (``none`` when there is no such model).

With ``--lock-timeout S`` it waits at most S seconds for a lock and, when another process holds the database's
write lock (a consumer frozen in the middle of a write), prints ``locked`` and exits 3 instead of failing.
"""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser
from django.db import OperationalError, connection

LOCKED_EXIT = 3


class Command(BaseCommand):
    """Delete consumer heartbeat rows."""

    def add_arguments(self, parser: CommandParser) -> None:
        """--lock-timeout."""
        parser.add_argument("--lock-timeout", type=float, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        """Delete and print the count."""
        try:
            model = apps.get_model("django_tasks_q", "ConsumerHeartbeat")
        except LookupError:
            self.stdout.write("none")
            return
        if options["lock_timeout"] is not None:
            self._limit_lock_wait(options["lock_timeout"])
        try:
            deleted, _ = model.objects.all().delete()
        except OperationalError as exc:
            if options["lock_timeout"] is None:
                raise
            self.stdout.write(f"locked: {exc}")
            sys.exit(LOCKED_EXIT)
        self.stdout.write(str(deleted))

    @staticmethod
    def _limit_lock_wait(seconds: float) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            elif connection.vendor == "postgresql":
                cursor.execute(f"SET lock_timeout = {int(seconds * 1000)}")
            elif connection.vendor == "mysql":
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, round(seconds))}")
