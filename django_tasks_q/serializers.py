"""Serializers: turn task arguments, results and message envelopes into bytes and back.

Two serializers ship:

* :class:`JSONSerializer` (the default). Plain JSON for ``None``, ``bool``, ``int``, finite ``float``,
  ``str``, ``list`` and ``dict`` with ``str`` keys, plus *tagged* values for ``tuple``, ``set``,
  ``frozenset``, ``bytes``, ``datetime`` (naive or aware), ``date``, ``time``, ``timedelta``,
  ``Decimal`` and ``UUID``. A tagged value is a JSON object with exactly two members, the tag marker
  and ``"v"``, for example ``{"__dtq__": "tuple", "v": [1, 2]}`` (aware datetimes may carry ``"zone"``,
  ``"tzname"`` and ``"fold"`` as well). A plain dict that happens to contain the marker key is escaped as
  ``{"__dtq__": "dict", "v": [[key, value], ...]}`` so it still comes back unchanged.

  Encoding is an explicit recursive walk over the value, not ``json``'s ``default=`` hook (which never
  sees tuples or dict keys). Only values of exactly the supported types are accepted — subclasses such
  as ``IntEnum`` members or ``OrderedDict`` would come back as their base type, so they are refused —
  and every refusal is a :class:`~django_tasks_q.exceptions.SerializationError` whose message starts
  with the path of the bad value, e.g. ``args[1]['when']: object of type Foo cannot be serialized as
  JSON``. What ``dumps`` accepts, ``loads`` gives back equal and of the same type — exceptions apart.

  Exceptions (any :class:`BaseException`) are carried too, so that an error handler or a chord callback
  gets the exception a task raised, and a task may return one:
  ``{"__dtq__": "exception", "v": {"module": ..., "qualname": ..., "args": [...], "error": repr}}``. Each
  argument is encoded by the same walk; one that cannot be falls back to its ``repr()`` text (a
  :class:`~django_tasks_q.exceptions.TaskException` is carried by its ``metadata``, the argument it is
  built from). Decoding rebuilds ``cls(*args)`` only when the class's module is already imported, the
  qualified name resolves there to a subclass of :class:`Exception` and the call succeeds; otherwise the
  value decodes to a ``TaskException`` whose ``error`` is the original ``repr()`` and whose ``type`` is
  the class's dotted path. ``SystemExit``, ``KeyboardInterrupt`` and the other exceptions that do not
  derive from ``Exception`` always decode that way: a value must never stop a worker when code raises
  it. Like pickle, the rebuilt exception has its class and ``args``, not its other attributes, traceback
  or cause, and it compares equal only to itself.

  Decoding never imports anything: tags name a fixed set of types, a ``zone`` must be one of
  :func:`zoneinfo.available_timezones`, and an exception's class is looked up among the modules already
  loaded (:data:`sys.modules`), by their namespaces only (no module ``__getattr__`` runs).

* :class:`PickleSerializer`, opt-in. Pickle runs code while loading, so the message codec only loads
  pickle bytes whose HMAC signature verified (see :mod:`django_tasks_q.message`).

:func:`get_serializer` turns a setting value (``"json"``, ``"pickle"`` or an object with ``dumps`` and
``loads``) into a serializer.
"""

from __future__ import annotations

import abc
import base64
import binascii
import datetime as dt
import functools
import json
import math
import pickle
import sys
import uuid
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from .exceptions import ConfigurationError, MessageDecodeError, SerializationError, TaskException

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

#: The member name that marks a tagged value in the JSON form.
TAG_KEY = "__dtq__"
#: The member name that holds a tagged value's payload.
VALUE_KEY = "v"

_DATETIME_EXTRAS = frozenset({"zone", "tzname", "fold"})
_BIG_INT_BITS = 3_000  # above this, check that str() works (sys.get_int_max_str_digits())


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


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------


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


