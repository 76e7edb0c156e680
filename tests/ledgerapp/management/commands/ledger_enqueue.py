"""``ledger_enqueue COUNT``: enqueue ledger tasks (numbered from ``--start``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tests.ledgerapp.tasks import TASKS, kill_own_worker, record


class _RolledBack(Exception):
    pass


class Command(BaseCommand):
    """Enqueue ledger tasks."""

    def add_arguments(self, parser: CommandParser) -> None:
        """COUNT and options."""
        parser.add_argument("count", type=int)
        parser.add_argument("--start", type=int, default=0)
        parser.add_argument("--sleep", type=float, default=0.0)
        parser.add_argument("--delay", type=float, default=None)
        parser.add_argument("--killer", action="store_true", help="enqueue one kill_own_worker task first")
        parser.add_argument("--task", choices=sorted(TASKS), default="record", help="which ledger task")
        parser.add_argument("--when-exists", dest="when_exists", default=None, metavar="PATH",
                            help="wait (up to 60 s) until PATH exists, then enqueue at once")
        parser.add_argument("--atomic", choices=("commit", "rollback"), default=None,
                            help="enqueue inside transaction.atomic() and commit or roll it back")

    def handle(self, *args: Any, **options: Any) -> None:
        """Enqueue; print a JSON object with the number enqueued and the task ids."""
        if options["when_exists"]:
            trigger = Path(options["when_exists"])
            deadline = time.monotonic() + 60
            while not trigger.exists():
                if time.monotonic() > deadline:
                    raise CommandError(f"{trigger} did not appear within 60 s")
                time.sleep(0.002)
        if options["atomic"] is None:
            ids = self._enqueue(options)
        else:
            try:
                with transaction.atomic():
                    ids = self._enqueue(options)
                    if options["atomic"] == "rollback":
                        raise _RolledBack
            except _RolledBack:
                pass
        self.stdout.write(json.dumps({"count": options["count"], "ids": ids}))

    def _enqueue(self, options: dict[str, Any]) -> list[str]:
        ids = []
        if options["killer"]:
            ids.append(kill_own_worker(-99).id)
        wrapper = TASKS[options["task"]]
        for n in range(options["start"], options["start"] + options["count"]):
            kwargs = {"sleep": options["sleep"]} if wrapper is record else {}
            if options["delay"] is not None:
                result = wrapper.schedule((n,), kwargs, delay=options["delay"])
            else:
                result = wrapper(n, **kwargs)
            ids.append(result.id)
        return ids
