"""How one queue is consumed: :class:`ConsumerOptions`, the ``CONSUMER`` dict of a queue's settings.

It imports nothing of the consumer or of the settings, so that reading settings (a djhuey ``HUEY`` setting's
``consumer`` keys among them) and the system checks can validate consumer options without loading a consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError

WORKER_TYPES = ("thread", "process")


@dataclass
class ConsumerOptions:
    """How one queue is consumed (huey's consumer options, plus shutdown and recycling)."""

    workers: int = 1
    worker_type: str = "thread"
    threads: int = 1
    """Worker threads inside each worker process (``worker_type="process"`` only)."""
    periodic: bool = True
    initial_delay: float = 0.1
    backoff: float = 1.15
    max_delay: float = 1.0
    scheduler_interval: float = 1.0
    check_worker_health: bool = True
    health_check_interval: float = 10.0
    max_tasks: int | None = None
    shutdown_timeout: float = 30.0
    renew_interval: float | None = None
    """Seconds between lease renewals of running tasks; ``None``: a quarter of the queue's lease."""

    def __post_init__(self) -> None:
        def positive(name: str, integer: bool = False) -> None:
            value = getattr(self, name)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                kind = "an int" if integer else "a number"
                raise ConfigurationError(f"consumer option {name} must be {kind} > 0, got {value!r}")

        positive("workers", integer=True)
        positive("threads", integer=True)
        if self.threads > 1 and self.worker_type != "process":
            raise ConfigurationError(
                "consumer option threads (threads per worker process) needs worker_type='process'; "
                "for thread workers, raise workers instead"
            )
        if self.worker_type not in WORKER_TYPES:
            raise ConfigurationError(
                f"consumer option worker_type must be one of {WORKER_TYPES}, got {self.worker_type!r}"
            )
        for name in ("initial_delay", "max_delay", "scheduler_interval", "health_check_interval", "shutdown_timeout"):
            positive(name)
        if isinstance(self.backoff, bool) or not isinstance(self.backoff, (int, float)) or self.backoff < 1:
            raise ConfigurationError(f"consumer option backoff must be a number >= 1, got {self.backoff!r}")
        if self.max_tasks is not None:
            positive("max_tasks", integer=True)
        if self.renew_interval is not None:
            positive("renew_interval")

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str) -> ConsumerOptions:
        """Build from a ``CONSUMER`` settings dict; unknown keys are a ConfigurationError naming ``where``."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ConfigurationError(f"{where}: unknown consumer option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
