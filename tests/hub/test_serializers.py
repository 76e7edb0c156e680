"""Tests for django_tasks_q.serializers: exact JSON round trips, exceptions, path-precise refusals, pickle, lookup."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import sys
import types
import uuid
import zoneinfo
from collections import OrderedDict
from decimal import Decimal
from typing import NamedTuple

import pytest

from django_tasks_q.exceptions import (
    ConfigurationError,
    MessageDecodeError,
    SerializationError,
    TaskException,
)
from django_tasks_q.serializers import (
    TAG_KEY,
    BaseSerializer,
    JSONSerializer,
    PickleSerializer,
    check_roundtrip,
    decode_exception,
    encode_exception,
    get_serializer,
)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def roundtrip(value):
    s = JSONSerializer()
    return s.loads(s.dumps(value))


def assert_same(a, b):
    """Equal, and of exactly the same types all the way down (1 == 1.0 == True would hide bugs)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, set | frozenset):
        assert a == b
    elif isinstance(a, dt.datetime | dt.time):
        assert a == b
        assert a.tzinfo == b.tzinfo or a.tzinfo is b.tzinfo
        assert a.fold == b.fold
        assert a.isoformat() == b.isoformat()
        if a.tzinfo is not None:
            assert a.tzname() == b.tzname()
    elif isinstance(a, float) and math.isnan(a):
        raise AssertionError("NaN should have been refused")
    elif isinstance(a, Decimal):
        assert str(a) == str(b)  # same digits and exponent, not just numerically equal
    else:
        assert a == b


# ----------------------------------------------------------------------------- round trips

SCALARS = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**200),
    0.0,
    -0.0,
    1.5,
    1e-310,
    1.7976931348623157e308,
    0.1 + 0.2,
    "",
    "plain",
    "ünïcødé ✓ 𝄞 日本",
    "\x00\n\t\"'\\",
    [],
    {},
]

