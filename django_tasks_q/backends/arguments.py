"""Argument checks every storage applies the same way: priorities, bytes, keys, schedule times and expiry.

A custom storage may use them so that it accepts exactly what the built-in ones accept (huey's argument types
included) and refuses the rest with the same errors.
"""

from __future__ import annotations

import datetime
import math

__all__ = [
    "bounded_priority",
    "check_bytes",
    "check_key",
    "expiry_time",
    "is_live",
    "normalize_priority",
    "schedule_time",
]


def normalize_priority(priority: int | float | None) -> int:
    """Return ``priority`` as an ``int`` (``None`` → ``0``, a finite ``float`` truncated toward zero, as huey's
    storages do); raise ``TypeError`` for anything else (``bool``, ``str``, NaN, infinity)."""
    if priority is None:
        return 0
    if isinstance(priority, float) and math.isfinite(priority):
        return int(priority)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int or None, not {type(priority).__name__}")
    return priority


def bounded_priority(priority: int | None, bits: int, where: str) -> int:
    """Return :func:`normalize_priority` of ``priority``; raise ``ValueError`` when it does not fit a signed
    ``bits``-bit integer (``where`` names the column in the message)."""
    value = normalize_priority(priority)
    limit = 2 ** (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"priority {value} does not fit {where}")
    return value


def check_bytes(value: object, what: str) -> bytes:
    """Return ``value`` when it is ``bytes``; raise ``TypeError`` naming ``what`` otherwise."""
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


def check_key(key: object) -> str:
    """Return ``key`` as a ``str``: a ``str`` as it is, UTF-8 ``bytes`` (huey's key type) decoded, so that
    ``b"k"`` and ``"k"`` name the same value. Raise ``TypeError`` for anything else or for bytes that are not
    UTF-8."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError(f"a bytes key must be UTF-8 text, not {key!r}") from None
    raise TypeError(f"key must be a str or UTF-8 bytes, not {type(key).__name__}")


def schedule_time(timestamp: object) -> float:
    """Return a schedule time as epoch seconds (a ``float``).

    Accepts epoch seconds (``int`` or ``float``, as the hub passes them) and, for callers written for huey, a
    ``datetime``: an aware one at its own offset, a naive one as UTC (what huey's ``utc=True`` default
    produces). Raises ``TypeError`` for anything else, NaN included.
    """
    if isinstance(timestamp, datetime.datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            timestamp = timestamp.replace(tzinfo=datetime.UTC)
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or math.isnan(timestamp):
        raise TypeError(f"timestamp must be epoch seconds or a datetime, not {timestamp!r}")
    return float(timestamp)


def expiry_time(ttl: float | None, now: float) -> float | None:
    """When a value written at ``now`` (epoch seconds) with ``ttl`` seconds expires; ``None`` for never.

    Raises ``ValueError`` for a ttl that is not a positive number.
    """
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return now + ttl


def is_live(expires_at: float | None, now: float) -> bool:
    """Whether a value that expires at ``expires_at`` (``None``: never) is still there at ``now``."""
    return expires_at is None or expires_at > now
