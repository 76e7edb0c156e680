"""The reliable-delivery extension of the storage contract and the dead-letter methods.

:class:`~django_tasks_q.backends.base.BaseStorage` inherits them from :class:`DeliveryContract`: the defaults
here are the at-most-once fallback built from huey's seed list (see "At-most-once fallback" in
:mod:`django_tasks_q.backends.base`); a storage that declares the feature ``reliable`` overrides them with atomic
versions. The dead-letter methods have no default (the feature ``dead_letters``; see
:mod:`~django_tasks_q.backends.features`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .records import DeadLetter, Reclaimed, Reservation, ResultWrite


class DeliveryContract:
    """Reserve, acknowledge, renew, release, bury and reclaim messages; keep dead letters.

    The part of the contract a storage adds on top of huey's seed list so that a task survives the death of
    its worker. Every method here is documented as the contract; the defaults are what a storage that
    implements only the seed list gets.
    """

    if TYPE_CHECKING:
        # The seed-list methods the defaults are built from (declared by BaseStorage).
        def dequeue(self) -> bytes | None: ...
        def enqueue(self, data: bytes, priority: int | None = None) -> None: ...
        def read_schedule(self, timestamp: float) -> list[bytes]: ...
        def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None: ...

    def _not_implemented(self, method_name: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} does not implement {method_name}(); "
            f"see django_tasks_q.backends.base.BaseStorage.{method_name} for what it must do"
        )

    def reserve(self, lease: float) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds and return the reservation, or ``None``.

        Native implementations, atomically: take the next message in dequeue order, move it to in-flight with
        ``deadline = now + lease``, a fresh token, ``attempt`` = previous claims + 1, and record ``reserved_at``.
        A message is reserved by exactly one caller; there is no moment at which it exists only in the caller's
        memory. Blocking storages may wait a short, bounded time, as ``dequeue`` does.

        Default (at most once): ``dequeue()`` and wrap the bytes in a reservation with ``message_id=""``,
        ``token=""``, ``attempt=1`` and ``priority=None``; nothing is kept in flight.
        """
        data = self.dequeue()
        if data is None:
            return None
        now = time.time()
        return Reservation(
            message_id="",
            data=data,
            token="",
            attempt=1,
            deadline=now + lease,
            reserved_at=now,
            priority=None,
        )

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a sign that a message may have become ready; return whether it came.

        For storages whose ``reserve`` does not wait (``blocking = False``): an idle consumer worker calls this
        between empty ``reserve`` calls instead of sleeping, so that it starts a new task within milliseconds
        without polling the store hard. Returns ``True`` as soon as the store may have changed (wake-ups may be
        spurious: the caller simply looks again) or ``wake`` is set, ``False`` after ``timeout``. A storage that
        overrides it should make an idle wait cost next to nothing (see :mod:`django_tasks_q.backends.watch`)
        and declare the feature ``wait_for_messages``: the hub calls it only then.

        Default: wait on ``wake`` (or sleep) for ``timeout``; the consumer then backs off as without it.
        """
        if wake is not None:
            return wake.wait(timeout)
        time.sleep(timeout)
        return False

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Acknowledge a finished message: delete it from in-flight and optionally write its result.

        Native implementations, in one atomic step: if the message is in flight under ``reservation.token``,
        delete it and, when ``result = (key, value, ttl)`` is given, store it as ``put_data(key, value,
        is_result=True, ttl=ttl)`` would; return ``True``. Otherwise (stale token: the lease was reclaimed,
        or the message was already acked) change nothing, write no result and return ``False``; the caller
        logs a lost lease.

        Default (at most once): the message is already gone; write the result if given and return ``True``.
        """
        if result is not None:
            key, value, ttl = result
            self.put_data(key, value, is_result=True, ttl=ttl)
        return True

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        """``ack(reservation, result)``, then claim the next ready message for ``lease`` seconds without waiting.

        Returns ``(acked, next)``: ``acked`` is what ``ack`` returns, ``next`` the new reservation or ``None``
        when no message is ready now (native versions do not wait for one, even on a blocking storage: the
        caller then calls ``reserve``). The claim is made whether or not the acknowledgement succeeded. A worker
        finishing one message and taking the next pays one round trip (one transaction) instead of two;
        storages that can do both in one step do, each half keeping its own guarantees. Default: ``ack`` then
        ``reserve`` (which may wait, as ``reserve`` does).
        """
        return self.ack(reservation, result), self.reserve(lease)

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Extend a lease: set its deadline to ``now + lease`` if the token still matches; return whether it did.

        ``False`` (nothing changed) when the message is no longer in flight under this token. Default: ``True``.
        """
        return True

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Give a reserved message back to the queue now (a worker shutting down).

        Native implementations, atomically and only if the token matches: move the message from in-flight back
        to the ready queue *in its original place* (ahead of messages enqueued after it within its priority);
        unless ``count_attempt``, lower its claim count by one, so the next reservation sees the same
        ``attempt`` number (the task never started). With ``count_attempt`` (a task that started but could not
        finish before shutdown) the claim stays counted, so a task that keeps being interrupted still reaches
        the attempt limit. Return ``True``. Stale token: change nothing, return ``False``.

        Default (at most once): ``enqueue(data, priority)`` again, at the back of the queue; ``True``.
        """
        self.enqueue(reservation.data, reservation.priority)
        return True

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Move a reserved message to the dead letters (it must never run, e.g. a bad signature).

        Native implementations, atomically and only if the token matches: delete it from in-flight and add a
        dead letter with ``reason``, ``detail``, ``attempts = reservation.attempt``, the message's priority and
        ``failed_at = now``; return ``True``. Stale token: change nothing, return ``False``.

        Default: ``add_dead_letter(...)`` (the message is already out of the queue) and ``True``; storages
        without dead letters raise ``NotImplementedError`` from there (the hub calls it only on a storage that
        declares the feature ``dead_letters``).
        """
        self.add_dead_letter(
            reservation.data, reason, detail, attempts=reservation.attempt, priority=reservation.priority
        )
        return True

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim every reservation whose ``deadline <= now``; return what was done, earliest deadline first.

        Each one, atomically: if its claim count is ``>= max_attempts`` (``None``: no cap), it becomes a dead
        letter with reason ``"max_attempts"`` and ``attempts`` = that count; otherwise it goes back to the
        ready queue in its original place (as ``release`` does) *keeping* its claim count, so the next
        reservation's ``attempt`` is one higher. Either way the old token is stale from then on. Safe to run
        from several consumers at once: each expired reservation is reclaimed by exactly one caller.

        A reservation whose deadline lies more than ``progress_span`` seconds after its ``reserved_at`` was
        renewed after its task had run for a while, so its worker vanished mid-task (killed, out of memory,
        pre-empted) rather than crashing at once: it is capped by ``max_reclaims`` instead (reason
        ``"max_reclaims"``). :func:`expired_verdict` decides; the returned ``Reclaimed.reason`` says which cap
        applied. With either of the two ``None``, every reservation is capped by ``max_attempts``. The hub
        passes the two only to a storage that declares the feature ``reap_by_progress``.

        Default: ``[]`` (nothing is ever in flight).
        """
        return []

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Return up to ``limit`` current reservations (all when ``None``), earliest deadline first.

        Each as the :class:`Reservation` its holder has (current token, attempt and deadline). Read-only.
        Default: ``[]``.
        """
        return []

    def in_flight_size(self) -> int:
        """Return how many messages are reserved. The default counts ``in_flight_items()``."""
        return len(self.in_flight_items())

    def enqueue_due(self, timestamp: float) -> int:
        """Move every scheduled item whose time is ``<= timestamp`` to the ready queue; return how many.

        Native implementations, atomically: items keep the priority given to ``add_to_schedule`` and enter the
        queue earliest first; no item is lost or moved twice when several schedulers run at once.

        Default: ``read_schedule(timestamp)`` then ``enqueue(data)`` for each. This loses the remembered
        priority (items enter at priority 0) and an item is lost if the process dies between the two steps.
        """
        items = self.read_schedule(timestamp)
        for data in items:
            self.enqueue(data)
        return len(items)

    # ------------------------------------------------------------------ dead letters (no defaults)

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Store ``data`` as a dead letter with ``failed_at = now``; return its new, unique id.

        ``reason``: a short code (``"bad_signature"`` ...); ``detail``: free text; ``attempts``: how many times
        it had been claimed; ``priority``: used if it is requeued. No default (the feature ``dead_letters``).
        """
        raise self._not_implemented("add_dead_letter")

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters (all when ``None``), oldest first. Read-only. No default."""
        raise self._not_implemented("dead_letters")

    def dead_letter_count(self) -> int:
        """Return how many dead letters there are. The default counts ``dead_letters()``."""
        return len(self.dead_letters())

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter back to the ready queue; return ``False`` if there is no such id.

        Atomically: it leaves the dead letters and enters the queue at the back of its priority with its claim
        count reset to 0 (the next reservation is attempt 1). No default.
        """
        raise self._not_implemented("requeue_dead_letter")

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters and return how many were deleted.

        ``ids`` given: those ids (unknown ones ignored). ``older_than`` given: those with ``failed_at <
        older_than`` (epoch seconds). Both given: those of the ids that are also older. Neither: all. No
        default.
        """
        raise self._not_implemented("purge_dead_letters")
