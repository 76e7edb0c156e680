"""``huey.consumer_options``."""

from ._names import resolver

TABLE = {
    "ConsumerConfig": "django_tasks_q.consumer:ConsumerOptions",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
