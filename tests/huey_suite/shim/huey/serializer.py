"""``huey.serializer``."""

from ._names import resolver

TABLE = {
    "Serializer": "django_tasks_q.signed_serializers:Serializer",
    "SignedSerializer": "django_tasks_q.signed_serializers:SignedSerializer",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
