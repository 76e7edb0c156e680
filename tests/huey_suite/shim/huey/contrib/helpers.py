"""``huey.contrib.helpers``."""

from .._names import resolver

TABLE = {"RedisSemaphore": "django_tasks_q.contrib.helpers:RedisSemaphore"}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
