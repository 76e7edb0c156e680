"""``huey.signals``: the signal names."""

from ._names import resolver

TABLE = {
    name: f"django_tasks_q.signals:{name}"
    for name in (
        "SIGNAL_CANCELED",
        "SIGNAL_COMPLETE",
        "SIGNAL_ERROR",
        "SIGNAL_EXECUTING",
        "SIGNAL_EXPIRED",
        "SIGNAL_LOCKED",
        "SIGNAL_RETRYING",
        "SIGNAL_REVOKED",
        "SIGNAL_SCHEDULED",
        "SIGNAL_INTERRUPTED",
        "SIGNAL_ENQUEUED",
        "SIGNAL_TIMEOUT",
        "SIGNAL_RATE_LIMITED",
    )
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
