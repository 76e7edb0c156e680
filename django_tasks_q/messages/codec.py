"""The frame codec: a :class:`~django_tasks_q.messages.envelope.Message` or a value to signed bytes and back.

Frame layout (all frames, messages and values alike)::

    offset  size  field
    0       3     magic  b"DTQ"
    3       1     frame format version (1)
    4       1     flags
                    bits 0-1  serializer: 0 json, 1 pickle, 2 custom (3 is reserved)
                    bit  2    body is zlib-compressed
                    bit  3    frame is signed
                    bit  4    payload kind: 0 a Message envelope, 1 a value (result, error ...)
                    bits 5-7  reserved, must be 0
    5       32    HMAC-SHA256 over bytes [0:5] + body   (present only when the signed bit is set)
    5 / 37  ...   body: the serialized (and possibly compressed) payload

The payload-kind bit is covered by the signature, so a signed result can never be replayed as a task
message.

:meth:`MessageCodec.decode` checks, in this order: the raw size; the magic and format version; the signature
(against the key and every fallback key, in constant time; a codec with a key refuses unsigned frames); the
flags (reserved bits, payload kind, serializer — pickle is loaded only by a pickle codec and only from a
verified frame); the decompression, capped at ``max_size`` bytes of output; the deserialization; and
:meth:`Message.from_dict <django_tasks_q.messages.envelope.Message.from_dict>`. Nothing in a payload is ever
imported or executed by the JSON path.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from ..exceptions import (
    BadSignature,
    ConfigurationError,
    MessageDecodeError,
    MessageTooLarge,
    SerializationError,
)
from .envelope import ENVELOPE_VALUES, Message, check_for_encoding
from .json_serializer import JSONSerializer
from .json_tags import TAG_KEY
from .serializers import BaseSerializer, PickleSerializer
from .signing import SIGNATURE_SIZE, check_key, sign, verify

__all__ = [
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_MAX_SIZE",
    "FLAG_COMPRESSED",
    "FLAG_SIGNED",
    "FLAG_VALUE",
    "FRAME_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "SERIALIZER_CUSTOM",
    "SERIALIZER_JSON",
    "SERIALIZER_PICKLE",
    "MessageCodec",
    "describe_frame",
    "get_serializer",
    "peek_raw",
]

#: Largest frame (and largest decompressed body) accepted by default: 1 MiB.
DEFAULT_MAX_SIZE = 1024 * 1024
#: Bodies at most this long are never compressed.
DEFAULT_COMPRESS_THRESHOLD = 1024

MAGIC = b"DTQ"
FRAME_VERSION = 1
HEADER_SIZE = len(MAGIC) + 2

SERIALIZER_JSON = 0
SERIALIZER_PICKLE = 1
SERIALIZER_CUSTOM = 2
SERIALIZER_MASK = 0b0000_0011
FLAG_COMPRESSED = 0b0000_0100
FLAG_SIGNED = 0b0000_1000
FLAG_VALUE = 0b0001_0000
RESERVED_MASK = 0b1110_0000

_SERIALIZER_NAMES = {SERIALIZER_JSON: "json", SERIALIZER_PICKLE: "pickle", SERIALIZER_CUSTOM: "custom"}
_JSON = JSONSerializer()
_TAG = json.dumps(TAG_KEY).encode()

_ENVELOPE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
"""One encoder for every envelope (``json.dumps`` with options builds a new one per call)."""


def get_serializer(spec: Any) -> Any:
    """Return a serializer for ``spec``: ``"json"``, ``"pickle"`` or an instance with ``dumps``/``loads``.

    Dotted paths are not accepted (a setting never names code to import for decoding). Anything else is a
    ConfigurationError that names the value.
    """
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "json":
            return JSONSerializer()
        if name == "pickle":
            return PickleSerializer()
        raise ConfigurationError(
            f"unknown serializer {spec!r}: use 'json', 'pickle' or an object with dumps() and loads()"
        )
    if isinstance(spec, type):
        raise ConfigurationError(f"serializer {spec.__qualname__} is a class; pass an instance of it")
    if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        return spec
    raise ConfigurationError(
        f"unknown serializer {spec!r}: use 'json', 'pickle' or an object with dumps() and loads()"
    )


def _serializer_kind(serializer: Any) -> int:
    if type(serializer) is JSONSerializer:
        return SERIALIZER_JSON
    if type(serializer) is PickleSerializer:
        return SERIALIZER_PICKLE
    return SERIALIZER_CUSTOM


class MessageCodec:
    """Encode :class:`Message` objects and arbitrary values to signed, size-checked frames, and back.

    ``serializer`` is ``"json"`` (default), ``"pickle"`` or a serializer object; a serializer that is not
    safe to load unsigned (pickle, and any object not derived from
    :class:`~django_tasks_q.messages.serializers.BaseSerializer` with ``safe_without_signing = True``)
    requires a ``signing_key``. ``compression`` is ``False``, ``True`` (zlib level 6) or a zlib level 1-9;
    bodies no longer than ``compress_threshold`` bytes are stored as they are. ``max_size`` bounds both the
    frame and the decompressed body.
    """

    def __init__(
        self,
        serializer: Any = "json",
        *,
        compression: bool | int = False,
        signing_key: bytes | None = None,
        fallback_keys: Sequence[bytes] = (),
        max_size: int = DEFAULT_MAX_SIZE,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
    ) -> None:
        """Validate the options; raise ConfigurationError naming the bad one."""
        self.serializer = get_serializer(serializer)
        self._kind = _serializer_kind(self.serializer)
        self._passes_where = isinstance(self.serializer, BaseSerializer)

        if compression is True:
            self.compression_level = 6
        elif compression is False or compression == 0:
            self.compression_level = 0
        elif type(compression) is int and 1 <= compression <= 9:
            self.compression_level = compression
        else:
            raise ConfigurationError(
                f"compression must be True, False or a zlib level 1-9, got {compression!r}"
            )

        self.signing_key = None if signing_key is None else check_key(signing_key, "signing_key")
        if isinstance(fallback_keys, str | bytes):
            raise ConfigurationError("fallback_keys must be a sequence of keys, not a single key")
        self.fallback_keys = tuple(check_key(k, "each fallback key") for k in fallback_keys)
        if self.fallback_keys and self.signing_key is None:
            raise ConfigurationError("fallback_keys given without a signing_key")

        if type(max_size) is not int or max_size < HEADER_SIZE + SIGNATURE_SIZE + 2:
            raise ConfigurationError(f"max_size must be an int of at least 64 bytes, got {max_size!r}")
        self.max_size = max_size
        if type(compress_threshold) is not int or compress_threshold < 0:
            raise ConfigurationError(
                f"compress_threshold must be a non-negative int, got {compress_threshold!r}"
            )
        self.compress_threshold = compress_threshold

        if self.signing_key is None and not getattr(self.serializer, "safe_without_signing", False):
            if self._kind == SERIALIZER_PICKLE:
                raise ConfigurationError(
                    "pickle requires signing: loading pickle runs code, so a pickle queue needs a signing key"
                )
            raise ConfigurationError(
                f"serializer {self.serializer!r} requires signing: it is not marked safe_without_signing, "
                "so a signing key is needed before its bytes are loaded"
            )

    @property
    def signed(self) -> bool:
        """Whether this codec signs frames and requires a valid signature on every frame it decodes."""
        return self.signing_key is not None

    def __repr__(self) -> str:
        return (
            f"MessageCodec(serializer={self.serializer!r}, compression={self.compression_level}, "
            f"signed={self.signed}, max_size={self.max_size})"
        )

    # ---- encoding ----

    def encode(self, message: Message) -> bytes:
        """Return ``message`` as a frame.

        Raises SerializationError (the message starts with the path of the bad value, e.g.
        ``args[1]['when']: ...``), InvalidEta for a naive or non-datetime eta/expires, and MessageTooLarge
        (``field == "payload"``) when the frame or the uncompressed body is over ``max_size``.
        """
        if not isinstance(message, Message):
            raise TypeError(f"encode() takes a Message, got {type(message).__name__}")
        plain = message.to_dict()
        plain_envelope = check_for_encoding(plain)
        body = self._dumps_envelope(plain) if plain_envelope and self._kind == SERIALIZER_JSON else None
        return self._frame(body if body is not None else self._dumps(plain, ""), value=False)

    def _dumps_envelope(self, plain: dict[str, Any]) -> bytes | None:
        """JSON of a plain envelope, walking only the caller's values; ``None`` lets the full walk decide."""
        if not (plain["id"].isascii() and plain["name"].isascii()):
            return None
        walked = dict(plain)
        try:
            for key in ENVELOPE_VALUES:
                if plain[key]:  # empty containers and None are plain JSON already
                    walked[key] = self.serializer.to_plain(plain[key], where=key)
            return _ENVELOPE_JSON.encode(walked).encode("utf-8")
        except (SerializationError, ValueError, TypeError, RecursionError):
            return None

    def encode_value(self, obj: Any, *, where: str = "value") -> bytes:
        """Return an arbitrary value (a result, an error record) as a frame of the value kind.

        ``where`` names the value in SerializationError messages (``"result"`` reads best for a task's return value).
        """
        return self._frame(self._dumps(obj, where), value=True)

    def _dumps(self, obj: Any, where: str) -> bytes:
        if self._passes_where:
            body = self.serializer.dumps(obj, where=where)
        else:
            try:
                body = self.serializer.dumps(obj)
            except SerializationError:
                raise
            except Exception as exc:
                raise SerializationError(
                    f"{where or 'message'}: cannot be serialized: {exc}", field=where or None
                ) from exc
        if not isinstance(body, bytes):
            raise SerializationError(
                f"{where or 'message'}: serializer returned {type(body).__name__}, not bytes",
                field=where or None,
            )
        return body

    def _frame(self, body: bytes, *, value: bool) -> bytes:
        if len(body) > self.max_size:
            raise MessageTooLarge(
                f"encoded {'value' if value else 'message'} body is {len(body)} bytes, "
                f"over the limit of {self.max_size} bytes",
                field="payload",
            )
        flags = self._kind | (FLAG_VALUE if value else 0)
        if self.compression_level and len(body) > self.compress_threshold:
            packed = zlib.compress(body, self.compression_level)
            if len(packed) < len(body):
                body = packed
                flags |= FLAG_COMPRESSED
        if self.signing_key is not None:
            flags |= FLAG_SIGNED
        header = MAGIC + bytes((FRAME_VERSION, flags))
        if self.signing_key is not None:
            data = header + sign(self.signing_key, header, body) + body
        else:
            data = header + body
        if len(data) > self.max_size:
            raise MessageTooLarge(
                f"encoded {'value' if value else 'message'} is {len(data)} bytes, "
                f"over the limit of {self.max_size} bytes",
                field="payload",
            )
        return data

    # ---- decoding ----

    def decode(self, data: bytes) -> Message:
        """Verify and decode a message frame; raise an InvalidMessage subclass saying why it was refused.

        MessageTooLarge (``reason == "too_large"``), BadSignature (``"bad_signature"``) or
        MessageDecodeError (``"decode_error"``); see the module docstring for the order of the checks.
        """
        return Message.from_dict(self._open(data, value=False))

    def decode_value(self, data: bytes) -> Any:
        """Verify and decode a value frame written by :meth:`encode_value`."""
        return self._open(data, value=True)

    def _open(self, data: Any, *, value: bool) -> Any:
        # 1. size, on the raw bytes, before anything else
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MessageDecodeError(f"expected bytes, got {type(data).__name__}")
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size > self.max_size:
            raise MessageTooLarge(f"message is {size} bytes, over the limit of {self.max_size} bytes")
        data = bytes(data)

        # 2. header
        if size < HEADER_SIZE:
            raise MessageDecodeError(
                f"truncated frame: {size} bytes, shorter than the {HEADER_SIZE}-byte header"
            )
        if data[:3] != MAGIC:
            raise MessageDecodeError(f"not a django-tasks-q frame (starts with '{peek_raw(data[:3])}')")
        if data[3] != FRAME_VERSION:
            raise MessageDecodeError(
                f"unknown frame version {data[3]} (this code reads version {FRAME_VERSION})"
            )
        flags = data[4]
        header = data[:HEADER_SIZE]
        signed = bool(flags & FLAG_SIGNED)
        if signed and size < HEADER_SIZE + SIGNATURE_SIZE:
            raise MessageDecodeError(f"truncated frame: {size} bytes, too short to hold its signature")
        body = data[HEADER_SIZE + SIGNATURE_SIZE :] if signed else data[HEADER_SIZE:]

        # 3. signature, before the flags are trusted and before any decompression or decoding
        verified = False
        if self.signing_key is not None:
            if not signed:
                raise BadSignature("message is not signed, but this queue requires signed messages")
            given = data[HEADER_SIZE : HEADER_SIZE + SIGNATURE_SIZE]
            verified = verify((self.signing_key, *self.fallback_keys), header, body, given)
            if not verified:
                raise BadSignature("signature does not match the signing key or any fallback key")

        # 4. flags
        if flags & RESERVED_MASK:
            raise MessageDecodeError(f"frame has unknown flags 0x{flags & RESERVED_MASK:02x}")
        if bool(flags & FLAG_VALUE) != value:
            raise MessageDecodeError(
                "frame holds a value, not a task message"
                if not value
                else "frame holds a task message, not a value"
            )
        serializer = self._serializer_for(flags & SERIALIZER_MASK, verified)

        # 5. bounded decompression
        if flags & FLAG_COMPRESSED:
            body = self._decompress(body)

        # 6. deserialization (a verified JSON body with no tagged value is plain JSON: the C decoder reads it)
        if verified and serializer is self.serializer and self._kind == SERIALIZER_JSON and _TAG not in body:
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                pass  # the full decoder says why
        try:
            return serializer.loads(body)
        except MessageDecodeError:
            raise
        except RecursionError:
            raise MessageDecodeError("body is nested too deeply to decode") from None
        except Exception as exc:  # a custom serializer's own error
            raise MessageDecodeError(f"body cannot be decoded: {type(exc).__name__}: {exc}") from exc

    def _serializer_for(self, kind: int, verified: bool) -> Any:
        if kind == SERIALIZER_JSON:
            return self.serializer if self._kind == SERIALIZER_JSON else _JSON
        if kind == SERIALIZER_PICKLE:
            if self._kind != SERIALIZER_PICKLE:
                raise MessageDecodeError(
                    f"refusing a pickle frame: this queue uses the {_SERIALIZER_NAMES[self._kind]} serializer"
                )
            if not verified:  # unreachable with the constructor's checks; kept as a second lock
                raise MessageDecodeError("refusing a pickle frame whose signature was not verified")
            return self.serializer
        if kind == SERIALIZER_CUSTOM:
            if self._kind != SERIALIZER_CUSTOM:
                raise MessageDecodeError(
                    f"refusing a custom-serializer frame: this queue uses the "
                    f"{_SERIALIZER_NAMES[self._kind]} serializer"
                )
            if not verified and not getattr(self.serializer, "safe_without_signing", False):
                raise MessageDecodeError("refusing an unsigned frame for a serializer that requires signing")
            return self.serializer
        raise MessageDecodeError(f"frame names unknown serializer {kind}")

    def _decompress(self, body: bytes) -> bytes:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(body, self.max_size + 1)
        except zlib.error as exc:
            raise MessageDecodeError(f"compressed body is corrupt: {exc}") from None
        if len(out) > self.max_size or inflater.unconsumed_tail:
            raise MessageTooLarge(
                f"compressed body inflates to more than the limit of {self.max_size} bytes "
                f"({len(body)} bytes compressed)"
            )
        if not inflater.eof:
            raise MessageDecodeError("compressed body is truncated")
        if inflater.unused_data:
            raise MessageDecodeError("compressed body is followed by unexpected bytes")
        return out