TAGGED = [
    (),
    (1,),
    (1, "a", None),
    set(),
    {1, 2, 3},
    {"a", 1, (2, 3)},
    frozenset(),
    frozenset({"x", frozenset({1})}),
    b"",
    b"\x00\xff binary \x80",
    bytes(range(256)),
    dt.datetime(2024, 2, 29, 12, 30, 45, 123456),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.UTC),
    dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3), "BRT")),
    dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.timezone(dt.timedelta(seconds=3661, microseconds=7))),
    dt.datetime(2024, 7, 1, 9, 0, tzinfo=PARIS),
    dt.datetime(2024, 1, 1, 9, 0, tzinfo=NEW_YORK),
    dt.datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK, fold=0),  # ambiguous wall time, first
    dt.datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK, fold=1),  # ... and second occurrence
    dt.datetime(2024, 11, 3, 1, 30, fold=1),  # naive with fold
    dt.date(2024, 2, 29),
    dt.date(1, 1, 1),
    dt.time(0, 0),
    dt.time(23, 59, 59, 999999),
    dt.time(8, 15, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.time(8, 15, tzinfo=PARIS),
    dt.timedelta(0),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    dt.timedelta(days=999999999, seconds=86399, microseconds=999999),
    Decimal("1.10"),
    Decimal("0.1000000000000000000000000000000000000001"),
    Decimal("-0"),
    Decimal("1E+3"),
    Decimal("123456789012345678901234567890.123456789"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    uuid.uuid4(),
]


def stable_id(value: object) -> str:
    """The test id of a value: its repr, or its type's name where the repr changes between processes (a set's
    order follows string hashing, a uuid4 is random); parallel test workers must collect the same ids."""
    return type(value).__name__ if isinstance(value, set | frozenset | uuid.UUID) else repr(value)


@pytest.mark.parametrize("value", SCALARS + TAGGED, ids=stable_id)
def test_every_supported_type_round_trips_exactly(value):
    result = roundtrip(value)
    if isinstance(value, Decimal) and value.is_nan():
        assert type(result) is Decimal and result.is_nan()
        return
    assert_same(value, result)


@pytest.mark.parametrize(
    "value", [v for v in TAGGED if not (isinstance(v, Decimal) and v.is_nan())], ids=stable_id
)
def test_tagged_types_round_trip_nested_in_tuples_lists_and_dicts(value):
    nested = {"outer": [(value, {"inner": (value,)})], "t": ((value,),)}
    assert_same(nested, roundtrip(nested))


def test_aware_datetime_keeps_zone_and_offset():
    value = dt.datetime(2024, 7, 1, 9, 0, tzinfo=PARIS)
    back = roundtrip(value)
    assert back.tzinfo is PARIS  # zoneinfo caches instances by key
    assert back.utcoffset() == dt.timedelta(hours=2)
    fixed = dt.datetime(2024, 7, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert roundtrip(fixed).utcoffset() == dt.timedelta(hours=-7)
    assert roundtrip(dt.datetime(2024, 7, 1, tzinfo=dt.UTC)).tzinfo is dt.UTC


def test_naive_datetime_stays_naive():
    value = dt.datetime(2024, 7, 1, 9, 0)
    back = roundtrip(value)
    assert back.tzinfo is None
    assert back == value


def test_ambiguous_time_keeps_fold():
    first = dt.datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK)
    second = first.replace(fold=1)
    assert roundtrip(first).utcoffset() == dt.timedelta(hours=-4)
    assert roundtrip(second).utcoffset() == dt.timedelta(hours=-5)


def test_decimal_precision_is_exact():
    value = Decimal("3.14159265358979323846264338327950288419716939937510")
    back = roundtrip(value)
    assert str(back) == str(value)
    assert back.as_tuple() == value.as_tuple()
    assert str(roundtrip(Decimal("2.50"))) == "2.50"  # trailing zeros kept


def test_dict_key_order_is_kept():
    value = {"z": 1, "a": 2, "m": 3}
    assert list(roundtrip(value)) == ["z", "a", "m"]


@pytest.mark.parametrize(
    "value",
    [
        {TAG_KEY: "tuple", "v": [1, 2]},
        {TAG_KEY: 1},
        {TAG_KEY: "dict", "v": [["a", 1]], "other": (1, 2)},
        {"nested": {TAG_KEY: {TAG_KEY: "x"}}},
        [{TAG_KEY: "set", "v": []}],
        {"v": 1, TAG_KEY: "uuid"},
    ],
    ids=repr,
)
def test_dict_colliding_with_the_tag_marker_round_trips(value):
    back = roundtrip(value)
    assert_same(value, back)


def test_output_is_compact_utf8_without_ascii_escapes():
    data = JSONSerializer().dumps({"a": [1, 2], "b": "é✓"})
    assert data == '{"a":[1,2],"b":"é✓"}'.encode()


def test_set_encoding_is_deterministic():
    s = JSONSerializer()
    assert s.dumps({3, 1, 2, "b", "a"}) == s.dumps({"a", 2, "b", 1, 3})


def test_mutating_a_container_does_not_matter_for_shared_non_cyclic_references():
    shared = [1, 2]
    value = [shared, shared, {"a": shared}]
    assert roundtrip(value) == value


# ----------------------------------------------------------------------------- refusals


class Foo:
    pass


class Color(enum.IntEnum):
    RED = 1


class MyStr(str):
    pass


class MyDict(dict):
    pass


class Pair(NamedTuple):
    a: int
    b: int


class FakeTz(dt.tzinfo):
    def utcoffset(self, d):
        return dt.timedelta(hours=1)

    def dst(self, d):
        return dt.timedelta(0)

    def tzname(self, d):
        return "FAKE"


cyclic_list: list = [1]
cyclic_list.append(cyclic_list)
cyclic_dict: dict = {}
cyclic_dict["me"] = cyclic_dict

BAD_VALUES = [
    (
        {"args": [1, {"when": Foo()}]},
        "",
        "args[1]['when']: object of type tests.hub.test_serializers.Foo cannot be serialized as JSON",
        "args",
    ),
    ({"kwargs": {"d": {3: "x"}}}, "", "kwargs['d']: dict key 3 is not a string", "kwargs"),
    ({"kwargs": {"d": {(1, 2): "x"}}}, "", "kwargs['d']: dict key (1, 2) is not a string", "kwargs"),
    ({"kwargs": {"d": {None: "x"}}}, "", "kwargs['d']: dict key None is not a string", "kwargs"),
    (
        {"args": [float("nan")]},
        "",
        "args[0]: float nan cannot be serialized as JSON (JSON has no NaN or Infinity)",
        "args",
    ),
    (
        [1.0, (2, float("inf"))],
        "value",
        "value[1][1]: float inf cannot be serialized as JSON (JSON has no NaN or Infinity)",
        "value",
    ),
    (
        {"x": -float("inf")},
        "result",
        "result['x']: float -inf cannot be serialized as JSON (JSON has no NaN or Infinity)",
        "result",
    ),
    (
        {"args": [Color.RED]},
        "",
        "args[0]: object of type tests.hub.test_serializers.Color cannot be serialized as JSON "
        "(it is a subclass of int and would come back as a plain int)",
        "args",
    ),
    (
        {"kwargs": {"s": MyStr("x")}},
        "",
        "kwargs['s']: object of type tests.hub.test_serializers.MyStr cannot be serialized as JSON "
        "(it is a subclass of str and would come back as a plain str)",
        "kwargs",
    ),
    (
        {"kwargs": {"o": OrderedDict(a=1)}},
        "",
        "kwargs['o']: object of type collections.OrderedDict cannot be serialized as JSON "
        "(it is a subclass of dict and would come back as a plain dict)",
        "kwargs",
    ),
    (
        {"kwargs": {"o": MyDict(a=1)}},
        "",
        "kwargs['o']: object of type tests.hub.test_serializers.MyDict cannot be serialized as JSON "
        "(it is a subclass of dict and would come back as a plain dict)",
        "kwargs",
    ),
    (
        {"args": [{MyStr("k"): 1}]},
        "",
        "args[0]: dict key 'k' is a tests.hub.test_serializers.MyStr, not a plain str",
        "args",
    ),
    (
        {"args": [Pair(1, 2)]},
        "",
        "args[0]: object of type tests.hub.test_serializers.Pair cannot be serialized as JSON "
        "(it is a subclass of tuple and would come back as a plain tuple)",
        "args",
    ),
    (
        {"args": [bytearray(b"x")]},
        "",
        "args[0]: object of type bytearray cannot be serialized as JSON",
        "args",
    ),
    (
        {"args": [{Foo}]},
        "",
        "args[0][<set element>]: object of type type cannot be serialized as JSON",
        "args",
    ),
    (
        {"args": [lambda: 1]},
        "",
        "args[0]: object of type function cannot be serialized as JSON",
        "args",
    ),
    (
        {"args": [dt.datetime(2024, 1, 1, tzinfo=FakeTz())]},
        "",
        "args[0]: datetime with tzinfo of type tests.hub.test_serializers.FakeTz cannot be serialized as JSON "
        "(use zoneinfo.ZoneInfo or datetime.timezone)",
        "args",
    ),
    (
        {"args": ["ok", "bad \ud800 surrogate"]},
        "",
        "args[1]: string contains a lone surrogate at index 4 and is not valid UTF-8",
        "args",
    ),
    ({"chord": cyclic_list}, "", "chord[1]: circular reference: this list contains itself", "chord"),
    ({"extra": cyclic_dict}, "", "extra['me']: circular reference: this dict contains itself", "extra"),
    (
        Foo(),
        "value",
        "value: object of type tests.hub.test_serializers.Foo cannot be serialized as JSON",
        "value",
    ),
    (
        {"a": {"b": [(1, 2, {"c": Foo()})]}},
        "",
        "a['b'][0][2]['c']: object of type tests.hub.test_serializers.Foo cannot be serialized as JSON",
        "a",
    ),
    (
        {"args": [10**5000]},
        "",
        "args[0]: integer with 16610 bits has more digits than Python converts to text",
        "args",
    ),
]


@pytest.mark.parametrize(
    ("value", "where", "message", "field"), BAD_VALUES, ids=[row[2][:60] for row in BAD_VALUES]
)
def test_unserializable_values_name_their_path(value, where, message, field):
    with pytest.raises(SerializationError) as info:
        JSONSerializer().dumps(value, where=where)
    assert str(info.value) == message
    assert info.value.field == field


def test_check_roundtrip_helper():
    check_roundtrip({"ok": (1, dt.date(2024, 1, 1))}, "kwargs")
    with pytest.raises(SerializationError, match=r"^kwargs\['x'\]\[0\]: object of type"):
        check_roundtrip({"x": [Foo()]}, "kwargs")


def test_too_deep_nesting_is_a_serialization_error():
    value: list = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(SerializationError, match="nested too deeply"):
        JSONSerializer().dumps(value)


# ----------------------------------------------------------------------------- decoding bad input


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"__dtq__":"nope","v":1}', "unknown tag 'nope'"),
        (b'{"__dtq__":"tuple"}', "missing 'v'"),
        (b'{"__dtq__":"tuple","v":1}', "bad tagged value 'tuple'"),
        (b'{"__dtq__":"tuple","v":[],"x":1}', "unexpected members"),
        (b'{"__dtq__":"set","v":[[1]]}', "bad tagged value 'set'"),
        (b'{"__dtq__":"bytes","v":"***"}', "bad tagged value 'bytes'"),
        (b'{"__dtq__":"datetime","v":"yesterday"}', "bad tagged value 'datetime'"),
        (b'{"__dtq__":"datetime","v":"2024-01-01T00:00:00","zone":"Mars/Olympus"}', "unknown time zone"),
        (b'{"__dtq__":"datetime","v":"2024-01-01T00:00:00","zone":"../../etc/passwd"}', "unknown time zone"),
        (b'{"__dtq__":"datetime","v":"2024-01-01T00:00:00","fold":7}', "fold must be 0 or 1"),
        (b'{"__dtq__":"decimal","v":"abc"}', "bad tagged value 'decimal'"),
        (b'{"__dtq__":"uuid","v":"abc"}', "bad tagged value 'uuid'"),
        (b'{"__dtq__":"timedelta","v":[1,2]}', "bad tagged value 'timedelta'"),
        (b'{"__dtq__":"timedelta","v":[1e400,0,0]}', "bad tagged value 'timedelta'"),
        (b'{"__dtq__":"dict","v":[[1,2]]}', "bad tagged value 'dict'"),
        (b'{"__dtq__":"os.system","v":"echo hi"}', "unknown tag 'os.system'"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1" * 5000, "cannot be decoded"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_json_is_a_decode_error_with_a_reason(data, fragment):
    with pytest.raises(MessageDecodeError) as info:
        JSONSerializer().loads(data)
    assert fragment in str(info.value)
    assert info.value.reason == "decode_error"


def test_loads_refuses_non_bytes():
    with pytest.raises(MessageDecodeError, match="expected bytes"):
        JSONSerializer().loads("[]")  # type: ignore[arg-type]


def test_tag_objects_are_plain_data_in_the_json():
    data = JSONSerializer().dumps((1, dt.date(2024, 5, 6)))
    assert json.loads(data) == {TAG_KEY: "tuple", "v": [1, {TAG_KEY: "date", "v": "2024-05-06"}]}


# ----------------------------------------------------------------------------- exceptions


class QuotaError(Exception):
    """A user-defined exception at module level: rebuilt from its class path and args."""


class Outer:
    class InnerError(LookupError):
        """A nested class: its qualified name is Outer.InnerError."""


class TwoPartError(Exception):
    """Its args (one formatted text) do not fit its __init__ (two parameters): it cannot be rebuilt."""

    def __init__(self, used, limit):
        super().__init__(f"{used} of {limit}")


class StopTheWorld(BaseException):
    """A BaseException that is not an Exception: never re-created from data."""


def exception_roundtrip(exc):
    return roundtrip(exc)


def assert_rebuilt(original, back):
    assert type(back) is type(original)
    assert_same(tuple(original.args), tuple(back.args))


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("x"),
        ValueError(),
        KeyError(("a", 1)),
        ZeroDivisionError("division by zero"),
        FileNotFoundError(2, "No such file"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        RuntimeError(dt.datetime(2024, 2, 29, 12, 30, tzinfo=PARIS), Decimal("1.10"), {"k": [1, (2, 3)]}),
        QuotaError(5, 3),
        Outer.InnerError("missing"),
        zoneinfo.ZoneInfoNotFoundError("No time zone found with key Mars/Olympus"),
    ],
    ids=repr,
)
def test_exceptions_round_trip_with_their_class_and_args(exc):
    assert_rebuilt(exc, exception_roundtrip(exc))


