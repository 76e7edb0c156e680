"""``ledger_forget_workers``: delete every record of running consumers and workers (RELIABILITY R6).

Recovery must never need such a record; this command removes what the monitoring keeps (heartbeat rows),
when that model exists, and prints how many rows it deleted (``none`` when there is no such model).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Delete consumer heartbeat rows."""

    def handle(self, *args: Any, **options: Any) -> None:
        """Delete and print the count."""
        try:
            model = apps.get_model("django_tasks_q", "ConsumerHeartbeat")
        except LookupError:
            self.stdout.write("none")
            return
        deleted, _ = model.objects.all().delete()
        self.stdout.write(str(deleted))
