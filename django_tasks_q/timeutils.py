"""Time helpers: the hub compares and stores aware UTC datetimes (epoch seconds in storages) and shows datetimes
in its own convention.

A hub's convention is how the datetimes users see (``task.eta``, ``task.expires_resolved``, ``task.enqueued_at``)
look: aware UTC, Django's convention with ``USE_TZ``, or naive as in huey, in UTC (``utc=True``) or in the
machine's local time. Everything entering the hub goes through :func:`to_utc`; everything it shows goes
through :func:`present`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable

from .exceptions import InvalidEta

UTC = dt.UTC

TimeConversion = Callable[[dt.datetime], dt.datetime]
"""A function that turns a datetime into another convention (a hub's ``as_utc`` or ``present``)."""


def now_utc() -> dt.datetime:
    """The current time as an aware UTC datetime."""
    return dt.datetime.now(UTC)


def to_utc(value: dt.datetime, *, naive_is_utc: bool = True) -> dt.datetime:
    """Return ``value`` as an aware UTC datetime (for comparing and storing).

    A naive value is taken as UTC when ``naive_is_utc`` (the queue's ``utc=True``),
    otherwise as the machine's local time.
    """
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC) if naive_is_utc else value.astimezone()
    return value.astimezone(UTC)


def present(value: dt.datetime, *, aware: bool, naive_is_utc: bool = True) -> dt.datetime:
    """Return the moment ``value`` in a hub's convention (the inverse of :func:`to_utc`).

    ``aware``: an aware UTC datetime. Otherwise a naive datetime, in UTC when ``naive_is_utc``, else in the
    machine's local time. A naive ``value`` is first read as ``naive_is_utc`` says.
    """
    moment = to_utc(value, naive_is_utc=naive_is_utc)
    if aware:
        return moment
    if naive_is_utc:
        return moment.replace(tzinfo=None)
    return moment.astimezone().replace(tzinfo=None)


def convert(conversion: TimeConversion, value: dt.datetime | None) -> dt.datetime | None:
    """``conversion(value)``, or None for None (a call's optional datetimes)."""
    return None if value is None else conversion(value)


def resolve_eta(
    eta: dt.datetime | None, delay: float | dt.timedelta | None, *, naive_is_utc: bool = True
) -> dt.datetime | None:
    """Turn an ``eta`` or a ``delay`` (seconds or timedelta) into an aware UTC datetime.

    Raises :class:`InvalidEta` naming the argument when both are given or when
    either is of the wrong kind (not a datetime, a non-finite delay). A negative delay is an eta in the past,
    due at once, as a past ``eta`` is (huey's tests schedule with ``delay=-1`` to mean "now").
    """
    if eta is not None and delay is not None:
        raise InvalidEta("give either eta or delay, not both", field="eta")
    if delay is not None:
        return _from_now(delay, "delay", allow_negative=True)
    if eta is None:
        return None
    if not isinstance(eta, dt.datetime):
        raise InvalidEta(f"eta must be a datetime, got {type(eta).__name__}: {eta!r}", field="eta")
    return _checked_utc(eta, "eta", naive_is_utc)


def resolve_expires(
    expires: dt.datetime | dt.timedelta | float | None, *, naive_is_utc: bool = True
) -> dt.datetime | None:
    """Turn ``expires`` (seconds from now, a timedelta or a datetime) into an aware UTC datetime."""
    if expires is None:
        return None
    if isinstance(expires, dt.datetime):
        return _checked_utc(expires, "expires", naive_is_utc)
    return _from_now(expires, "expires")


def _from_now(value: object, field: str, allow_negative: bool = False) -> dt.datetime:
    seconds = _delay_seconds(value, field, allow_negative)
    try:
        return now_utc() + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidEta(f"{field} {value!r} reaches beyond the last representable date", field=field) from None


def _checked_utc(value: dt.datetime, field: str, naive_is_utc: bool) -> dt.datetime:
    try:
        return to_utc(value, naive_is_utc=naive_is_utc)
    except OverflowError:
        raise InvalidEta(f"{field} {value!r} cannot be expressed in UTC: out of range", field=field) from None


def _delay_seconds(value: object, field: str, allow_negative: bool = False) -> float:
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidEta(
            f"{field} must be a number of seconds or a timedelta, got {type(value).__name__}: {value!r}",
            field=field,
        )
    if not math.isfinite(seconds) or (seconds < 0 and not allow_negative):
        wanted = "a finite duration" if allow_negative else "a finite, non-negative duration"
        raise InvalidEta(f"{field} must be {wanted}, got {value!r}", field=field)
    return seconds


def epoch(value: dt.datetime) -> float:
    """Epoch seconds of an aware datetime (what storages keep for schedule times)."""
    return value.timestamp()


def from_epoch(seconds: float) -> dt.datetime:
    """The aware UTC datetime of an epoch timestamp."""
    return dt.datetime.fromtimestamp(seconds, UTC)


def monotonic() -> float:
    """A monotonic clock reading, for durations."""
    return time.monotonic()