def test_exceptions_round_trip_nested_in_values_and_in_each_others_args():
    value = {"errors": [ValueError(KeyError("inner")), None], "pair": (QuotaError("q"), 1)}
    back = roundtrip(value)
    outer = back["errors"][0]
    assert type(outer) is ValueError and type(outer.args[0]) is KeyError and outer.args[0].args == ("inner",)
    assert back["errors"][1] is None
    assert type(back["pair"]) is tuple and type(back["pair"][0]) is QuotaError and back["pair"][1] == 1


def test_the_json_names_the_class_and_holds_the_args_and_the_repr():
    data = json.loads(JSONSerializer().dumps(QuotaError((1, 2))))
    assert data == {
        TAG_KEY: "exception",
        "v": {
            "module": "tests.hub.test_serializers",
            "qualname": "QuotaError",
            "args": [{TAG_KEY: "tuple", "v": [1, 2]}],
            "error": "QuotaError((1, 2))",
        },
    }


def test_an_argument_json_cannot_carry_falls_back_to_its_repr():
    back = exception_roundtrip(ValueError(Foo(), "ok", "bad \ud800"))
    assert type(back) is ValueError
    assert back.args[0].startswith("<tests.hub.test_serializers.Foo object at 0x")
    assert back.args[1:] == ("ok", "'bad \\ud800'")


