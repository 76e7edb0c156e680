"""``huey.exceptions``."""

from ._names import resolver

TABLE = {
    name: f"django_tasks_q.exceptions:{name}"
    for name in (
        "HueyException",
        "ConfigurationError",
        "TaskLockedException",
        "CancelExecution",
        "RetryTask",
        "TaskException",
        "TaskTimeout",
        "ResultTimeout",
        "RateLimitExceeded",
    )
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
