"""``ledger_stats``: print the default queue's counts (and its dead letters) as JSON."""

from __future__ import annotations

import hashlib
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
        letters = storage.dead_letters() if hub.supports_dead_letters else []
        counts = {
            "pending": storage.queue_size(),
            "scheduled": storage.schedule_size(),
            "in_flight": storage.in_flight_size(),
            "dead": len(letters),
            "dead_reasons": [d.reason for d in letters],
            "dead_letters": [
                {
                    "reason": d.reason,
                    "detail": d.detail[:300],
                    "attempts": d.attempts,
                    "size": len(d.data),
                    "sha": hashlib.sha256(d.data).hexdigest()[:16],
                }
                for d in letters
            ],
            "in_flight_attempts": [r.attempt for r in storage.in_flight_items()],
            # how far past its claim each lease now reaches: more than the lease once it was renewed
            "in_flight_held_for": [r.deadline - r.reserved_at for r in storage.in_flight_items()],
        }
        self.stdout.write(json.dumps(counts))
