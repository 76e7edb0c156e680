"""``huey.consumer``."""

from ._names import resolver

TABLE = {
    "Consumer": "django_tasks_q.consumer:Consumer",
    "Scheduler": "django_tasks_q.consumer:Scheduler",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
