"""``huey.constants``."""

from ._names import resolver

TABLE = {
    "EmptyData": "django_tasks_q.backends.base:EmptyData",
    "WORKER_THREAD": "django_tasks_q.consumer:WORKER_THREAD",
    "WORKER_PROCESS": "django_tasks_q.consumer:WORKER_PROCESS",
    "WORKER_TYPES": "django_tasks_q.consumer:WORKER_TYPES",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
