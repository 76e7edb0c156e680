"""The default serializer: compact UTF-8 JSON that gives back what it was given, type and all.

Plain JSON for ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list`` and ``dict`` with ``str``
keys, plus *tagged* values for ``tuple``, ``set``, ``frozenset``, ``bytes``, ``datetime`` (naive or aware),
``date``, ``time``, ``timedelta``, ``Decimal`` and ``UUID``. A tagged value is a JSON object with exactly two
members, the tag marker and ``"v"``, for example ``{"__dtq__": "tuple", "v": [1, 2]}`` (aware datetimes may
carry ``"zone"``, ``"tzname"`` and ``"fold"`` as well). A plain dict that happens to contain the marker key is
escaped as ``{"__dtq__": "dict", "v": [[key, value], ...]}`` so it still comes back unchanged.

Encoding is an explicit recursive walk over the value, not ``json``'s ``default=`` hook (which never sees
tuples or dict keys). Only values of exactly the supported types are accepted — subclasses such as
``IntEnum`` members or ``OrderedDict`` would come back as their base type, so they are refused — and every
refusal is a :class:`~django_tasks_q.exceptions.SerializationError` whose message starts with the path of the
bad value, e.g. ``args[1]['when']: object of type Foo cannot be serialized as JSON``. What ``dumps`` accepts,
``loads`` gives back equal and of the same type — exceptions apart.

Exceptions (any :class:`BaseException`) are carried too, so that an error handler or a chord callback gets
the exception a task raised, and a task may return one:
``{"__dtq__": "exception", "v": {"module": ..., "qualname": ..., "args": [...], "error": repr}}``. Each
argument is encoded by the same walk; one that cannot be falls back to its ``repr()`` text (a
:class:`~django_tasks_q.exceptions.TaskException` is carried by its ``metadata``, the argument it is built
from). Decoding rebuilds ``cls(*args)`` only when the class's module is already imported, the qualified name
resolves there to a subclass of :class:`Exception` and the call succeeds; otherwise the value decodes to a
``TaskException`` whose ``error`` is the original ``repr()`` and whose ``type`` is the class's dotted path.
``SystemExit``, ``KeyboardInterrupt`` and the other exceptions that do not derive from ``Exception`` always
decode that way: a value must never stop a worker when code raises it. Like pickle, the rebuilt exception
has its class and ``args``, not its other attributes, traceback or cause, and it compares equal only to
itself.

Decoding never imports anything (see :mod:`django_tasks_q.messages.json_tags`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

from ..exceptions import MessageDecodeError, SerializationError, TaskException
from . import json_tags
from .json_tags import TAG_KEY, VALUE_KEY, known_zones
from .serializers import BaseSerializer

__all__ = ["JSONSerializer", "check_roundtrip", "decode_exception", "encode_exception"]

_BIG_INT_BITS = 3_000  # above this, check that str() works (sys.get_int_max_str_digits())


class _Refused(Exception):
    """Internal: a value the JSON walk refuses; ``segments`` is the path, innermost first."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
        self.segments: list[Any] = []


class _SetItem:
    """Internal path segment for an element of a set (elements have no index)."""


_SET_ITEM = _SetItem()


def _format_path(where: str, segments_innermost_first: list[Any]) -> str:
    path = where
    for seg in reversed(segments_innermost_first):
        if seg is _SET_ITEM:
            path += "[<set element>]"
        elif isinstance(seg, int):
            path += f"[{seg}]"
        elif path:
            path += f"[{seg!r}]"
        else:
            path = str(seg)
    return path or "value"


def _type_name(obj: Any) -> str:
    cls = type(obj)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _short_repr(obj: Any, limit: int = 60) -> str:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{_type_name(obj)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_repr(obj: Any) -> str:
    """``repr(obj)``, or a placeholder naming its type when its ``__repr__`` fails (or recurses)."""
    try:
        text = repr(obj)
    except Exception:
        return f"<{_type_name(obj)} object (repr failed)>"
    # Text that is not valid UTF-8 could not be written; a broken repr must not lose the exception.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Refused(
                f"string contains a lone surrogate at index {exc.start} and is not valid UTF-8"
            ) from None


def _encode_tz(tz: dt.tzinfo, what: str, out: dict[str, Any]) -> None:
    """Add what is needed besides the ISO text to restore ``tz`` exactly."""
    tz_type = type(tz)
    if tz_type is dt.timezone:
        offset = tz.utcoffset(None)
        assert offset is not None  # a fixed-offset zone always has one
        if tz.tzname(None) != dt.timezone(offset).tzname(None):
            out["tzname"] = tz.tzname(None)
        return
    if tz_type is zoneinfo.ZoneInfo:
        assert isinstance(tz, zoneinfo.ZoneInfo)
        key = tz.key
        if key is None:
            raise _Refused(f"{what} with a ZoneInfo built from a file (no key) cannot be serialized as JSON")
        if key not in known_zones():
            raise _Refused(
                f"{what} with ZoneInfo {key!r}, which is not an available time zone, "
                "cannot be serialized as JSON"
            )
        out["zone"] = key
        return
    raise _Refused(
        f"{what} with tzinfo of type {_type_name(tz)} cannot be serialized as JSON "
        "(use zoneinfo.ZoneInfo or datetime.timezone)"
    )


