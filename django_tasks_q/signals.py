"""Task lifecycle signals, with huey's names and calling convention.

Receivers connected with ``@queue.signal(...)`` are called as
``receiver(signal, task, *extra)``; ``SIGNAL_ERROR`` passes the exception as the
third argument. Every signal is also sent through the Django signal
:data:`task_event` (``sender`` is the queue), so apps such as task history can
listen without a reference to each queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_tasks_q.signals")

SIGNAL_CANCELED = "canceled"
SIGNAL_COMPLETE = "complete"
SIGNAL_ENQUEUED = "enqueued"
SIGNAL_ERROR = "error"
SIGNAL_EXECUTING = "executing"
SIGNAL_EXPIRED = "expired"
SIGNAL_INTERRUPTED = "interrupted"
SIGNAL_LOCKED = "locked"
SIGNAL_RATE_LIMITED = "rate-limited"
SIGNAL_RETRYING = "retrying"
SIGNAL_REVOKED = "revoked"
SIGNAL_SCHEDULED = "scheduled"
SIGNAL_TIMEOUT = "timeout"
# Delivery events beyond huey's, so that every reclaim, lost lease and dead letter can be observed. Their
# receivers get ``task`` (None when the message could not be decoded) and: dead-lettered (reason, detail,
# message id, task id or None); reclaimed (task id, message id); lost-lease (message id).
SIGNAL_DEAD_LETTERED = "dead-lettered"
SIGNAL_RECLAIMED = "reclaimed"
SIGNAL_LOST_LEASE = "lost-lease"

ALL_SIGNALS = frozenset(
    {
        SIGNAL_CANCELED,
        SIGNAL_COMPLETE,
        SIGNAL_ENQUEUED,
        SIGNAL_ERROR,
        SIGNAL_EXECUTING,
        SIGNAL_EXPIRED,
        SIGNAL_INTERRUPTED,
        SIGNAL_LOCKED,
        SIGNAL_RATE_LIMITED,
        SIGNAL_RETRYING,
        SIGNAL_REVOKED,
        SIGNAL_SCHEDULED,
        SIGNAL_TIMEOUT,
        SIGNAL_DEAD_LETTERED,
        SIGNAL_RECLAIMED,
        SIGNAL_LOST_LEASE,
    }
)

task_event = Signal()
"""Django signal sent for every task event: ``sender`` (the queue), ``event`` (the signal name), ``task``, ``args``."""

Receiver = Callable[..., Any]


class SignalRegistry:
    """Receivers of one queue, by signal name (an empty set of names means "every signal")."""

    def __init__(self) -> None:
        self._receivers: dict[Receiver, frozenset[str]] = {}

    def connect(self, receiver: Receiver, *signals: str) -> None:
        """Call ``receiver`` for the given signals, or for all of them when none are named."""
        unknown = set(signals) - ALL_SIGNALS
        if unknown:
            raise ValueError(f"unknown signal name(s) {sorted(unknown)}; known: {sorted(ALL_SIGNALS)}")
        self._receivers[receiver] = frozenset(signals)

    def disconnect(self, receiver: Receiver, *signals: str) -> bool:
        """Stop calling ``receiver`` (for the named signals only, when some are named)."""
        current = self._receivers.get(receiver)
        if current is None:
            return False
        if not signals:
            del self._receivers[receiver]
            return True
        remaining = (current or ALL_SIGNALS) - set(signals)
        if remaining:
            self._receivers[receiver] = frozenset(remaining)
        else:
            del self._receivers[receiver]
        return True

    def send(self, sender: Any, signal: str, task: Any, *args: Any) -> None:
        """Call every receiver of ``signal``; a receiver that raises is logged, never propagated."""
        for receiver, names in list(self._receivers.items()):
            if names and signal not in names:
                continue
            try:
                receiver(signal, task, *args)
            except Exception:
                logger.exception("signal receiver %r failed for %s of task %s", receiver, signal, task)
        if task_event.receivers:
            for receiver, response in task_event.send_robust(sender, event=signal, task=task, args=args):
                if isinstance(response, Exception):
                    logger.error(
                        "task_event receiver %r failed for %s of task %s",
                        receiver,
                        signal,
                        task,
                        exc_info=response,
                    )
