"""The wire envelope (:class:`Message`) and the codec that turns it into signed bytes and back.

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

:meth:`MessageCodec.decode` checks, in this order (DESIGN §4, RELIABILITY R15/R21): the raw size; the magic
and format version; the signature (against the key and every fallback key, with
:func:`hmac.compare_digest`; a codec with a key refuses unsigned frames); the flags (reserved bits, payload
kind, serializer — pickle is loaded only by a pickle codec and only from a verified frame); the
decompression, capped at ``max_size`` bytes of output; the deserialization; and :meth:`Message.from_dict`.
Nothing in a payload is ever imported or executed by the JSON path.

Signing keys come from Django's ``SECRET_KEY`` through :func:`derive_signing_key`; old keys from
``SECRET_KEY_FALLBACKS`` still verify (:func:`signing_keys_from_settings`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .exceptions import (
    BadSignature,
    ConfigurationError,
    InvalidEta,
    MessageDecodeError,
    MessageTooLarge,
    SerializationError,
)
from .serializers import TAG_KEY, BaseSerializer, JSONSerializer, PickleSerializer, get_serializer

__all__ = [
    "DEFAULT_MAX_SIZE",
    "EXPIRES_AS_TIMEDELTA",
    "EXPIRES_IN",
    "MESSAGE_VERSION",
    "SIGNING_SALT",
    "Message",
    "MessageCodec",
    "derive_signing_key",
    "derive_signing_keys",
    "describe_frame",
    "peek_raw",
    "signing_keys_from_settings",
]

#: Largest frame (and largest decompressed body) accepted by default: 1 MiB.
DEFAULT_MAX_SIZE = 1024 * 1024
#: Bodies at most this long are never compressed.
DEFAULT_COMPRESS_THRESHOLD = 1024
#: The envelope format version written by :meth:`Message.to_dict`.
MESSAGE_VERSION = 1
#: ``extra`` key of a call whose ``expires`` was given relative: the seconds given (the ``expires`` field holds
#: the moment they resolved to once the call was enqueued, or None before).
EXPIRES_IN = "expires_in"
#: ``extra`` key, true when the relative expiry of ``EXPIRES_IN`` was given as a timedelta.
EXPIRES_AS_TIMEDELTA = "expires_timedelta"
#: The fixed salt of :func:`derive_signing_key`; changing it invalidates every signed message in flight.
SIGNING_SALT = b"django_tasks_q.message"

MAGIC = b"DTQ"
FRAME_VERSION = 1
HEADER_SIZE = len(MAGIC) + 2
SIGNATURE_SIZE = hashlib.sha256().digest_size

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


# --------------------------------------------------------------------------------------------------
# Message
# --------------------------------------------------------------------------------------------------


def new_call_id() -> str:
    """A new call id: a random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` makes it, made
    without building a ``UUID`` object (it is on every enqueue's path)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


@dataclass(slots=True, kw_only=True)
class Message:
    """The wire envelope of one task call (huey's ``Message``, with a few more fields).

    ``name`` is the task's path (:attr:`TaskWrapper.path <django_tasks_q.task.TaskWrapper.path>`, the name
    it is registered under), as huey's ``Message.name`` is its registry key.
    ``eta``, ``expires`` and ``enqueued_at`` are aware datetimes when encoded (the codec writes them in UTC).
    ``expires`` is the moment the call expires; a relative expiry as given is in ``extra`` (``EXPIRES_IN``,
    and ``EXPIRES_AS_TIMEDELTA`` for a timedelta), so a message without those keys had an absolute one or none.
    ``on_complete`` is the next step of a pipeline and ``on_error`` the message to enqueue on failure;
    ``chord`` is an opaque dict the hub fills; ``extra`` holds task options beyond the named fields and
    must survive the serializer. ``version`` is the envelope format version.
    """

    id: str = field(default_factory=new_call_id)
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    eta: dt.datetime | None = None
    priority: int | None = None
    retries: int = 0
    retry_delay: float = 0
    retry_backoff: float = 1.0
    expires: dt.datetime | None = None
    timeout: float | None = None
    on_complete: Message | None = None
    on_error: Message | None = None
    chord: dict[str, Any] | None = None
    enqueued_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = MESSAGE_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the envelope as plain data: datetimes as ISO 8601 UTC text, ``args`` as a list, and
        ``on_complete`` / ``on_error`` as nested dicts.

        Raises InvalidEta (``field`` naming the attribute) for a naive or non-datetime ``eta``,
        ``expires`` or ``enqueued_at``, and SerializationError for a circular pipeline. The values inside
        ``args``, ``kwargs``, ``chord`` and ``extra`` are left for the serializer to check.
        """
        return self._to_dict(set(), "")

    def _to_dict(self, seen: set[int], where: str) -> dict[str, Any]:
        if id(self) in seen:
            raise SerializationError(f"{where or 'message'}: the pipeline is circular", field="on_complete")
        seen.add(id(self))
        plain = {
            "version": self.version,
            "id": self.id,
            "name": self.name,
            "args": list(self.args) if isinstance(self.args, tuple | list) else self.args,
            "kwargs": dict(self.kwargs) if type(self.kwargs) is dict else self.kwargs,
            "eta": _dt_to_text(self.eta, where, "eta"),
            "priority": self.priority,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_backoff": self.retry_backoff,
            "expires": _dt_to_text(self.expires, where, "expires"),
            "timeout": self.timeout,
            "on_complete": _nested_to_dict(self.on_complete, seen, where, "on_complete"),
            "on_error": _nested_to_dict(self.on_error, seen, where, "on_error"),
            "chord": self.chord,
            "enqueued_at": _dt_to_text(self.enqueued_at, where, "enqueued_at"),
            "extra": self.extra,
        }
        seen.discard(id(self))  # only a chain that reaches itself is circular; shared steps are fine
        return plain

    @classmethod
    def from_dict(cls, data: Any) -> Message:
        """Build a Message from plain data (the output of :meth:`to_dict`, after a round trip).

        Validates every field; raises MessageDecodeError naming the field and what is wrong with it
        (``missing field 'name'``, ``name must be a str, got int``, ``unknown message version 2`` ...).
        """
        message = _fast_parse(data)
        if message is not None:
            return message
        try:
            return _parse(data, "")
        except _FieldError as exc:
            raise MessageDecodeError(exc.text) from None
        except RecursionError:
            raise MessageDecodeError("message is nested too deeply (on_complete / on_error chain)") from None


def _nested_to_dict(msg: Any, seen: set[int], where: str, name: str) -> Any:
    if msg is None:
        return None
    if not isinstance(msg, Message):
        raise SerializationError(
            f"{_join(where, name)} must be a Message or None, got {type(msg).__name__}", field=name
        )
    return msg._to_dict(seen, _join(where, name))


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _dt_to_text(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is dt.datetime and value.tzinfo is dt.UTC:
        return value.isoformat()
    top = where.split(".", 1)[0] or name
    if not isinstance(value, dt.datetime):
        raise InvalidEta(
            f"{_join(where, name)} must be a datetime or None, got {type(value).__name__}", field=top
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEta(
            f"{_join(where, name)} must be timezone-aware, got naive {value.isoformat()}", field=top
        )
    return value.astimezone(dt.UTC).isoformat()


class _FieldError(Exception):
    """Internal: a field of an envelope is missing or wrong; ``field`` is the top-level field."""

    def __init__(self, text: str, field: str) -> None:
        super().__init__(text)
        self.text = text
        self.field = field


_FIELDS = frozenset(
    {
        "version",
        "id",
        "name",
        "args",
        "kwargs",
        "eta",
        "priority",
        "retries",
        "retry_delay",
        "retry_backoff",
        "expires",
        "timeout",
        "on_complete",
        "on_error",
        "chord",
        "enqueued_at",
        "extra",
    }
)


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _parse(data: Any, where: str) -> Message:
    top = where.split(".", 1)[0]

    def fail(name: str, text: str) -> _FieldError:
        return _FieldError(f"{_join(where, name)} {text}", top or name)

    if not isinstance(data, dict):
        raise _FieldError(f"{where or 'message'} must be a mapping, got {_kind(data)}", top or "message")
    unknown = data.keys() - _FIELDS
    if unknown:
        names = ", ".join(repr(k) for k in sorted(map(str, unknown)))
        raise _FieldError(f"{where or 'message'} has unknown field(s) {names}", top or "message")

    if "version" not in data:
        raise fail("version", "is missing (missing field 'version')")
    version = data["version"]
    if type(version) is not int:
        raise fail("version", f"must be an int, got {_kind(version)}")
    if version != MESSAGE_VERSION:
        raise _FieldError(
            f"unknown message version {version} in {where or 'message'} (this code reads version "
            f"{MESSAGE_VERSION})",
            top or "version",
        )

    for required in ("id", "name"):
        if required not in data:
            raise fail(required, f"is missing (missing field {required!r})")
        if not isinstance(data[required], str):
            raise fail(required, f"must be a str, got {_kind(data[required])}")
        if not data[required]:
            raise fail(required, "must not be empty")

    args = data.get("args", [])
    if not isinstance(args, list | tuple):
        raise fail("args", f"must be a list, got {_kind(args)}")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise fail("kwargs", f"must be a dict, got {_kind(kwargs)}")
    for key in kwargs:
        if not isinstance(key, str):
            raise fail("kwargs", f"keys must be str, got {_kind(key)} {key!r}")

    priority = data.get("priority")
    if priority is not None and type(priority) is not int:
        raise fail("priority", f"must be an int or None, got {_kind(priority)}")
    retries = data.get("retries", 0)
    if type(retries) is not int:
        raise fail("retries", f"must be an int, got {_kind(retries)}")
    if retries < 0:
        raise fail("retries", f"must not be negative, got {retries}")

    def number(name: str, default: float | None, nullable: bool) -> float | None:
        value = data.get(name, default)
        if value is None and nullable:
            return None
        if type(value) not in (int, float):
            raise fail(name, f"must be a number{' or None' if nullable else ''}, got {_kind(value)}")
        if not math.isfinite(value) or value < 0:
            raise fail(name, f"must be a finite, non-negative number, got {value!r}")
        return float(value)

    retry_delay = number("retry_delay", 0, False)
    retry_backoff = number("retry_backoff", 1.0, False)
    timeout = number("timeout", None, True)

    def when(name: str) -> dt.datetime | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise fail(name, f"must be an ISO 8601 string or None, got {_kind(value)}")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise fail(name, f"is not an ISO 8601 datetime: {value[:40]!r}") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise fail(name, f"must be timezone-aware, got {value[:40]!r}")
        return parsed.astimezone(dt.UTC)

    eta = when("eta")
    expires = when("expires")
    enqueued_at = when("enqueued_at")

    chord = data.get("chord")
    if chord is not None and not isinstance(chord, dict):
        raise fail("chord", f"must be a dict or None, got {_kind(chord)}")
    extra = data.get("extra", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise fail("extra", f"must be a dict, got {_kind(extra)}")
    if EXPIRES_IN in extra and not _plain_number(extra[EXPIRES_IN], False):
        raise _FieldError(
            f"{_join(where, 'extra')}[{EXPIRES_IN!r}] must be a finite, non-negative number, "
            f"got {extra[EXPIRES_IN]!r}",
            top or "extra",
        )

    nested: dict[str, Message | None] = {}
    for name in ("on_complete", "on_error"):
        value = data.get(name)
        nested[name] = None if value is None else _parse(value, _join(where, name))

    return Message(
        id=data["id"],
        name=data["name"],
        args=tuple(args),
        kwargs=kwargs,
        eta=eta,
        priority=priority,
        retries=retries,
        retry_delay=retry_delay,
        retry_backoff=retry_backoff,
        expires=expires,
        timeout=timeout,
        on_complete=nested["on_complete"],
        on_error=nested["on_error"],
        chord=chord,
        enqueued_at=enqueued_at,
        extra=extra,
        version=version,
    )


# Fast paths. Almost every envelope is one this code wrote: every field present, plain types, no pipeline
# steps. These checks accept such an envelope in a few type tests; they are a strict subset of ``_parse``'s, so
# anything they do not accept (a nested step, an older shape, an invalid field) goes through ``_parse``, which
# also words the error.


def _plain_number(value: Any, nullable: bool) -> bool:
    kind = type(value)
    if kind is int:
        return value >= 0
    if kind is float:
        return value >= 0 and math.isfinite(value)
    return nullable and value is None


def _plain_fields(data: Any) -> bool:
    """Whether ``data`` has exactly the envelope's fields, no nested steps, and plain values ``_parse`` accepts
    (the datetime texts aside)."""
    if type(data) is not dict or data.keys() != _FIELDS:
        return False
    if data["on_complete"] is not None or data["on_error"] is not None:
        return False
    if type(data["version"]) is not int or data["version"] != MESSAGE_VERSION:
        return False
    ident, name, args, kwargs = data["id"], data["name"], data["args"], data["kwargs"]
    if type(ident) is not str or not ident or type(name) is not str or not name:
        return False
    if type(args) is not list and type(args) is not tuple:
        return False
    if type(kwargs) is not dict or any(type(key) is not str for key in kwargs):
        return False
    priority, retries = data["priority"], data["retries"]
    if (priority is not None and type(priority) is not int) or type(retries) is not int or retries < 0:
        return False
    if not (
        _plain_number(data["retry_delay"], False)
        and _plain_number(data["retry_backoff"], False)
        and _plain_number(data["timeout"], True)
    ):
        return False
    chord, extra = data["chord"], data["extra"]
    return (chord is None or type(chord) is dict) and (
        extra is None or (type(extra) is dict and (EXPIRES_IN not in extra or _plain_number(extra[EXPIRES_IN], False)))
    )


_NOT_PLAIN = object()


def _plain_when(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        return _NOT_PLAIN
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return _NOT_PLAIN
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return _NOT_PLAIN
    return parsed.astimezone(dt.UTC)


def _fast_parse(data: Any) -> Message | None:
    """The Message of a plain envelope (see above), or ``None`` when ``_parse`` must look at it."""
    if not _plain_fields(data):
        return None
    eta, expires, enqueued_at = _plain_when(data["eta"]), _plain_when(data["expires"]), _plain_when(data["enqueued_at"])
    if eta is _NOT_PLAIN or expires is _NOT_PLAIN or enqueued_at is _NOT_PLAIN:
        return None
    retry_delay, retry_backoff, timeout = data["retry_delay"], data["retry_backoff"], data["timeout"]
    return Message(
        id=data["id"],
        name=data["name"],
        args=tuple(data["args"]),
        kwargs=data["kwargs"],
        eta=eta,
        priority=data["priority"],
        retries=data["retries"],
        retry_delay=float(retry_delay),
        retry_backoff=float(retry_backoff),
        expires=expires,
        timeout=None if timeout is None else float(timeout),
        chord=data["chord"],
        enqueued_at=enqueued_at,
        extra=data["extra"] if data["extra"] is not None else {},
        version=data["version"],
    )


_ENVELOPE_VALUES = ("args", "kwargs", "chord", "extra")
"""The envelope fields that hold the caller's values; the others are plain by construction."""

_ENVELOPE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
"""One encoder for every envelope (``json.dumps`` with options builds a new one per call)."""


# --------------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------------


def derive_signing_key(secret_key: str | bytes) -> bytes:
    """Return the 32-byte message signing key for a Django ``SECRET_KEY``.

    The key is ``HMAC-SHA256(key=secret_key (UTF-8), msg=SIGNING_SALT)`` with the fixed salt
    ``b"django_tasks_q.message"``: deterministic across processes and machines, and unrelated to the keys
    Django derives from the same secret for sessions, cookies or passwords.
    """
    if isinstance(secret_key, str):
        secret = secret_key.encode("utf-8")
    elif isinstance(secret_key, bytes | bytearray):
        secret = bytes(secret_key)
    else:
        raise ConfigurationError(f"SECRET_KEY must be a str, got {type(secret_key).__name__}")
    if not secret:
        raise ConfigurationError("SECRET_KEY is empty; messages cannot be signed with an empty key")
    return hmac.new(secret, SIGNING_SALT, hashlib.sha256).digest()


def derive_signing_keys(
    secret_key: str | bytes, fallbacks: Sequence[str | bytes] = ()
) -> tuple[bytes, list[bytes]]:
    """Return ``(signing_key, fallback_keys)`` derived from a secret and its older fallbacks.

    Empty fallbacks are skipped, as are fallbacks equal to the current secret.
    """
    if isinstance(fallbacks, str | bytes):
        raise ConfigurationError("SECRET_KEY_FALLBACKS must be a list of secrets, not a single string")
    key = derive_signing_key(secret_key)
    olds: list[bytes] = []
    for old in fallbacks:
        if not old:
            continue
        derived = derive_signing_key(old)
        if derived != key and derived not in olds:
            olds.append(derived)
    return key, olds


def signing_keys_from_settings() -> tuple[bytes, list[bytes]]:
    """Return ``(signing_key, fallback_keys)`` from ``settings.SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``.

    Reads the settings when called (never at import), so ``override_settings`` works.
    """
    from django.conf import settings

    try:
        secret = settings.SECRET_KEY
    except Exception as exc:  # ImproperlyConfigured for an empty or missing SECRET_KEY
        raise ConfigurationError(f"cannot sign messages: {exc}") from exc
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or ()
    return derive_signing_keys(secret, fallbacks)


# --------------------------------------------------------------------------------------------------
# codec
# --------------------------------------------------------------------------------------------------


def _check_key(key: Any, what: str) -> bytes:
    if isinstance(key, str):
        raise ConfigurationError(f"{what} must be bytes, not str; use derive_signing_key(SECRET_KEY)")
    if not isinstance(key, bytes | bytearray):
        raise ConfigurationError(f"{what} must be bytes, got {type(key).__name__}")
    if not key:
        raise ConfigurationError(f"{what} must not be empty")
    return bytes(key)


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
    :class:`~django_tasks_q.serializers.BaseSerializer` with ``safe_without_signing = True``) requires a
    ``signing_key``. ``compression`` is ``False``, ``True`` (zlib level 6) or a zlib level 1-9; bodies no
    longer than ``compress_threshold`` bytes are stored as they are. ``max_size`` bounds both the frame
    and the decompressed body.
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

        self.signing_key = None if signing_key is None else _check_key(signing_key, "signing_key")
        if isinstance(fallback_keys, str | bytes):
            raise ConfigurationError("fallback_keys must be a sequence of keys, not a single key")
        self.fallback_keys = tuple(_check_key(k, "each fallback key") for k in fallback_keys)
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
        # to_dict writes datetimes as checked ISO texts, so the fast check need not parse them again.
        plain_envelope = _plain_fields(plain)
        if not plain_envelope:
            try:
                _parse(plain, "")
            except _FieldError as exc:
                raise SerializationError(exc.text, field=exc.field) from None
            except RecursionError:
                raise SerializationError("the pipeline is nested too deeply", field="on_complete") from None
        body = self._dumps_envelope(plain) if plain_envelope and self._kind == SERIALIZER_JSON else None
        return self._frame(body if body is not None else self._dumps(plain, ""), value=False)

    def _dumps_envelope(self, plain: dict[str, Any]) -> bytes | None:
        """JSON of a plain envelope, walking only the caller's values; ``None`` lets the full walk decide."""
        if not (plain["id"].isascii() and plain["name"].isascii()):
            return None
        walked = dict(plain)
        try:
            for key in _ENVELOPE_VALUES:
                if plain[key]:  # empty containers and None are plain JSON already
                    walked[key] = self.serializer.to_plain(plain[key], where=key)
            return _ENVELOPE_JSON.encode(walked).encode("utf-8")
        except (SerializationError, ValueError, TypeError, RecursionError):
            return None

    def encode_value(self, obj: Any, *, where: str = "value") -> bytes:
        """Return an arbitrary value (a result, an error record) as a frame of the value kind.

        ``where`` names the value in SerializationError messages (``"result"`` reads best for R17).
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
            data = header + _sign(self.signing_key, header, body) + body
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
            for key in (self.signing_key, *self.fallback_keys):
                if hmac.compare_digest(_sign(key, header, body), given):
                    verified = True
                    break
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


def _sign(key: bytes, header: bytes, body: bytes) -> bytes:
    mac = hmac.new(key, header, hashlib.sha256)
    mac.update(body)
    return mac.digest()


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