def test_an_exception_that_contains_itself_is_encoded_without_recursing():
    exc = ValueError("loop")
    exc.args = (exc, 1)
    back = exception_roundtrip(exc)
    assert type(back) is ValueError
    assert back.args == ("ValueError(ValueError(...), 1)", 1)


def test_a_task_exception_round_trips_with_its_metadata():
    metadata = {"error": "ValueError('x')", "traceback": "Traceback ...", "task_id": "abc", "retries": 0}
    back = exception_roundtrip(TaskException(metadata))
    assert type(back) is TaskException
    assert back.metadata == metadata
    assert repr(back) == "ValueError('x')"


def custom_fallback(back, error, type_path):
    assert type(back) is TaskException
    assert repr(back) == error and back.error == error
    assert back.metadata == {"error": error, "type": type_path}


def test_an_exception_whose_init_does_not_take_its_args_decodes_to_task_exception():
    back = exception_roundtrip(TwoPartError(5, 3))
    custom_fallback(back, "TwoPartError('5 of 3')", "tests.hub.test_serializers.TwoPartError")


def test_an_exception_class_defined_in_a_function_decodes_to_task_exception():
    class LocalError(Exception):
        pass

    back = exception_roundtrip(LocalError("here"))
    custom_fallback(
        back,
        "LocalError('here')",
        "tests.hub.test_serializers.test_an_exception_class_defined_in_a_function_decodes_to_task_exception"
        ".<locals>.LocalError",
    )


