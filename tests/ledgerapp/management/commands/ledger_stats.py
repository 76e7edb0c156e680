"""``ledger_stats``: print the default queue's counts as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from django_tasks_q.conf import queues


class Command(BaseCommand):
    """Print pending, scheduled, in-flight and dead-letter counts."""

    def handle(self, *args: Any, **options: Any) -> None:
        """Print the counts."""
        hub = queues["default"]
        storage = hub.storage
        counts = {
            "pending": storage.queue_size(),
            "scheduled": storage.schedule_size(),
            "in_flight": storage.in_flight_size(),
            "dead": storage.dead_letter_count() if storage.supports_dead_letters() else 0,
            "dead_reasons": [d.reason for d in storage.dead_letters()] if storage.supports_dead_letters() else [],
        }
        self.stdout.write(json.dumps(counts))