def _encode_clock(value: dt.datetime | dt.time, tag: str) -> dict[str, Any]:
    """The tagged form of a datetime or a time: its ISO text, and what restores its tzinfo and fold."""
    out: dict[str, Any] = {TAG_KEY: tag, VALUE_KEY: value.isoformat()}
    if value.tzinfo is not None:
        _encode_tz(value.tzinfo, tag, out)
    if value.fold:
        out["fold"] = 1
    return out


def _model_hint(obj: Any) -> str:
    """A hint for a Django model instance: a message carries data, the worker should load the row itself."""
    meta = getattr(type(obj), "_meta", None)
    if meta is None or not hasattr(meta, "concrete_model") or not hasattr(obj, "pk"):
        return ""
    return (
        f"; pass its primary key instead (e.g. {meta.model_name}_id={meta.model_name}.pk) and load it in the "
        f"task with {type(obj).__name__}.objects.get(pk=...), so that the worker reads the row as it is then"
    )


class JSONSerializer(BaseSerializer):
    """The default serializer: compact UTF-8 JSON with tagged types; see the module docstring."""

    name = "json"
    safe_without_signing = True

    # ---- encoding ----

    def dumps(self, obj: Any, *, where: str = "value") -> bytes:
        """Return ``obj`` as compact UTF-8 JSON.

        Raises SerializationError, whose message starts with the path of the offending value (rooted at
        ``where``), for anything that would not come back unchanged. The error's ``field`` is ``where``,
        or the top-level key when ``where`` is ``""``.
        """
        plain = self.to_plain(obj, where=where)
        try:
            text = json.dumps(
                plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
            )
        except (ValueError, RecursionError) as exc:  # pragma: no cover - the walk refuses these first
            raise SerializationError(f"{where or 'value'}: {exc}", field=where or None) from exc
        return text.encode("utf-8")

    def to_plain(self, obj: Any, *, where: str = "value") -> Any:
        """Return the JSON-native structure (dicts, lists, str, numbers, None) that ``dumps`` writes."""
        try:
            return self._enc(obj, set())
        except _Refused as exc:
            path = _format_path(where, exc.segments)
            field = where
            if not where and exc.segments and isinstance(exc.segments[-1], str):
                field = exc.segments[-1]
            raise SerializationError(f"{path}: {exc.text}", field=field or None) from None
        except RecursionError:
            raise SerializationError(
                f"{where or 'value'}: value is nested too deeply to serialize", field=where or None
            ) from None

    def check(self, obj: Any, *, where: str = "value") -> None:
        """Raise SerializationError (with the path) unless ``obj`` would survive a JSON round trip."""
        self.to_plain(obj, where=where)

    def _enc(self, obj: Any, active: set[int]) -> Any:
        cls = type(obj)
        if cls is str:
            _check_text(obj)
            return obj
        if obj is None or cls is bool:
            return obj
        if cls is int:
            if obj.bit_length() > _BIG_INT_BITS:
                try:
                    str(obj)
                except ValueError:
                    raise _Refused(
                        f"integer with {obj.bit_length()} bits has more digits than Python converts to text"
                    ) from None
            return obj
        if cls is float:
            if not math.isfinite(obj):
                raise _Refused(f"float {obj!r} cannot be serialized as JSON (JSON has no NaN or Infinity)")
            return obj
        if cls is list or cls is tuple:
            marker = id(obj)
            if marker in active:
                raise _Refused(f"circular reference: this {cls.__name__} contains itself")
            active.add(marker)
            out: list[Any] = []
            index = 0
            try:
                for index in range(len(obj)):
                    out.append(self._enc(obj[index], active))
            except _Refused as exc:
                exc.segments.append(index)
                raise
            active.discard(marker)
            return out if cls is list else {TAG_KEY: "tuple", VALUE_KEY: out}
        if cls is dict:
            return self._enc_dict(obj, active)
        if cls is set or cls is frozenset:
            items: list[Any] = []
            try:
                for item in obj:
                    items.append(self._enc(item, active))
            except _Refused as exc:
                exc.segments.append(_SET_ITEM)
                raise
            # A stable order, whatever the elements' types: sort by their JSON text.
            items.sort(key=lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
            return {TAG_KEY: cls.__name__, VALUE_KEY: items}
        if cls is bytes:
            return {TAG_KEY: "bytes", VALUE_KEY: base64.b64encode(obj).decode("ascii")}
        if cls is dt.datetime:
            return _encode_clock(obj, "datetime")
        if cls is dt.date:
            return {TAG_KEY: "date", VALUE_KEY: obj.isoformat()}
        if cls is dt.time:
            return _encode_clock(obj, "time")
        if cls is dt.timedelta:
            return {TAG_KEY: "timedelta", VALUE_KEY: [obj.days, obj.seconds, obj.microseconds]}
        if cls is Decimal:
            return {TAG_KEY: "decimal", VALUE_KEY: str(obj)}
        if cls is uuid.UUID:
            return {TAG_KEY: "uuid", VALUE_KEY: str(obj)}
        if isinstance(obj, BaseException):
            return self._enc_exception(obj, active)
        return self._refuse_unknown(obj)

    def _enc_exception(self, exc: BaseException, active: set[int]) -> dict[str, Any]:
        marker = id(exc)
        if marker in active:
            raise _Refused(f"circular reference: this {type(exc).__name__} contains itself")
        active.add(marker)
        # A TaskException is built from its metadata; its args hold only the error text.
        raw_args = (exc.metadata,) if isinstance(exc, TaskException) else exc.args
        args: list[Any] = []
        for arg in raw_args:
            try:
                # A copy, so that a refusal deep inside one argument leaves no marker behind for the next.
                args.append(self._enc(arg, set(active)))
            except (_Refused, RecursionError):
                # An argument JSON cannot carry is kept as text rather than losing the whole exception.
                args.append(_safe_repr(arg))
        active.discard(marker)
        cls = type(exc)
        return {
            TAG_KEY: "exception",
            VALUE_KEY: {
                "module": cls.__module__,
                "qualname": cls.__qualname__,
                "args": args,
                "error": _safe_repr(exc),
            },
        }

    def _enc_dict(self, obj: dict[Any, Any], active: set[int]) -> Any:
        marker = id(obj)
        if marker in active:
            raise _Refused("circular reference: this dict contains itself")
        for key in obj:
            if type(key) is not str:
                if isinstance(key, str):
                    raise _Refused(f"dict key {_short_repr(key)} is a {_type_name(key)}, not a plain str")
                raise _Refused(f"dict key {_short_repr(key)} is not a string")
            _check_text(key)
        active.add(marker)
        key = None
        out: dict[str, Any] = {}
        try:
            for key, value in obj.items():
                out[key] = self._enc(value, active)
        except _Refused as exc:
            exc.segments.append(key)
            raise
        active.discard(marker)
        if TAG_KEY in out:
            return {TAG_KEY: "dict", VALUE_KEY: [[k, v] for k, v in out.items()]}
        return out

    @staticmethod
    def _refuse_unknown(obj: Any) -> Any:
        bases = (
            str,
            int,
            float,
            list,
            tuple,
            dict,
            set,
            frozenset,
            bytes,
            dt.datetime,
            dt.date,
            dt.time,
            dt.timedelta,
            Decimal,
            uuid.UUID,
        )
        for base in bases:
            if isinstance(obj, base):
                raise _Refused(
                    f"object of type {_type_name(obj)} cannot be serialized as JSON "
                    f"(it is a subclass of {base.__name__} and would come back as a plain {base.__name__})"
                )
        raise _Refused(f"object of type {_type_name(obj)} cannot be serialized as JSON{_model_hint(obj)}")

    # ---- decoding ----

    def loads(self, data: bytes) -> Any:
        """Return the value encoded in ``data``; raise MessageDecodeError saying why it is invalid."""
        return json_tags.loads(data)

    def from_plain(self, plain: Any) -> Any:
        """Return the value whose JSON-native structure (as :meth:`to_plain` returns it) is ``plain``.

        Raises MessageDecodeError when a tagged value in it is invalid.
        """
        return json_tags.from_plain(plain)


_DEFAULT_JSON = JSONSerializer()


def check_roundtrip(obj: Any, where: str = "value") -> None:
    """Raise SerializationError (message starting with the path below ``where``) unless ``obj`` survives
    a JSON round trip (unchanged, exceptions apart: see the module docstring)."""
    _DEFAULT_JSON.check(obj, where=where)


def encode_exception(exc: BaseException) -> dict[str, Any]:
    """The JSON-native tagged form of ``exc`` (its class's path, its ``args`` and its ``repr()``).

    Never raises: arguments that JSON cannot carry are kept as their ``repr()`` text. The result is plain
    data (dicts, lists, strings, numbers), so that any serializer can store it, for example in a failed
    task's error metadata.
    """
    return _DEFAULT_JSON._enc_exception(exc, set())


def decode_exception(plain: Any) -> BaseException | None:
    """The exception that :func:`encode_exception` turned into ``plain``, rebuilt as ``cls(*args)``.

    Returns None when it cannot be rebuilt (its module is not imported, the name does not resolve to a
    subclass of Exception, ``cls(*args)`` fails) or when ``plain`` is not such a form; never imports.
    Arguments that are themselves exceptions and cannot be rebuilt come back as TaskException.
    """
    if (
        not isinstance(plain, dict)
        or plain.get(TAG_KEY) != "exception"
        or not isinstance(plain.get(VALUE_KEY), dict)
    ):
        return None
    value = plain[VALUE_KEY]
    module, qualname, args = value.get("module"), value.get("qualname"), value.get("args")
    if not isinstance(module, str) or not isinstance(qualname, str) or not isinstance(args, list):
        return None
    try:
        decoded_args = json_tags.from_plain(args)
    except MessageDecodeError:
        return None
    return json_tags.rebuild_exception(module, qualname, decoded_args)
