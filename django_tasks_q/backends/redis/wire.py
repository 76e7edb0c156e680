"""What a Redis storage sends to its scripts (ttls, timestamps, ranges) and how it reads what they return."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django_tasks_q.backends.base import DeadLetter, EmptyData, EmptyDataType, Reservation

__all__ = [
    "dead_letters",
    "optional",
    "priority",
    "reservation",
    "reservations",
    "stop_index",
    "text",
    "timestamp",
    "ttl_ms",
]


def ttl_ms(ttl: float | None) -> str:
    """A ttl in seconds as whole milliseconds (rounded up) for ``PX``, or ``""`` for none."""
    if ttl is None:
        return ""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return str(max(1, math.ceil(ttl * 1000)))


def timestamp(value: object, what: str) -> str:
    """``value`` (seconds since the epoch) written exactly, as the scripts store it; ``what`` names it in errors."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds since the epoch, not {value!r}")
    return repr(float(value))


def stop_index(limit: int | None) -> int | None:
    """The inclusive ``ZRANGE`` stop index for ``limit`` items, or ``None`` when nothing is wanted."""
    if limit is None:
        return -1
    if limit <= 0:
        return None
    return limit - 1


def text(value: bytes | str) -> str:
    """A reply as text (names, ids, reasons are UTF-8)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def priority(value: bytes | str | None) -> int:
    """A stored priority (empty: 0)."""
    return int(value) if value not in (None, b"", "") else 0


def optional(value: bytes | None) -> bytes | EmptyDataType:
    """A value read with ``GET``: ``EmptyData`` when there was none."""
    return EmptyData if value is None else bytes(value)


def reservation(row: Any, token: str, now: float, deadline: float, peeked: bool) -> Reservation | None:
    """The reservation a claim returned (``id, data, claims, priority, peeked values``), or ``None``."""
    if not row:
        return None
    message_id, data, claims, prio, values = row
    return Reservation(
        message_id=text(message_id),
        data=bytes(data),
        token=token,
        attempt=int(claims),
        deadline=deadline,
        reserved_at=now,
        priority=priority(prio),
        peeked=tuple(optional(value) for value in values) if peeked else None,
    )


def reservations(flat: Sequence[Any], width: int) -> list[tuple[Reservation, Any]]:
    """Reservations listed ``width`` fields each (id, data, token, claims, deadline, reserved_at, priority, then
    whatever else), each with its eighth field (``None`` when there are seven)."""
    return [
        (
            Reservation(
                message_id=text(flat[i]),
                data=bytes(flat[i + 1]),
                token=text(flat[i + 2]),
                attempt=int(flat[i + 3]),
                deadline=float(flat[i + 4]),
                reserved_at=float(flat[i + 5]),
                priority=priority(flat[i + 6]),
            ),
            flat[i + 7] if width > 7 else None,
        )
        for i in range(0, len(flat), width)
    ]


def dead_letters(flat: Sequence[Any]) -> list[DeadLetter]:
    """Dead letters listed 7 fields each: id, data, reason, detail, attempts, failed_at, priority ('': unknown)."""
    return [
        DeadLetter(
            id=text(flat[i]),
            data=bytes(flat[i + 1]),
            reason=text(flat[i + 2]),
            detail=text(flat[i + 3]),
            attempts=int(flat[i + 4]),
            failed_at=float(flat[i + 5]),
            priority=None if flat[i + 6] in (b"", "") else int(flat[i + 6]),
        )
        for i in range(0, len(flat), 7)
    ]
