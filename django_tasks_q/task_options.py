"""The options a task and a call of it take, and their checks (shared by the decorators and the hub)."""

from __future__ import annotations

import math
from typing import Any

from .exceptions import ConfigurationError, InvalidOption, InvalidPriority

PRIORITY_MIN = -32768
PRIORITY_MAX = 32767

CALL_OPTIONS = (
    "eta", "delay", "retries", "retry_delay", "retry_backoff", "priority", "expires", "timeout", "unique_key"
)
"""Keywords a task call takes as options rather than arguments (unless the function declares them)."""


def validate_priority(priority: object, where: str) -> int | None:
    """Return ``priority`` when it is None or an int in range, else raise :class:`InvalidPriority`."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriority(f"{where}: priority must be an int, got {type(priority).__name__}: {priority!r}")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidPriority(
            f"{where}: priority {priority} is out of range [{PRIORITY_MIN}, {PRIORITY_MAX}]"
        )
    return priority


def _non_negative(value: object, option: str, where: str, *, integer: bool = False) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
        or not math.isfinite(value)
        or value < 0
    ):
        kind = "a non-negative int" if integer else "a non-negative number"
        raise InvalidOption(f"{where}: {option} must be {kind}, got {value!r}", field=option)
    return value


def validate_options(where: str, **options: Any) -> dict[str, Any]:
    """Check the numeric task options that were given; return them unchanged."""
    if options.get("retries") is not None:
        _non_negative(options["retries"], "retries", where, integer=True)
    if options.get("retry_delay") is not None:
        _non_negative(options["retry_delay"], "retry_delay", where)
    if options.get("retry_backoff") is not None:
        backoff = _non_negative(options["retry_backoff"], "retry_backoff", where)
        if backoff < 1:
            raise InvalidOption(f"{where}: retry_backoff must be >= 1, got {backoff!r}", field="retry_backoff")
    if options.get("timeout") is not None:
        _non_negative(options["timeout"], "timeout", where)  # 0, as None, means no time limit (as in huey)
    if "priority" in options:
        validate_priority(options["priority"], where)
    return options


def require_schedule(validate_datetime: object) -> None:
    """Raise :class:`ConfigurationError` unless ``periodic_task()`` was given a callable schedule."""
    if not callable(validate_datetime):
        raise ConfigurationError("periodic_task() needs a callable such as crontab(...) as its first argument")
