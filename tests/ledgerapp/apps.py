"""App config of the ledger test app: loss-relevant signals go to the ledger; optional crash points."""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig

LOSS_EVENTS = ("dead-lettered", "reclaimed", "lost-lease")


class LedgerAppConfig(AppConfig):
    """The ledger test app."""

    name = "tests.ledgerapp"
    label = "ledgerapp"

    def ready(self) -> None:
        """Record loss-relevant signals in the ledger; install the crash points named by ``TASKS_Q_CRASH``."""
        if not os.environ.get("TASKS_Q_LEDGER"):
            return
        from django_tasks_q.signals import task_event

        task_event.connect(record_loss_event, dispatch_uid="ledgerapp.loss_events")
        if os.environ.get("TASKS_Q_CRASH"):
            install_crash_points(json.loads(os.environ["TASKS_Q_CRASH"]))


def record_loss_event(sender: Any, event: str, task: Any, args: tuple[Any, ...], **kwargs: Any) -> None:
    """A ``signal`` ledger line for each dead letter, reclaimed lease and lost lease (RELIABILITY R27)."""
    if event not in LOSS_EVENTS:
        return
    from . import ledger

    ledger.write("signal", n=-1, signal=event, task_id=getattr(task, "id", None), args=[str(a) for a in args])


def install_crash_points(points: dict[str, list[int]]) -> None:
    """``os._exit(17)`` at chosen points of the first attempt of chosen ``record`` tasks (RELIABILITY R2).

    ``points``: ``{"after_reserve": [n, ...], "before_ack": [n, ...]}``. ``after_reserve`` dies as soon as the
    hub's ``reserve()`` returned the message (it is in flight in the store and nowhere else); ``before_ack`` dies
    in the storage's ``ack()`` (or ``ack_and_reserve()``), after the task finished and before anything is
    acknowledged.
    """
    from django_tasks_q.hub.queue import TaskQueue

    from . import ledger
    from .tasks import record

    def numbers(queue: Any, reservation: Any) -> int | None:
        if reservation is None or reservation.attempt != 1:
            return None
        message = queue.codec.decode(reservation.data)
        return message.args[0] if message.name == record.path and message.args else None

    def crash_before(acknowledge: Any, queue: Any) -> Any:
        def wrapper(storage: Any, reservation: Any, *args: Any, **kwargs: Any) -> Any:
            n = numbers(queue, reservation)
            if n is not None and n in points.get("before_ack", ()):
                ledger.write("crash", n=n, point="before_ack")
                os._exit(17)
            return acknowledge(storage, reservation, *args, **kwargs)

        return wrapper

    original_reserve = TaskQueue.reserve
    patched: set[type] = set()

    def reserve(self: Any, lease: float | None = None) -> Any:
        reservation = original_reserve(self, lease)
        storage_class = type(self.storage)
        if storage_class not in patched:
            patched.add(storage_class)
            for method in ("ack", "ack_and_reserve"):  # the acknowledgement, alone or with the next claim
                if hasattr(storage_class, method):
                    setattr(storage_class, method, crash_before(getattr(storage_class, method), self))
        n = numbers(self, reservation)
        if n is not None and n in points.get("after_reserve", ()):
            ledger.write("crash", n=n, point="after_reserve")
            os._exit(17)
        return reservation

    TaskQueue.reserve = reserve
