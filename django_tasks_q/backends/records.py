"""The values a storage hands the hub: reservations, dead letters, reclaims and the "no value" sentinel.

They are part of the storage contract (see :mod:`django_tasks_q.backends.base`, which exports them too), with
the small rules every storage applies the same way: fresh tokens, what the reaper does with an expired
reservation, and how a record that cannot be read is reported.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "UNREADABLE_RECORD",
    "DeadLetter",
    "EmptyData",
    "EmptyDataType",
    "Reclaimed",
    "Reservation",
    "ResultWrite",
    "expired_verdict",
    "log_unreadable_record",
    "made_progress",
    "new_token",
]

UNREADABLE_RECORD: Final = "unreadable_record"
"""The dead-letter reason of a stored record the storage could not read (see "Records a storage cannot read")."""

_unreadable_logger = logging.getLogger("django_tasks_q.backends")


def log_unreadable_record(storage_name: str, where: str, detail: str) -> None:
    """Log, once per record, that ``where`` (the record) of the queue ``storage_name`` could not be read and
    was moved to the dead letters with the reason :data:`UNREADABLE_RECORD`; ``detail`` says what was wrong."""
    _unreadable_logger.warning(
        "queue %r: %s cannot be read (%s); moved to the dead letters as %r",
        storage_name,
        where,
        detail,
        UNREADABLE_RECORD,
    )


class EmptyDataType(enum.Enum):
    """The type of :data:`EmptyData`; it has exactly one member, so it survives pickling and copying."""

    EMPTY = "EmptyData"

    def __repr__(self) -> str:
        return "EmptyData"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False


EmptyData: Final = EmptyDataType.EMPTY
"""The "no value" sentinel returned by ``peek_data``, ``pop_data`` and ``wait_result``.

Distinct from ``b""`` and ``None``; compare with ``is``.
"""

ResultWrite: TypeAlias = tuple[str, bytes, float | None]
"""``(key, value, ttl)``: a result that ``ack()`` writes atomically with the acknowledgement."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A message claimed by a worker under a lease (returned by ``reserve`` and ``in_flight_items``).

    A reservation is a plain value: it can be pickled, sent to another process and handed back to ``ack`` /
    ``renew`` / ``release`` / ``bury``; storages identify the message by ``message_id`` and check ``token``,
    never rely on object identity.
    """

    message_id: str
    """Identifies the stored message; the same on every redelivery of that message. ``""`` when the storage
    does not track deliveries (the at-most-once fallback)."""

    data: bytes
    """The message's bytes, exactly as enqueued."""

    token: str
    """Fencing token, fresh for each reservation (e.g. ``uuid4().hex``). ``""`` in the at-most-once fallback."""

    attempt: int
    """1 on the first delivery; rises by one at each claim (``release`` takes the claim back)."""

    deadline: float
    """Epoch seconds when the lease ends, unless renewed."""

    reserved_at: float
    """Epoch seconds when this reservation was made."""

    priority: int | None = None
    """The message's priority (``None`` enqueued as ``0``), or ``None`` when the storage does not know it."""

    peeked: tuple[bytes | EmptyDataType, ...] | None = None
    """The values of the keys asked for with ``peek=`` (``EmptyData`` for a missing one), read with the claim;
    ``None`` when none were asked for or the storage does not read them (see the storage feature ``peek_on_reserve``)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the system gave up on; kept for inspection, requeueing or purging."""

    id: str
    """Unique within the storage; pass it to ``requeue_dead_letter`` / ``purge_dead_letters``."""

    data: bytes
    """The message's bytes, unchanged (possibly not a valid message at all: that may be why it is here)."""

    reason: str
    """A short machine-readable code: ``"max_attempts"``, ``"bad_signature"``, ``"decode_error"`` ..."""

    detail: str
    """Free text for people: an error message or a traceback."""

    attempts: int
    """How many times the message had been claimed when it was given up on."""

    failed_at: float
    """Epoch seconds when it became a dead letter."""

    priority: int | None = None
    """The priority it had (used when it is requeued), or ``None`` when unknown."""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """One expired reservation handled by ``requeue_expired``."""

    reservation: Reservation
    """The reservation as it was when its lease ran out (its token is now stale)."""

    dead_lettered: bool
    """``True`` when it went to the dead letters, ``False`` when back to the queue."""

    reason: str = "max_attempts"
    """The dead letter's reason when ``dead_lettered``: ``"max_attempts"``, or ``"max_reclaims"`` for a
    reservation whose worker vanished while its task was running (see ``requeue_expired``)."""


def new_token() -> str:
    """Return a fresh, unguessable identifier (32 hex digits) for tokens and ids."""
    return uuid.uuid4().hex


def made_progress(deadline: float, reserved_at: float, progress_span: float | None) -> bool:
    """Whether a reservation was renewed after its task had been running for a while: its deadline lies more
    than ``progress_span`` seconds after ``reserved_at`` (``None``: progress is not told apart)."""
    return progress_span is not None and deadline - reserved_at > progress_span


def expired_verdict(
    claims: int,
    progressed: bool,
    max_attempts: int | None,
    max_reclaims: int | None,
) -> tuple[str, str] | None:
    """What ``requeue_expired`` does with one expired reservation: ``None`` (back to the queue) or the dead
    letter's ``(reason, detail)``.

    A reservation that made progress (see :func:`made_progress`) lost a worker that was running its task well
    (killed, out of memory, pre-empted): it is capped by ``max_reclaims``. One that did not — its worker
    vanished right after the claim, as a task that kills its worker makes it — is capped by ``max_attempts``.
    Either cap counts every claim of the message; ``None`` is no cap.
    """
    if progressed and max_reclaims is not None:
        if claims >= max_reclaims:
            return "max_reclaims", (
                f"lease expired after {claims} attempt(s), the last while its task was running (its worker "
                f"vanished: killed, out of memory, pre-empted); the limit for such reclaims is {max_reclaims}"
            )
        return None
    if max_attempts is not None and claims >= max_attempts:
        return "max_attempts", f"lease expired after {claims} attempt(s); the limit is {max_attempts}"
    return None
