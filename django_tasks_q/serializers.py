"""Serializers: turn task arguments, results and message envelopes into bytes and back.

The public import path of the serializers (``django_tasks_q.serializers.BaseSerializer`` and the rest); they
live in :mod:`django_tasks_q.messages`:

* :class:`JSONSerializer` (the default): tagged JSON that gives back each value with its type, exceptions
  included (see :mod:`django_tasks_q.messages.json_serializer`);
* :class:`PickleSerializer`, opt-in: the message codec only loads pickle bytes whose HMAC signature verified;
* :class:`BaseSerializer`, the base of a serializer of your own (``safe_without_signing``), and
  :class:`SerializerLike`, what the codec needs from any serializer object;
* :func:`get_serializer` turns a setting value (``"json"``, ``"pickle"`` or an object with ``dumps`` and
  ``loads``) into a serializer; :func:`check_roundtrip`, :func:`encode_exception` and
  :func:`decode_exception` are the JSON form's helpers.
"""

from .messages.codec import get_serializer
from .messages.json_serializer import JSONSerializer, check_roundtrip, decode_exception, encode_exception
from .messages.json_tags import TAG_KEY
from .messages.serializers import BaseSerializer, PickleSerializer, SerializerLike

__all__ = [
    "TAG_KEY",
    "BaseSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "SerializerLike",
    "check_roundtrip",
    "decode_exception",
    "encode_exception",
    "get_serializer",
]
