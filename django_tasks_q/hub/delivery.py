"""Reliable delivery as the workers see it: claim a message under a lease, check it, run it, acknowledge it.

A message is claimed (``reserve``), decoded and looked up in the registry (one that fails is dead-lettered,
never run), executed, and acknowledged with its result in one fenced storage step. A lease that was lost
meanwhile (another worker owns the message now) drops this worker's outcome. The reaper puts back messages
whose lease expired, or dead-letters them at the attempt limits.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..backends.base import Feature, Reclaimed, Reservation
from ..exceptions import AcknowledgementFailed, InvalidMessage, StorageError, UnknownTaskInMessage
from ..signals import SIGNAL_COMPLETE, SIGNAL_DEAD_LETTERED, SIGNAL_LOST_LEASE, SIGNAL_RECLAIMED
from ..task import Task
from ..timeutils import epoch, now_utc
from . import keyspace
from .outcome import Outcome

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")

PROGRESS_AFTER = 0.25
"""A reservation renewed at least this fraction of the lease after its claim made progress: its task was
running well when its worker vanished, so ``max_reclaims`` caps it rather than ``max_attempts``."""


class _PeekingStorage(Protocol):
    """A storage with the feature ``peek_on_reserve``: its claims also read the values of ``peek`` keys."""

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None: ...

    def ack_and_reserve(
        self, reservation: Reservation, result: Any, lease: float, peek: Sequence[str] = ()
    ) -> tuple[bool, Reservation | None]: ...


class Delivery:
    """Claims, acknowledgements, leases and dead letters of a hub's messages."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    # ------------------------------------------------------------------ claiming

    def reserve(self, lease: float | None = None) -> Reservation | None:
        """Claim the next ready message under a lease (the consumer's entry point); a storage with the feature
        ``peek_on_reserve`` reads the revocation markers with the claim."""
        hub = self.hub
        storage = hub.storage
        if Feature.PEEK_ON_RESERVE in storage.features:
            return cast(_PeekingStorage, storage).reserve(lease or hub.lease, peek=keyspace.REVOCATION_PEEK)
        return storage.reserve(lease or hub.lease)

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Hand a reserved message back to the queue now (shutdown); ``count_attempt`` if it had started."""
        released = self.hub.storage.release(reservation, count_attempt=count_attempt)
        if not released:
            self.lost_lease(reservation, None)
        return released

    def renew_lease(self, reservation: Reservation, lease: float | None = None) -> bool:
        """Extend the lease of a message a worker is running (by the queue's lease unless given); False when
        the lease was lost (another worker owns the message now)."""
        return self.hub.storage.renew(reservation, self.hub.lease if lease is None else lease)

    @property
    def blocking(self) -> bool:
        """Whether the storage's ``reserve`` itself waits for a message (a worker then needs no idle sleep)."""
        return bool(self.hub.storage.blocking)

    def wait_for_messages(self, timeout: float, wake: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds for a message to arrive, or for ``wake`` to be set; False at once
        when the storage cannot be waited on (it lacks the feature ``wait_for_messages``: the caller then sleeps
        on its own)."""
        storage = self.hub.storage
        if Feature.WAIT_FOR_MESSAGES not in storage.features:
            return False
        storage.wait_for_messages(timeout, wake)
        return True

    def process(
        self,
        reservation: Reservation,
        timestamp: dt.datetime | None = None,
        *,
        reserve_next: bool | Callable[[], bool] = False,
    ) -> Reservation | None:
        """Run one reserved message through size → signature → decode → registry → execute.

        A message that fails a check before execution is dead-lettered with the
        reason and never executed. With ``reserve_next`` (a worker that goes on)
        the acknowledgement also claims the next ready message, in one storage
        step (``ack_and_reserve``), and returns its reservation; ``None`` when
        nothing was claimed (then call :meth:`reserve`). ``reserve_next`` may be
        a callable, asked at acknowledgement time: a worker told to stop while
        the task ran then claims nothing.
        """
        task = self.claimed_task(reservation)
        if task is None:
            return None
        wants_next = reserve_next if callable(reserve_next) else (lambda: True) if reserve_next else None
        return self.hub.executor.run_and_finish(task, timestamp, reservation, wants_next)[1]

    def claimed_task(self, reservation: Reservation) -> Task | None:
        """The call a reservation carries, bound to its task; None when the message was dead-lettered instead."""
        hub = self.hub
        try:
            message = hub.codec.decode(reservation.data)
            if message.name not in hub.registry:
                raise UnknownTaskInMessage(
                    f"message names task {message.name!r}, which is not registered on queue {hub.name!r}"
                )
            wrapper = hub.registry.get(message.name)
        except InvalidMessage as exc:
            hub.dead_letter(reservation, exc.reason, str(exc))
            return None
        task = Task.from_message(message, lambda _name: wrapper, present=hub.present)
        task.attempt = reservation.attempt
        task.redelivered = reservation.attempt > 1
        return task

    def dead_letter(self, reservation: Reservation, reason: str, detail: str) -> None:
        """Move a reserved message to the dead letters (logged and signalled, never run)."""
        hub = self.hub
        if hub.supports_dead_letters:
            buried = hub.storage.bury(reservation, reason, detail)
        else:
            buried = hub.storage.ack(reservation)
        try:
            decoded = hub.codec.decode(reservation.data)
            what = f"task {decoded.name} ({decoded.id})"
        except InvalidMessage:  # its bytes are not shown: they may be anything (the admin shows them escaped)
            what = "a message that does not decode"
        logger.error(
            "queue %r: %s dead-lettered (%s): %s; message %s",
            hub.name,
            what,
            reason,
            detail,
            reservation.message_id,
        )
        if buried:
            hub._emit(SIGNAL_DEAD_LETTERED, None, reason, detail, reservation.message_id, None)
        else:
            self.lost_lease(reservation, None)

    def lost_lease(self, reservation: Reservation, task: Task | None) -> None:
        """Log and signal that another worker owns a message now, so this worker's outcome is dropped."""
        logger.warning(
            "queue %r: lease on message %s (task %s) was lost before it was acknowledged; "
            "another worker owns it now, so this worker's outcome is dropped",
            self.hub.name,
            reservation.message_id,
            task.id if task else "?",
        )
        self.hub._emit(SIGNAL_LOST_LEASE, task, reservation.message_id)

    # ------------------------------------------------------------------ acknowledging

    def finish(
        self,
        task: Task,
        reservation: Reservation | None,
        outcome: Outcome,
        wants_next: Callable[[], bool] | None = None,
    ) -> Reservation | None:
        """Write what an execution left (result, follow-ups) and acknowledge its claim; the next claim when
        ``wants_next()`` asked for one with the acknowledgement."""
        hub = self.hub
        unique_key = task.extra.get(keyspace.UNIQUE_KEY)
        if unique_key is not None and not outcome.requeued:
            # The call reached a terminal state: a new call with the same key may be enqueued again.
            outcome.follow_ups.append(lambda: hub.release_unique(unique_key))
        result = None if outcome.result is None else (task.id, outcome.result, hub.result_ttl)
        if reservation is None:
            # The result first: a follow-up may run a retry of this very task id at once (immediate
            # mode), whose result must not be overwritten by this attempt's.
            self._write_before_follow_ups(task, outcome)
            return None
        if outcome.follow_ups:
            if not self.renew_lease(reservation):
                self.lost_lease(reservation, task)
                return None
            # With follow-ups (a pipeline's next step, a chord, a retry) the result is written before them,
            # so that "complete" is sent before the next step is enqueued, as in huey.
            self._write_before_follow_ups(task, outcome)
            result = None
            outcome.completed = None
        try:
            if wants_next is not None and wants_next():
                acked, following = self._ack_and_reserve(reservation, result, hub.lease)
            else:
                acked, following = hub.storage.ack(reservation, result), None
        except (StorageError, OSError) as exc:
            # The task is done: what is left is to record it. The caller keeps the reservation and tries again
            # (retry_acknowledgement) rather than letting the lease expire and the task run again.
            raise AcknowledgementFailed(
                f"queue {hub.name!r}: task {task.id} finished but its acknowledgement (message "
                f"{reservation.message_id}) failed: {exc}",
                reservation=reservation,
                result=result,
                task_id=task.id,
                completed=outcome.completed,
            ) from exc
        if not acked:
            self.lost_lease(reservation, task)
        elif outcome.completed is not None:
            # The result is written with the acknowledgement, so "complete" follows it.
            hub._emit(SIGNAL_COMPLETE, task)
        return following

    def _write_before_follow_ups(self, task: Task, outcome: Outcome) -> None:
        """Write the result (or a retried attempt's error), send ``complete``, then run the follow-ups."""
        hub = self.hub
        if outcome.result is not None:
            hub.result_store.put_encoded(task.id, outcome.result)
        elif outcome.intermediate_error is not None:
            hub.result_store.put_encoded(task.id, outcome.intermediate_error)
        if outcome.completed is not None:
            hub._emit(SIGNAL_COMPLETE, task)
        for follow_up in outcome.follow_ups:
            follow_up()

    def retry_acknowledgement(self, failed: AcknowledgementFailed) -> bool:
        """Acknowledge again what :class:`AcknowledgementFailed` reported; True when it is recorded now.

        Raises ``StorageError`` while the storage still fails. False when the token is no longer in flight:
        either the lease was reclaimed (another worker runs the message) or the earlier attempt had gone
        through before its answer was lost; a warning says which message it was.
        """
        hub = self.hub
        if hub.storage.ack(failed.reservation, failed.result):
            if failed.completed is not None:
                hub._emit(SIGNAL_COMPLETE, failed.completed)
            return True
        logger.warning(
            "queue %r: the acknowledgement of message %s (task %s) could not be confirmed: either the attempt "
            "that failed went through before its answer was lost, or the lease was reclaimed meanwhile and the "
            "message will run again",
            hub.name,
            failed.reservation.message_id,
            failed.task_id,
        )
        return False

    def _ack_and_reserve(
        self, reservation: Reservation, result: Any, lease: float
    ) -> tuple[bool, Reservation | None]:
        storage = self.hub.storage
        if Feature.PEEK_ON_RESERVE in storage.features:
            peeking = cast(_PeekingStorage, storage)
            return peeking.ack_and_reserve(reservation, result, lease, peek=keyspace.REVOCATION_PEEK)
        return storage.ack_and_reserve(reservation, result, lease)

    # ------------------------------------------------------------------ recovery

    def reclaim_expired(self, now: dt.datetime | None = None) -> list[Reclaimed]:
        """Put expired reservations back in the queue (or dead-letter them at the attempt limit)."""
        hub = self.hub
        moment = epoch(now_utc() if now is None else hub.as_utc(now))
        if Feature.REAP_BY_PROGRESS in hub.storage.features:
            reclaimed = hub.storage.requeue_expired(
                moment, hub.max_attempts, hub.max_reclaims, hub.lease * (1 + PROGRESS_AFTER)
            )
        else:
            reclaimed = hub.storage.requeue_expired(moment, hub.max_attempts)
        for item in reclaimed:
            self._report_reclaimed(item)
        return reclaimed

    def _report_reclaimed(self, item: Reclaimed) -> None:
        hub = self.hub
        task_id = self._task_id_of(item.reservation.data)
        if not item.dead_lettered:
            logger.warning(
                "queue %r: task %s reclaimed after its lease expired (attempt %d)",
                hub.name,
                task_id,
                item.reservation.attempt,
            )
            hub._emit(SIGNAL_RECLAIMED, None, task_id, item.reservation.message_id)
            return
        vanished = item.reason == "max_reclaims"
        logger.error(
            "queue %r: task %s dead-lettered after %d attempts whose leases expired%s",
            hub.name,
            task_id,
            item.reservation.attempt,
            " (the last while it was running: its worker vanished)" if vanished else "",
        )
        detail = f"task {task_id}: lease expired after {item.reservation.attempt} attempt(s)"
        if vanished:
            detail += ", the last while it was running (its worker vanished)"
        known_id = None if task_id.startswith("<") else task_id
        hub._emit(SIGNAL_DEAD_LETTERED, None, item.reason, detail, item.reservation.message_id, known_id)

    def _task_id_of(self, data: bytes) -> str:
        try:
            return self.hub.codec.decode(data).id
        except InvalidMessage:
            return "<undecodable>"