@functools.lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _encode_tz(tz: dt.tzinfo, what: str, out: dict[str, Any]) -> None:
    """Add what is needed besides the ISO text to restore ``tz`` exactly."""
    tz_type = type(tz)
    if tz_type is dt.timezone:
        offset = tz.utcoffset(None)
        if tz.tzname(None) != dt.timezone(offset).tzname(None):  # type: ignore[arg-type]
            out["tzname"] = tz.tzname(None)
        return
    if tz_type is zoneinfo.ZoneInfo:
        key = tz.key  # type: ignore[attr-defined]
        if key is None:
            raise _Refused(f"{what} with a ZoneInfo built from a file (no key) cannot be serialized as JSON")
        if key not in _known_zones():
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
            out_dt: dict[str, Any] = {TAG_KEY: "datetime", VALUE_KEY: obj.isoformat()}
            if obj.tzinfo is not None:
                _encode_tz(obj.tzinfo, "datetime", out_dt)
            if obj.fold:
                out_dt["fold"] = 1
            return out_dt
        if cls is dt.date:
            return {TAG_KEY: "date", VALUE_KEY: obj.isoformat()}
        if cls is dt.time:
            out_t: dict[str, Any] = {TAG_KEY: "time", VALUE_KEY: obj.isoformat()}
            if obj.tzinfo is not None:
                _encode_tz(obj.tzinfo, "time", out_t)
            if obj.fold:
                out_t["fold"] = 1
            return out_t
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
        key: Any = None
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
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MessageDecodeError(f"expected bytes to decode, got {type(data).__name__}")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(f"body is not valid UTF-8: {exc}") from None
        try:
            return json.loads(text, object_pairs_hook=_decode_object, parse_constant=_refuse_constant)
        except MessageDecodeError:
            raise
        except json.JSONDecodeError as exc:
            raise MessageDecodeError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise MessageDecodeError("body is nested too deeply to decode") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise MessageDecodeError(f"body cannot be decoded: {exc}") from None

    def from_plain(self, plain: Any) -> Any:
        """Return the value whose JSON-native structure (as :meth:`to_plain` returns it) is ``plain``.

        Raises MessageDecodeError when a tagged value in it is invalid.
        """
        try:
            return _from_plain(plain)
        except RecursionError:
            raise MessageDecodeError("value is nested too deeply to decode") from None


def _from_plain(plain: Any) -> Any:
    if isinstance(plain, list):
        return [_from_plain(item) for item in plain]
    if isinstance(plain, dict):
        # Inner objects first, as json.loads hands them to its object_pairs_hook.
        return _decode_object([(key, _from_plain(value)) for key, value in plain.items()])
    return plain


def _refuse_constant(name: str) -> Any:
    raise MessageDecodeError(f"body contains {name}, which is not valid JSON")


def _bad_tag(tag: Any, why: str) -> MessageDecodeError:
    return MessageDecodeError(f"bad tagged value {tag!r}: {why}")


def _decode_object(pairs: list[tuple[str, Any]]) -> Any:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MessageDecodeError("body contains an object with a duplicate key")
    if TAG_KEY not in obj:
        return obj
    tag = obj[TAG_KEY]
    if VALUE_KEY not in obj:
        raise _bad_tag(tag, f"missing {VALUE_KEY!r}")
    extras = obj.keys() - {TAG_KEY, VALUE_KEY}
    if extras and (tag not in ("datetime", "time") or not extras <= _DATETIME_EXTRAS):
        raise _bad_tag(tag, f"unexpected members {sorted(extras)}")
    decoder = _TAG_DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise MessageDecodeError(f"unknown tag {tag!r}")
    try:
        return decoder(obj[VALUE_KEY], obj)
    except MessageDecodeError:
        raise
    except (TypeError, ValueError, OverflowError, InvalidOperation, binascii.Error) as exc:
        raise _bad_tag(tag, str(exc) or type(exc).__name__) from None


