"""huey's ``Serializer`` and ``SignedSerializer``, with huey's signatures and this project's safety.

A huey application builds serializers as ``Serializer(compression=True)`` or
``SignedSerializer(secret=..., salt=...)`` and calls ``serialize(value)`` / ``deserialize(data)``. The same
calls work here, with two differences that make them safe to point at bytes from a queue:

* the body is this project's tagged JSON
  (:class:`~django_tasks_q.messages.json_serializer.JSONSerializer`) by default, never pickle: loading pickle
  runs code named in the bytes. Pickle (``pickle_protocol=``) is available only on :class:`SignedSerializer`,
  whose signature is verified before anything is decompressed or unpickled;
* :class:`SignedSerializer` signs with HMAC-SHA256 under a key derived from ``secret`` and ``salt`` (huey used
  SHA-1), and checks the signature *before* decompressing (huey decompressed first).

Compression is gzip, or zlib with ``use_zlib=True``, as in huey. ``deserialize`` recognises compressed bodies
by their first byte, so a serializer reads what another one wrote whatever their ``compression`` settings
(a JSON text never starts with those bytes); decompression stops at ``max_size`` bytes of output.

Both classes are also serializers of the hub (``dumps`` / ``loads``), so ``RedisHuey(serializer=Serializer(
compression=True))`` works. The hub's own ``compression`` option is the better choice for compression: its
frames say whether they are compressed.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from typing import Any

from ..exceptions import ConfigurationError, MessageDecodeError
from .json_serializer import JSONSerializer
from .serializers import BaseSerializer, PickleSerializer

__all__ = ["DEFAULT_MAX_SIZE", "Serializer", "SignedSerializer"]

#: Largest decompressed body ``deserialize`` accepts by default: 64 MiB.
DEFAULT_MAX_SIZE = 64 * 1024 * 1024

_GZIP_MAGIC = 0x1F
_ZLIB_MAGIC = 0x78
_SIGNATURE_SIZE = hashlib.sha256().digest_size


class Serializer(BaseSerializer):
    """huey's ``Serializer(compression=False, compression_level=6, use_zlib=False, pickle_protocol=None)``.

    ``serialize(value)`` returns the value as tagged JSON, gzip- or zlib-compressed when ``compression`` is
    true; ``deserialize(data)`` reverses it. ``pickle_protocol`` is refused here (an unsigned pickle is code
    anyone who can write to the queue may run): use :class:`SignedSerializer` for pickle.
    """

    name = "json"
    safe_without_signing = True

    def __init__(
        self,
        compression: bool = False,
        compression_level: int = 6,
        use_zlib: bool = False,
        pickle_protocol: int | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        """Check the options; a wrong one is a :class:`ConfigurationError` naming it."""
        where = type(self).__name__
        if type(compression_level) is not int or not 0 <= compression_level <= 9:
            raise ConfigurationError(f"{where}: compression_level must be an int 0-9, got {compression_level!r}")
        if type(max_size) is not int or max_size < 1:
            raise ConfigurationError(f"{where}: max_size must be a positive int (bytes), got {max_size!r}")
        if pickle_protocol is not None:
            self._check_pickle(pickle_protocol)
        self.comp = bool(compression)
        self.comp_level = compression_level
        self.use_zlib = bool(use_zlib)
        self.pickle_protocol = pickle_protocol
        self.max_size = max_size
        self._body: BaseSerializer = (
            JSONSerializer() if pickle_protocol is None else PickleSerializer(protocol=pickle_protocol)
        )
        self.name = self._body.name

    def _check_pickle(self, protocol: object) -> None:
        raise ConfigurationError(
            f"{type(self).__name__}: pickle_protocol={protocol!r} would load unsigned pickle, which runs code "
            "named in the bytes; use SignedSerializer(secret=..., pickle_protocol=...) for pickle, or keep JSON"
        )

    # ---- huey's API

    def serialize(self, data: Any) -> bytes:
        """Return ``data`` as bytes: the body, compressed when ``compression`` is on."""
        return self._pack(self._body.dumps(data, where="value"))

    def deserialize(self, data: bytes) -> Any:
        """Return the value in ``data``; raise :class:`MessageDecodeError` saying why it cannot be read."""
        return self._body.loads(self._inflate(self._check_bytes(data)))

    # ---- the hub's serializer API

    def dumps(self, obj: Any, *, where: str = "value") -> bytes:
        """The hub's name for :meth:`serialize`; ``where`` names the value in a :class:`SerializationError`."""
        return self._pack(self._body.dumps(obj, where=where))

    def loads(self, data: bytes) -> Any:
        """The hub's name for :meth:`deserialize`."""
        return self.deserialize(data)

    # ---- helpers

    def _pack(self, body: bytes) -> bytes:
        if not self.comp:
            return body
        if self.use_zlib:
            return zlib.compress(body, self.comp_level)
        packer = zlib.compressobj(self.comp_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
        return packer.compress(body) + packer.flush()

    def _inflate(self, data: bytes) -> bytes:
        if not data or data[0] not in (_GZIP_MAGIC, _ZLIB_MAGIC):
            return data
        unpacker = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib, told by the header
        try:
            body = unpacker.decompress(data, self.max_size)
        except zlib.error as exc:
            raise MessageDecodeError(f"body cannot be decompressed: {exc}") from None
        if unpacker.unconsumed_tail:
            raise MessageDecodeError(f"decompressed body is over the limit of {self.max_size} bytes")
        return body

    @staticmethod
    def _check_bytes(data: object) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MessageDecodeError(f"expected bytes to deserialize, got {type(data).__name__}")
        return bytes(data)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(compression={self.comp}, compression_level={self.comp_level}, "
            f"use_zlib={self.use_zlib}, pickle_protocol={self.pickle_protocol})"
        )


class SignedSerializer(Serializer):
    """huey's ``SignedSerializer(secret=None, salt="huey", **kwargs)``: a :class:`Serializer` whose output
    carries an HMAC-SHA256 signature, checked before anything is decompressed or decoded.

    ``secret`` and ``salt`` (``str`` or ``bytes``) are required, as in huey (:class:`ConfigurationError`
    otherwise). Here ``pickle_protocol=`` is allowed: a body is unpickled only once its signature verified.
    A tampered or foreign body raises :class:`MessageDecodeError`.
    """

    def __init__(self, secret: str | bytes | None = None, salt: str | bytes = "huey", **kwargs: Any) -> None:
        """Derive the signing key from ``secret`` and ``salt``; ``kwargs`` are :class:`Serializer`'s."""
        where = type(self).__name__
        if not secret or not salt:
            raise ConfigurationError(f"{where}: secret and salt are both required")
        super().__init__(**kwargs)
        secret_bytes, salt_bytes = _as_bytes(secret, "secret", where), _as_bytes(salt, "salt", where)
        self._key = hmac.new(secret_bytes, salt_bytes, hashlib.sha256).digest()

    def _check_pickle(self, protocol: object) -> None:
        if type(protocol) is not int or not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ConfigurationError(
                f"{type(self).__name__}: pickle_protocol must be an int 0-{pickle.HIGHEST_PROTOCOL}, "
                f"got {protocol!r}"
            )

    def _pack(self, body: bytes) -> bytes:
        packed = super()._pack(body)
        return packed + hmac.new(self._key, packed, hashlib.sha256).digest()

    def deserialize(self, data: bytes) -> Any:
        """Verify the signature, then decompress and decode; raise :class:`MessageDecodeError` on a mismatch."""
        data = self._check_bytes(data)
        packed, signature = data[:-_SIGNATURE_SIZE], data[-_SIGNATURE_SIZE:]
        if len(data) < _SIGNATURE_SIZE or not hmac.compare_digest(
            hmac.new(self._key, packed, hashlib.sha256).digest(), signature
        ):
            raise MessageDecodeError("signature mismatch: the data was not written with this secret and salt")
        return self._body.loads(self._inflate(packed))


def _as_bytes(value: object, what: str, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise ConfigurationError(f"{where}: {what} must be a str or bytes, got {type(value).__name__}")
