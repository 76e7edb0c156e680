"""``huey.utils``."""

from ._names import resolver

TABLE = {
    name: f"django_tasks_q.utils:{name}"
    for name in ("utcnow", "normalize_time", "normalize_expire_time", "FileLock", "process_timeout")
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