@pytest.mark.parametrize(
    "exc",
    [SystemExit(3), KeyboardInterrupt(), GeneratorExit("closing"), StopTheWorld("now")],
    ids=lambda e: type(e).__name__,
)
def test_base_exceptions_that_are_not_exceptions_decode_to_task_exception(exc):
    back = exception_roundtrip(exc)
    cls = type(exc)
    custom_fallback(back, repr(exc), f"{cls.__module__}.{cls.__qualname__}")
    assert isinstance(back, Exception)  # raising it cannot stop a worker the way SystemExit would


def tagged_exception(module, qualname, args=(), error="Boom('planted')"):
    value = {"module": module, "qualname": qualname, "args": list(args), "error": error}
    return json.dumps({TAG_KEY: "exception", "v": value}).encode()


def test_a_class_in_a_module_not_imported_decodes_to_task_exception_without_importing_it(
    tmp_path, monkeypatch
):
    # An importable module whose import leaves a marker file: decoding must not import it.
    name = f"tests_never_imported_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\nclass Boom(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    back = JSONSerializer().loads(tagged_exception(name, "Boom", ["planted"]))
    custom_fallback(back, "Boom('planted')", f"{name}.Boom")
    assert decode_exception(json.loads(tagged_exception(name, "Boom"))) is None
    assert name not in sys.modules
    assert not marker.exists()


def test_a_class_is_looked_up_in_the_modules_namespace_only(monkeypatch):
    looked_up = []
    lazy = types.ModuleType("tests_lazy_errors")

    def lazy_getattr(name):  # a lazy module would import something here
        looked_up.append(name)
        return QuotaError

    lazy.__getattr__ = lazy_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "tests_lazy_errors", lazy)
    back = JSONSerializer().loads(
        tagged_exception("tests_lazy_errors", "QuotaError", ["q"], "QuotaError('q')")
    )
    custom_fallback(back, "QuotaError('q')", "tests_lazy_errors.QuotaError")
    assert looked_up == []


@pytest.mark.parametrize(
    ("module", "qualname"),
    [
        ("os", "system"),  # a function, not a class
        ("builtins", "dict"),  # a class, not an exception
        ("builtins", "SystemExit"),
        ("tests.hub.test_serializers", "QuotaError.mro"),
        ("tests.hub.test_serializers", "Nope"),
        ("tests.hub.test_serializers", ""),
        ("", "ValueError"),
    ],
)
def test_names_that_are_not_exception_classes_decode_to_task_exception(module, qualname, monkeypatch):
    called = []
    monkeypatch.setattr("os.system", lambda *a: called.append(a))
    back = JSONSerializer().loads(tagged_exception(module, qualname, ["echo owned"], "X('echo owned')"))
    custom_fallback(back, "X('echo owned')", f"{module}.{qualname}")
    assert called == []


