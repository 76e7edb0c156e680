"""The wire envelope of one task call (:class:`Message`) and its checked conversion to plain data and back.

:meth:`Message.to_dict` writes the envelope as plain data (datetimes as ISO 8601 UTC text, nested pipeline
steps as nested dicts); :meth:`Message.from_dict` validates every field of such data and names the one that
is wrong. The codec (:mod:`django_tasks_q.messages.codec`) turns the plain data into a frame.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidEta, MessageDecodeError, SerializationError

__all__ = [
    "ENVELOPE_VALUES",
    "EXPIRES_AS_TIMEDELTA",
    "EXPIRES_IN",
    "MESSAGE_VERSION",
    "Message",
    "check_for_encoding",
    "new_call_id",
]

#: The envelope format version written by :meth:`Message.to_dict`.
MESSAGE_VERSION = 1
#: ``extra`` key of a call whose ``expires`` was given relative: the seconds given (the ``expires`` field holds
#: the moment they resolved to once the call was enqueued, or None before).
EXPIRES_IN = "expires_in"
#: ``extra`` key, true when the relative expiry of ``EXPIRES_IN`` was given as a timedelta.
EXPIRES_AS_TIMEDELTA = "expires_timedelta"
#: The envelope fields that hold the caller's values; the others are plain by construction.
ENVELOPE_VALUES = ("args", "kwargs", "chord", "extra")


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
        assert isinstance(value, int | float)
        if not math.isfinite(value) or value < 0:
            raise fail(name, f"must be a finite, non-negative number, got {value!r}")
        return float(value)

    retry_delay = number("retry_delay", 0, False)
    retry_backoff = number("retry_backoff", 1.0, False)
    assert retry_delay is not None and retry_backoff is not None  # not nullable
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



def check_for_encoding(plain: dict[str, Any]) -> bool:
    """Check the output of :meth:`Message.to_dict` before it is serialized; return whether it is plain.

    A plain envelope (every field present, plain types, no pipeline steps) passes a few type tests; any other
    is validated field by field, and a wrong field raises SerializationError naming it. ``to_dict`` wrote the
    datetimes as checked ISO texts, so they are not parsed again.
    """
    if _plain_fields(plain):
        return True
    try:
        _parse(plain, "")
    except _FieldError as exc:
        raise SerializationError(exc.text, field=exc.field) from None
    except RecursionError:
        raise SerializationError("the pipeline is nested too deeply", field="on_complete") from None
    return False
