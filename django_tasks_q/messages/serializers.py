"""What a serializer is to the message codec, and the opt-in pickle serializer.

A serializer turns task arguments, results and message envelopes into bytes and back. The default,
:class:`~django_tasks_q.messages.json_serializer.JSONSerializer`, is safe to load from any source.
:class:`PickleSerializer` is opt-in: pickle runs code while loading, so the message codec only loads pickle
bytes whose HMAC signature verified (see :mod:`django_tasks_q.messages.codec`).
"""

from __future__ import annotations

import abc
import pickle
from typing import Any, Protocol, runtime_checkable

from ..exceptions import MessageDecodeError, SerializationError

__all__ = ["BaseSerializer", "PickleSerializer", "SerializerLike"]


@runtime_checkable
class SerializerLike(Protocol):
    """What the message codec needs from a serializer: ``dumps(obj) -> bytes`` and ``loads(bytes)``."""

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj`` as bytes."""
        ...

    def loads(self, data: bytes) -> Any:
        """Return the value that ``dumps`` turned into ``data``."""
        ...


class BaseSerializer(abc.ABC):
    """Base class of the serializers that ship with django-tasks-q.

    Subclasses implement ``dumps(obj, *, where="value")`` and ``loads(data)``. ``where`` names the value
    in error messages (``"result"``, or ``""`` for a message envelope, whose top-level keys then read as
    bare names: ``args[0]``, ``kwargs['x']``).

    ``safe_without_signing`` says whether bytes from an untrusted source may be loaded: true for JSON,
    false for pickle. A serializer object that does not derive from this class is treated as unsafe.
    """

    name: str = ""
    safe_without_signing: bool = False

    @abc.abstractmethod
    def dumps(self, obj: Any, *, where: str = "value") -> bytes:
        """Return ``obj`` as bytes; raise SerializationError naming ``where`` when it cannot be."""

    @abc.abstractmethod
    def loads(self, data: bytes) -> Any:
        """Return the value encoded in ``data``; raise MessageDecodeError when it cannot be decoded."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"



class PickleSerializer(BaseSerializer):
    """Opt-in pickle serializer, highest protocol.

    Loading pickle runs code named in the bytes, so the message codec refuses to build a pickle codec
    without a signing key and only calls :meth:`loads` on frames whose signature verified.
    """

    name = "pickle"
    safe_without_signing = False

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        """Use pickle ``protocol`` (the highest available by default)."""
        self.protocol = protocol

    def dumps(self, obj: Any, *, where: str = "value") -> bytes:
        """Return ``obj`` pickled; raise SerializationError naming ``where`` when it cannot be pickled."""
        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except RecursionError:
            raise SerializationError(
                f"{where or 'value'}: value is nested too deeply to pickle", field=where or None
            ) from None
        except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError ...
            raise SerializationError(
                f"{where or 'value'}: cannot be pickled: {exc}", field=where or None
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data``. Only ever call this on bytes whose signature verified."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise MessageDecodeError(f"body cannot be unpickled: {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"PickleSerializer(protocol={self.protocol})"