@pytest.mark.parametrize(
    "v",
    [
        "ValueError",
        {"module": "builtins", "qualname": "ValueError", "args": []},
        {"module": "builtins", "qualname": "ValueError", "args": [], "error": "e", "extra": 1},
        {"module": 1, "qualname": "ValueError", "args": [], "error": "e"},
        {"module": "builtins", "qualname": "ValueError", "args": "x", "error": "e"},
        {"module": "builtins", "qualname": "ValueError", "args": [], "error": None},
    ],
    ids=repr,
)
def test_a_malformed_tagged_exception_is_a_decode_error(v):
    with pytest.raises(MessageDecodeError, match="bad tagged value 'exception'"):
        JSONSerializer().loads(json.dumps({TAG_KEY: "exception", "v": v}).encode())


def test_encode_exception_is_plain_data_that_every_serializer_carries():
    plain = encode_exception(RuntimeError((1, 2), Foo()))
    assert json.loads(json.dumps(plain)) == plain  # JSON-native: dicts, lists, strings, numbers
    for serializer in (JSONSerializer(), PickleSerializer()):
        carried = serializer.loads(serializer.dumps({"exception": plain}))["exception"]
        assert carried == plain
        back = decode_exception(carried)
        assert type(back) is RuntimeError
        assert back.args[0] == (1, 2) and back.args[1].startswith("<tests.hub.test_serializers.Foo object")


@pytest.mark.parametrize(
    "plain",
    [
        None,
        "ValueError('x')",
        {TAG_KEY: "tuple", "v": []},
        {
            TAG_KEY: "exception",
            "v": {"module": "builtins", "qualname": "ValueError", "args": "x", "error": ""},
        },
        {
            TAG_KEY: "exception",
            "v": {"module": "builtins", "qualname": "ValueError", "args": [{TAG_KEY: "?"}]},
        },
        encode_exception(TwoPartError(1, 2)),
        encode_exception(SystemExit(1)),
    ],
    ids=repr,
)
def test_decode_exception_returns_none_for_what_it_cannot_rebuild(plain):
    assert decode_exception(plain) is None


def test_check_roundtrip_accepts_exceptions():
    check_roundtrip({"error": ValueError(Foo())}, "kwargs")  # the argument falls back to its repr


# ----------------------------------------------------------------------------- pickle


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def test_pickle_round_trips_arbitrary_objects():
    s = PickleSerializer()
    value = {"p": Point(1, 2), "dq": OrderedDict(a=1), "n": float("nan")}
    back = s.loads(s.dumps(value))
    assert back["p"] == Point(1, 2)
    assert type(back["dq"]) is OrderedDict
    assert math.isnan(back["n"])
    assert s.safe_without_signing is False


def test_pickle_errors():
    s = PickleSerializer()
    with pytest.raises(SerializationError, match=r"^result: cannot be pickled") as info:
        s.dumps(lambda: 1, where="result")
    assert info.value.field == "result"
    with pytest.raises(MessageDecodeError, match="cannot be unpickled"):
        s.loads(b"not a pickle")


# ----------------------------------------------------------------------------- get_serializer


def test_get_serializer_by_name_and_instance():
    assert isinstance(get_serializer("json"), JSONSerializer)
    assert isinstance(get_serializer("JSON"), JSONSerializer)
    assert isinstance(get_serializer("pickle"), PickleSerializer)
    custom = JSONSerializer()
    assert get_serializer(custom) is custom

    class Duck:
        def dumps(self, obj):
            return b""

        def loads(self, data):
            return None

    duck = Duck()
    assert get_serializer(duck) is duck
    assert JSONSerializer.safe_without_signing is True
    assert BaseSerializer.safe_without_signing is False


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("yaml", "unknown serializer 'yaml'"),
        ("myproject.serializers.Fast", "unknown serializer 'myproject.serializers.Fast'"),
        (42, "unknown serializer 42"),
        (JSONSerializer, "is a class; pass an instance"),
        (None, "unknown serializer None"),
    ],
)
def test_get_serializer_refuses_unknown_specs(spec, fragment):
    with pytest.raises(ConfigurationError) as info:
        get_serializer(spec)
    assert fragment in str(info.value)
