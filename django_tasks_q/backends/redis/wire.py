"""What a Redis storage sends to its scripts (ttls, timestamps, ranges) and how it reads what they return."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
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


def _optional_int(value: bytes | str) -> int | None:
    return None if value in (b"", "") else int(value)


_Fields = tuple[tuple[str, Callable[[Any], Any]], ...]
"""The fields of a record a script lists flat: each one's name and how to read it."""

_RESERVATION_FIELDS: _Fields = (
    ("message_id", text),
    ("data", bytes),
    ("token", text),
    ("attempt", int),
    ("deadline", float),
    ("reserved_at", float),
    ("priority", priority),
)
_DEAD_LETTER_FIELDS: _Fields = (
    ("id", text),
    ("data", bytes),
    ("reason", text),
    ("detail", text),
    ("attempts", int),
    ("failed_at", float),
    ("priority", _optional_int),
)


def _records(flat: Sequence[Any], width: int, fields: _Fields) -> Iterator[tuple[dict[str, Any], Sequence[Any]]]:
    """Split a flat reply into rows of ``width`` fields: the named ``fields`` first, converted, then the rest."""
    count = len(fields)
    for i in range(0, len(flat), width):
        named = {name: convert(flat[i + n]) for n, (name, convert) in enumerate(fields)}
        yield named, flat[i + count : i + width]


def reservations(flat: Sequence[Any], width: int) -> list[tuple[Reservation, Sequence[Any]]]:
    """Reservations listed ``width`` fields each (id, data, token, claims, deadline, reserved_at, priority, then
    whatever else), each with its fields past the seventh."""
    return [(Reservation(**named), rest) for named, rest in _records(flat, width, _RESERVATION_FIELDS)]


def dead_letters(flat: Sequence[Any]) -> list[DeadLetter]:
    """Dead letters listed 7 fields each: id, data, reason, detail, attempts, failed_at, priority ('': unknown)."""
    return [DeadLetter(**named) for named, _ in _records(flat, 7, _DEAD_LETTER_FIELDS)]
