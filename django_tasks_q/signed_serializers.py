"""huey's ``Serializer`` and ``SignedSerializer``, with huey's signatures and this project's safety.

The public import path of :mod:`django_tasks_q.messages.huey_serializers`, where they are described:
``from huey.serializer import Serializer, SignedSerializer`` becomes
``from django_tasks_q.signed_serializers import Serializer, SignedSerializer``.
"""

from .messages.huey_serializers import DEFAULT_MAX_SIZE, Serializer, SignedSerializer

__all__ = ["DEFAULT_MAX_SIZE", "Serializer", "SignedSerializer"]