# --------------------------------------------------------------------------------------------------
# diagnostics (never verify, never decode)
# --------------------------------------------------------------------------------------------------


def peek_raw(data: bytes | bytearray | memoryview | None, n: int = 200) -> str:
    """Return a printable, ASCII-only preview of the first ``n`` bytes of ``data``.

    Printable ASCII is shown as is, a backslash as ``\\\\``, every other byte as ``\\xNN``; a longer input
    ends with ``... (+K bytes)``. Nothing is decoded, decompressed or verified, so it is safe on any input
    (for dead letters in the admin). The result still needs HTML escaping when shown in a page.
    """
    if data is None:
        return ""
    raw = bytes(data)
    parts: list[str] = []
    for byte in raw[: max(n, 0)]:
        if byte == 0x5C:
            parts.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            parts.append(chr(byte))
        else:
            parts.append(f"\\x{byte:02x}")
    text = "".join(parts)
    if len(raw) > n:
        text += f"... (+{len(raw) - max(n, 0)} bytes)"
    return text


def describe_frame(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Return what a frame's header *claims*, for diagnostics only: nothing is verified or decoded.

    Keys: ``size``, ``is_frame`` (magic recognised), ``version``, ``serializer`` (``json``/``pickle``/
    ``custom``/``unknown``), ``payload`` (``message``/``value``), ``compressed``, ``signed``,
    ``unknown_flags``, ``body_size``, and ``verified`` (always False).
    """
    raw = bytes(data)
    info: dict[str, Any] = {"size": len(raw), "is_frame": raw[:3] == MAGIC and len(raw) >= HEADER_SIZE}
    if not info["is_frame"]:
        info["verified"] = False
        return info
    flags = raw[4]
    signed = bool(flags & FLAG_SIGNED)
    info.update(
        version=raw[3],
        serializer=_SERIALIZER_NAMES.get(flags & SERIALIZER_MASK, "unknown"),
        payload="value" if flags & FLAG_VALUE else "message",
        compressed=bool(flags & FLAG_COMPRESSED),
        signed=signed,
        unknown_flags=flags & RESERVED_MASK,
        body_size=max(len(raw) - HEADER_SIZE - (SIGNATURE_SIZE if signed else 0), 0),
        verified=False,
    )
    return info