def _need(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{what} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _decode_tz(obj: dict[str, Any], parsed: Any) -> Any:
    fold = obj.get("fold", 0)
    if fold not in (0, 1) or isinstance(fold, bool):
        raise ValueError("fold must be 0 or 1")
    if "zone" in obj:
        if "tzname" in obj:
            raise ValueError("zone and tzname are exclusive")
        key = obj["zone"]
        if not isinstance(key, str) or key not in _known_zones():
            raise ValueError(f"unknown time zone {key!r}")
        return parsed.replace(tzinfo=zoneinfo.ZoneInfo(key), fold=fold)
    if "tzname" in obj:
        name = _need(obj["tzname"], str, "tzname")
        offset = parsed.utcoffset()
        if offset is None:
            raise ValueError("tzname given without a UTC offset")
        parsed = parsed.replace(tzinfo=dt.timezone(offset, name))
    return parsed.replace(fold=fold) if fold else parsed


def _dec_datetime(v: Any, obj: dict[str, Any]) -> dt.datetime:
    return _decode_tz(obj, dt.datetime.fromisoformat(_need(v, str, "v")))


def _dec_time(v: Any, obj: dict[str, Any]) -> dt.time:
    return _decode_tz(obj, dt.time.fromisoformat(_need(v, str, "v")))


def _dec_date(v: Any, obj: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(_need(v, str, "v"))


def _dec_timedelta(v: Any, obj: dict[str, Any]) -> dt.timedelta:
    _need(v, list, "v")
    if len(v) != 3:
        raise ValueError("v must be [days, seconds, microseconds]")
    days, seconds, micros = (_need(x, int, "timedelta part") for x in v)
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _dec_dict(v: Any, obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _need(v, list, "v"):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError("v must be a list of [str, value] pairs")
        if item[0] in out:
            raise ValueError(f"duplicate key {item[0]!r}")
        out[item[0]] = item[1]
    return out


def _dec_uuid(v: Any, obj: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(_need(v, str, "v"))


def _dec_decimal(v: Any, obj: dict[str, Any]) -> Decimal:
    return Decimal(_need(v, str, "v"))


def _dec_bytes(v: Any, obj: dict[str, Any]) -> bytes:
    return base64.b64decode(_need(v, str, "v"), validate=True)


def _dec_exception(v: Any, obj: dict[str, Any]) -> BaseException:
    _need(v, dict, "v")
    if v.keys() != {"module", "qualname", "args", "error"}:
        raise ValueError("v must have exactly the members module, qualname, args and error")
    module = _need(v["module"], str, "module")
    qualname = _need(v["qualname"], str, "qualname")
    args = _need(v["args"], list, "args")
    error = _need(v["error"], str, "error")
    rebuilt = _rebuild_exception(module, qualname, args)
    if rebuilt is not None:
        return rebuilt
    return TaskException({"error": error, "type": f"{module}.{qualname}"})


def _rebuild_exception(module_name: str, qualname: str, args: list[Any]) -> BaseException | None:
    """``cls(*args)`` for the class ``module_name.qualname``, or None when that is not safe or fails.

    Only modules already imported are searched, through their namespaces (a module's ``__getattr__`` could
    import), and only subclasses of Exception are built: SystemExit, KeyboardInterrupt and the like are
    never re-created from data.
    """
    target: Any = sys.modules.get(module_name)
    if target is None:
        return None
    for part in qualname.split("."):
        try:
            namespace = vars(target)
        except TypeError:
            return None
        target = namespace.get(part)
        if target is None:
            return None
    if not isinstance(target, type) or not issubclass(target, Exception):
        return None
    try:
        rebuilt = target(*args)
    except Exception:  # an __init__ that does not take its own args back
        return None
    return rebuilt if isinstance(rebuilt, Exception) else None


_TAG_DECODERS: dict[str, Any] = {
    "tuple": lambda v, obj: tuple(_need(v, list, "v")),
    "set": lambda v, obj: set(_need(v, list, "v")),
    "frozenset": lambda v, obj: frozenset(_need(v, list, "v")),
    "bytes": _dec_bytes,
    "datetime": _dec_datetime,
    "date": _dec_date,
    "time": _dec_time,
    "timedelta": _dec_timedelta,
    "decimal": _dec_decimal,
    "uuid": _dec_uuid,
    "dict": _dec_dict,
    "exception": _dec_exception,
}


# --------------------------------------------------------------------------------------------------
# pickle
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

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
        decoded_args = _DEFAULT_JSON.from_plain(args)
    except MessageDecodeError:
        return None
    return _rebuild_exception(module, qualname, decoded_args)


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
