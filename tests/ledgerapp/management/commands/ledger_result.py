"""``ledger_result ID ...``: print the stored results of task ids as JSON (read without removing them).

``--plant-error ID`` first stores a failure whose recorded exception is a ``tests.ledgerapp.canary.Boom`` (a module
that must never be imported: a stored exception is rebuilt only from a module already loaded, RELIABILITY R23).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_tasks_q.conf import queues
from django_tasks_q.exceptions import TaskException
from django_tasks_q.result import NO_RESULT, Result, StoredError
from django_tasks_q.serializers import TAG_KEY, decode_exception
from django_tasks_q.task import Task


class Command(BaseCommand):
    """Print results."""

    def add_arguments(self, parser: CommandParser) -> None:
        """Task ids; --plant-error."""
        parser.add_argument("ids", nargs="*")
        parser.add_argument("--plant-error", dest="plant", default=None, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print ``{id: {"value": ...} | {"error": text, "type": text, "raised": class name, "rebuilt": class name
        or None} | null}``; ``rebuilt`` names what an error handler would receive (None: a TaskException)."""
        hub = queues["default"]
        ids = list(options["ids"])
        if options["plant"]:
            metadata = {
                "task_id": options["plant"],
                "task": "tests.ledgerapp.canary.run",
                "error": "Boom('planted')",
                "type": "tests.ledgerapp.canary.Boom",
                "message": "planted",
                "traceback": "",
                "exception": {
                    TAG_KEY: "exception",
                    "v": {
                        "module": "tests.ledgerapp.canary",
                        "qualname": "Boom",
                        "args": ["planted"],
                        "error": "Boom('planted')",
                    },
                },
            }
            hub.storage.put_data(options["plant"], hub.codec.encode_value(["error", metadata]), is_result=True)
            ids.append(options["plant"])
        out: dict[str, Any] = {}
        for task_id in ids:
            value = hub.read_result(task_id, preserve=True)
            if value is NO_RESULT:
                out[task_id] = None
            elif isinstance(value, StoredError):
                try:
                    Result(hub, Task("tests.ledgerapp.tasks.record", id=task_id)).get(preserve=True)
                    raised = None
                except TaskException as exc:
                    raised = type(exc).__name__
                except Exception as exc:  # anything else is a bug this command reports
                    raised = f"unexpected {type(exc).__name__}: {exc}"
                rebuilt = decode_exception(value.metadata.get("exception"))
                out[task_id] = {
                    "error": value.metadata.get("error"),
                    "type": value.metadata.get("type"),
                    "raised": raised,
                    "rebuilt": None if rebuilt is None else type(rebuilt).__name__,
                }
            else:
                out[task_id] = {"value": repr(value)}
        out["_canary_imported"] = "tests.ledgerapp.canary" in sys.modules
        self.stdout.write(json.dumps(out))
