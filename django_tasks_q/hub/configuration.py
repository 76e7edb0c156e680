"""Checks of a hub's options."""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigurationError


def check_options(
    name: str, signing: Any, result_ttl: float | None, lease: float, max_attempts: int, max_reclaims: int
) -> None:
    """Raise ConfigurationError, naming the queue, for an option no queue can run with."""
    if signing is not None and not isinstance(signing, (bool, bytes, str)):
        raise ConfigurationError(
            f"queue {name!r}: signing must be None, True, False or a key (bytes or str), got {signing!r}"
        )
    if result_ttl is not None and result_ttl <= 0:
        raise ConfigurationError(f"queue {name!r}: result_ttl must be > 0 seconds, got {result_ttl!r}")
    if lease <= 0:
        raise ConfigurationError(f"queue {name!r}: lease must be > 0 seconds, got {lease!r}")
    for option, value in (("max_attempts", max_attempts), ("max_reclaims", max_reclaims)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"queue {name!r}: {option} must be an int >= 1, got {value!r}")
