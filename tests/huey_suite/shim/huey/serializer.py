"""``huey.serializer``."""

from ._names import resolver

TABLE = {
    "Serializer": "django_tasks_q.serializers:Serializer",
    "SignedSerializer": "django_tasks_q.serializers:SignedSerializer",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
