"""The tagged values of the JSON form, and reading JSON text back into values.

A tagged value is a JSON object with exactly two members, :data:`TAG_KEY` and :data:`VALUE_KEY` (aware
datetimes and times may carry ``"zone"``, ``"tzname"`` and ``"fold"`` as well); every other object is a plain
dict. Reading never imports anything: tags name a fixed set of types, a ``zone`` must be one of
:func:`zoneinfo.available_timezones`, and an exception's class is looked up among the modules already loaded
(:data:`sys.modules`), by their namespaces only (no module ``__getattr__`` runs).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import sys
import uuid
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ..exceptions import MessageDecodeError, TaskException

__all__ = ["TAG_KEY", "VALUE_KEY", "from_plain", "known_zones", "loads", "rebuild_exception"]

#: The member name that marks a tagged value in the JSON form.
TAG_KEY = "__dtq__"
#: The member name that holds a tagged value's payload.
VALUE_KEY = "v"

_DATETIME_EXTRAS = frozenset({"zone", "tzname", "fold"})


@functools.lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """The names of the time zones a tagged datetime or time may carry (read once)."""
    return frozenset(zoneinfo.available_timezones())


def loads(data: bytes) -> Any:
    """Return the value ``data`` holds as tagged JSON; raise MessageDecodeError saying why it is invalid."""
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


def from_plain(plain: Any) -> Any:
    """Return the value whose JSON-native structure (dicts, lists, str, numbers, None) is ``plain``.

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
        if not isinstance(key, str) or key not in known_zones():
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
    rebuilt = rebuild_exception(module, qualname, args)
    if rebuilt is not None:
        return rebuilt
    return TaskException({"error": error, "type": f"{module}.{qualname}"})


def rebuild_exception(module_name: str, qualname: str, args: list[Any]) -> BaseException | None:
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
