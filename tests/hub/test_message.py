"""Tests for django_tasks_q.messages: the envelope, the frame, signing, limits, and refusing bad bytes.

Encode-time refusals name the field; decoding checks size → signature → decode, each refusal with its reason;
an unserializable result is a clear error; JSON is the default, signed frames are verified before anything
else and pickle is never loaded unsigned; nothing named in a payload is imported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import importlib.abc
import itertools
import json
import os
import pickle
import random
import subprocess
import sys
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from decimal import Decimal

import pytest

from django_tasks_q.exceptions import (
    BadSignature,
    ConfigurationError,
    InvalidEta,
    InvalidMessage,
    MessageDecodeError,
    MessageTooLarge,
    SerializationError,
    TaskException,
)
from django_tasks_q.messages import codec as codec_module
from django_tasks_q.messages import envelope as envelope_module
from django_tasks_q.messages.codec import (
    DEFAULT_MAX_SIZE,
    FLAG_COMPRESSED,
    FLAG_SIGNED,
    FLAG_VALUE,
    FRAME_VERSION,
    HEADER_SIZE,
    MAGIC,
    SERIALIZER_CUSTOM,
    SERIALIZER_JSON,
    SERIALIZER_PICKLE,
    MessageCodec,
    describe_frame,
    peek_raw,
)
from django_tasks_q.messages.envelope import Message
from django_tasks_q.messages.signing import (
    SIGNATURE_SIZE,
    SIGNING_SALT,
    derive_signing_key,
    derive_signing_keys,
    signing_keys_from_settings,
)
from django_tasks_q.serializers import BaseSerializer, JSONSerializer

KEY = derive_signing_key("test-secret")
OLD_KEY = derive_signing_key("old-secret")
OTHER_KEY = derive_signing_key("someone-else")
T0 = dt.datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)


def make_frame(body: bytes, flags: int, key: bytes | None = None) -> bytes:
    """Build a frame by hand, exactly as the module docstring documents the layout."""
    header = MAGIC + bytes((FRAME_VERSION, flags))
    if key is None:
        return header + body
    return header + hmac.new(key, header + body, hashlib.sha256).digest() + body


def envelope(**fields) -> bytes:
    data = {"version": 1, "id": "abc", "name": "app.tasks.add", "args": [], "kwargs": {}}
    data.update(fields)
    return json.dumps(data).encode()


def full_message() -> Message:
    last = Message(name="app.tasks.notify", args=("done",), kwargs={"when": T0})
    middle = Message(name="app.tasks.render", args=((1, 2), {3, 4}), on_complete=last, priority=-5)
    on_error = Message(name="app.tasks.cleanup", kwargs={"why": b"\x00bytes"})
    return Message(
        name="app.tasks.fetch",
        args=(1, "two", 3.5, None, True, (4, 5), [6, {"seven": 7}], Decimal("8.80"), uuid.UUID(int=9)),
        kwargs={
            "url": "https://example.com/ü",
            "at": dt.datetime(2024, 5, 6, 7, 8, 9),
            "d": dt.date(2024, 1, 1),
        },
        eta=T0,
        priority=10,
        retries=3,
        retry_delay=2.5,
        retry_backoff=2.0,
        expires=T0 + dt.timedelta(hours=1),
        timeout=30.0,
        on_complete=middle,
        on_error=on_error,
        chord={"id": "chord-1", "size": 3, "callback": None},
        enqueued_at=T0 - dt.timedelta(seconds=1),
        extra={"context": True, "lock": ("a", "b")},
    )


# ----------------------------------------------------------------------------- the envelope


def test_message_defaults():
    a, b = Message(name="x"), Message(name="x")
    assert len(a.id) == 32 and uuid.UUID(hex=a.id).version == 4
    assert a.id != b.id
    assert (a.args, a.kwargs, a.extra, a.retries, a.retry_delay, a.retry_backoff, a.version) == (
        (),
        {},
        {},
        0,
        0,
        1.0,
        1,
    )
    assert a.eta is a.expires is a.on_complete is a.on_error is a.chord is a.enqueued_at is None
    assert not hasattr(a, "__dict__")  # slots


def test_to_dict_is_plain_data_and_from_dict_rebuilds_it():
    msg = full_message()
    plain = msg.to_dict()
    assert plain["eta"] == "2030-01-02T03:04:05.600000+00:00"
    assert isinstance(plain["args"], list)
    assert plain["on_complete"]["on_complete"]["name"] == "app.tasks.notify"
    assert plain["version"] == 1
    assert Message.from_dict(plain) == msg


def test_to_dict_writes_datetimes_in_utc():
    paris = dt.timezone(dt.timedelta(hours=2))
    msg = Message(name="x", eta=dt.datetime(2030, 1, 1, 12, tzinfo=paris))
    assert msg.to_dict()["eta"] == "2030-01-01T10:00:00+00:00"
    assert Message.from_dict(msg.to_dict()).eta.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"eta": dt.datetime(2030, 1, 1)}, "eta must be timezone-aware, got naive 2030-01-01T00:00:00"),
        ({"expires": "tomorrow"}, "expires must be a datetime or None, got str"),
        ({"enqueued_at": dt.date(2030, 1, 1)}, "enqueued_at must be a datetime or None, got date"),
    ],
)
def test_to_dict_refuses_naive_or_wrong_datetimes(fields, message):
    with pytest.raises(InvalidEta) as info:
        Message(name="x", **fields).to_dict()
    assert str(info.value) == message
    assert info.value.field == next(iter(fields))


def test_to_dict_refuses_a_circular_pipeline():
    a = Message(name="a")
    b = Message(name="b", on_complete=a)
    a.on_complete = b
    with pytest.raises(SerializationError, match="pipeline is circular"):
        a.to_dict()


def test_shared_step_is_not_circular():
    shared = Message(name="shared")
    msg = Message(name="a", on_complete=shared, on_error=shared)
    assert Message.from_dict(msg.to_dict()) == msg


VALID = {"version": 1, "id": "abc", "name": "app.tasks.add"}

BAD_DICTS = [
    ([], "message must be a mapping, got list"),
    ("x", "message must be a mapping, got str"),
    ({"id": "a", "name": "n"}, "version is missing (missing field 'version')"),
    ({**VALID, "version": 2}, "unknown message version 2 in message (this code reads version 1)"),
    ({**VALID, "version": "1"}, "version must be an int, got str"),
    ({**VALID, "version": True}, "version must be an int, got bool"),
    ({"version": 1, "id": "abc"}, "name is missing (missing field 'name')"),
    ({**VALID, "name": 5}, "name must be a str, got int"),
    ({**VALID, "name": None}, "name must be a str, got None"),
    ({**VALID, "name": ""}, "name must not be empty"),
    ({"version": 1, "name": "n"}, "id is missing (missing field 'id')"),
    ({**VALID, "args": "1, 2"}, "args must be a list, got str"),
    ({**VALID, "args": {"a": 1}}, "args must be a list, got dict"),
    ({**VALID, "kwargs": [1]}, "kwargs must be a dict, got list"),
    ({**VALID, "kwargs": {1: 2}}, "kwargs keys must be str, got int 1"),
    ({**VALID, "priority": "high"}, "priority must be an int or None, got str"),
    ({**VALID, "priority": 1.5}, "priority must be an int or None, got float"),
    ({**VALID, "retries": -1}, "retries must not be negative, got -1"),
    ({**VALID, "retries": None}, "retries must be an int, got None"),
    ({**VALID, "retry_delay": "5"}, "retry_delay must be a number, got str"),
    ({**VALID, "retry_delay": float("nan")}, "retry_delay must be a finite, non-negative number, got nan"),
    ({**VALID, "retry_backoff": -2}, "retry_backoff must be a finite, non-negative number, got -2"),
    ({**VALID, "timeout": True}, "timeout must be a number or None, got bool"),
    ({**VALID, "eta": 12345}, "eta must be an ISO 8601 string or None, got int"),
    ({**VALID, "eta": "soon"}, "eta is not an ISO 8601 datetime: 'soon'"),
    ({**VALID, "eta": "2030-01-01T00:00:00"}, "eta must be timezone-aware, got '2030-01-01T00:00:00'"),
    ({**VALID, "expires": "2030-01-01"}, "expires must be timezone-aware, got '2030-01-01'"),
    ({**VALID, "chord": [1]}, "chord must be a dict or None, got list"),
    ({**VALID, "extra": "x"}, "extra must be a dict, got str"),
    ({**VALID, "extra": {"expires_in": "30"}}, "extra['expires_in'] must be a finite, non-negative number, got '30'"),
    ({**VALID, "extra": {"expires_in": -1}}, "extra['expires_in'] must be a finite, non-negative number, got -1"),
    ({**VALID, "evil": 1, "also": 2}, "message has unknown field(s) 'also', 'evil'"),
    ({**VALID, "on_complete": "next"}, "on_complete must be a mapping, got str"),
    (
        {**VALID, "on_complete": {"version": 1, "id": "b"}},
        "on_complete.name is missing (missing field 'name')",
    ),
    (
        {**VALID, "on_error": {**VALID, "on_complete": {**VALID, "args": 3}}},
        "on_error.on_complete.args must be a list, got int",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_DICTS, ids=[row[1][:50] for row in BAD_DICTS])
def test_from_dict_names_what_is_wrong(data, message):
    with pytest.raises(MessageDecodeError) as info:
        Message.from_dict(data)
    assert str(info.value) == message
    assert info.value.reason == "decode_error"


def test_a_relative_expiry_in_extra_must_be_seconds():
    plain = Message(name="a", extra={"expires_in": 30}).to_dict()  # every field: the fast path reads it
    assert Message.from_dict(plain).extra == {"expires_in": 30}
    for bad in ("30", -1, float("inf"), True, None):
        with pytest.raises(MessageDecodeError, match=r"^extra\['expires_in'\] must be a finite, non-negative number"):
            Message.from_dict({**plain, "extra": {"expires_in": bad}})


def test_from_dict_fills_defaults_for_optional_fields():
    msg = Message.from_dict(dict(VALID))
    assert msg == Message(id="abc", name="app.tasks.add")


# ----------------------------------------------------------------------------- codec round trips


@pytest.mark.parametrize(
    "codec",
    [
        MessageCodec(),
        MessageCodec(signing_key=KEY),
        MessageCodec(signing_key=KEY, compression=True, compress_threshold=0),
        MessageCodec("pickle", signing_key=KEY),
        MessageCodec("pickle", signing_key=KEY, compression=9, compress_threshold=0),
    ],
    ids=["json", "json-signed", "json-signed-zlib", "pickle-signed", "pickle-signed-zlib"],
)
def test_codec_round_trip_with_nested_pipeline(codec):
    msg = full_message()
    data = codec.encode(msg)
    assert isinstance(data, bytes)
    back = codec.decode(data)
    assert back == msg
    assert back.on_complete.on_complete == msg.on_complete.on_complete
    assert back.on_complete.args[1] == {3, 4}
    assert back.on_error.kwargs["why"] == b"\x00bytes"
    assert back.kwargs["at"].tzinfo is None
    assert str(back.args[7]) == "8.80"


def test_frame_layout_is_as_documented():
    body = JSONSerializer().dumps(Message(id="i", name="n").to_dict(), where="")
    unsigned = MessageCodec().encode(Message(id="i", name="n"))
    assert unsigned == MAGIC + bytes((1, SERIALIZER_JSON)) + body
    signed = MessageCodec(signing_key=KEY).encode(Message(id="i", name="n"))
    assert signed[:5] == MAGIC + bytes((1, SERIALIZER_JSON | FLAG_SIGNED))
    assert signed[5 : 5 + SIGNATURE_SIZE] == hmac.new(KEY, signed[:5] + body, hashlib.sha256).digest()
    assert signed[5 + SIGNATURE_SIZE :] == body
    assert HEADER_SIZE == 5 and SIGNATURE_SIZE == 32
    value = MessageCodec(signing_key=KEY).encode_value([1])
    assert value[4] == SERIALIZER_JSON | FLAG_SIGNED | FLAG_VALUE
    pickled = MessageCodec("pickle", signing_key=KEY).encode(Message(name="n"))
    assert pickled[4] == SERIALIZER_PICKLE | FLAG_SIGNED


def test_the_json_body_is_readable():
    data = MessageCodec().encode(Message(id="i", name="app.t", args=(1, (2,)), kwargs={"k": "v"}))
    body = json.loads(data[HEADER_SIZE:])
    assert body["name"] == "app.t"
    assert body["args"] == [1, {"__dtq__": "tuple", "v": [2]}]
    assert body["kwargs"] == {"k": "v"}


def test_values_round_trip_and_are_not_messages():
    codec = MessageCodec(signing_key=KEY)
    value = {"result": (1, 2), "when": T0}
    data = codec.encode_value(value)
    assert codec.decode_value(data) == value
    with pytest.raises(MessageDecodeError, match="frame holds a value, not a task message"):
        codec.decode(data)
    with pytest.raises(MessageDecodeError, match="frame holds a task message, not a value"):
        codec.decode_value(codec.encode(Message(name="x")))
    # a signed result shaped like an envelope still cannot be replayed as a task (the kind bit is signed)
    replay = codec.encode_value(Message(name="os.system", args=("rm -rf /",)).to_dict())
    with pytest.raises(MessageDecodeError):
        codec.decode(replay)
    forged = bytearray(replay)
    forged[4] &= ~FLAG_VALUE
    with pytest.raises(BadSignature):
        codec.decode(bytes(forged))


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no")


def test_unserializable_result_is_a_clear_error():
    """The hub turns this into a failed result; here the error names the value."""
    with pytest.raises(SerializationError) as info:
        MessageCodec().encode_value({"rows": [object()]}, where="result")
    assert str(info.value) == "result['rows'][0]: object of type object cannot be serialized as JSON"
    assert info.value.field == "result"
    with pytest.raises(SerializationError, match=r"^result: cannot be pickled"):
        MessageCodec("pickle", signing_key=KEY).encode_value(Unpicklable(), where="result")


# ----------------------------------------------------------------------------- encode-time refusals


class Foo:
    pass


@pytest.mark.parametrize(
    ("msg", "exc_type", "message", "field"),
    [
        (
            Message(name="t", args=(1, {"when": Foo()})),
            SerializationError,
            "args[1]['when']: object of type tests.hub.test_message.Foo cannot be serialized as JSON",
            "args",
        ),
        (
            Message(name="t", kwargs={"d": {3: "x"}}),
            SerializationError,
            "kwargs['d']: dict key 3 is not a string",
            "kwargs",
        ),
        (
            Message(name="t", kwargs={"x": float("nan")}),
            SerializationError,
            "kwargs['x']: float nan cannot be serialized as JSON (JSON has no NaN or Infinity)",
            "kwargs",
        ),
        (
            Message(name="t", extra={"lock": Foo}),
            SerializationError,
            "extra['lock']: object of type type cannot be serialized as JSON",
            "extra",
        ),
        (
            Message(name="t", on_complete=Message(name="u", args=(Foo(),))),
            SerializationError,
            "on_complete['args'][0]: object of type tests.hub.test_message.Foo cannot be serialized as JSON",
            "on_complete",
        ),
        (
            Message(name="t", kwargs={1: 2}),
            SerializationError,
            "kwargs keys must be str, got int 1",
            "kwargs",
        ),
        (Message(name=5), SerializationError, "name must be a str, got int", "name"),  # type: ignore[arg-type]
        (
            Message(name="t", priority="high"),
            SerializationError,
            "priority must be an int or None, got str",
            "priority",
        ),  # type: ignore[arg-type]
        (
            Message(name="t", version=2),
            SerializationError,
            "unknown message version 2 in message (this code reads version 1)",
            "version",
        ),
        (
            Message(name="t", on_complete=Message(name="")),
            SerializationError,
            "on_complete.name must not be empty",
            "on_complete",
        ),
        (
            Message(name="t", eta=dt.datetime(2030, 1, 1)),
            InvalidEta,
            "eta must be timezone-aware, got naive 2030-01-01T00:00:00",
            "eta",
        ),
        (
            Message(name="t", on_complete=Message(name="u", eta=dt.datetime(2030, 1, 1))),
            InvalidEta,
            "on_complete.eta must be timezone-aware, got naive 2030-01-01T00:00:00",
            "on_complete",
        ),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,  # stable ids: the messages hold random task ids
)
def test_encode_refuses_bad_messages_naming_the_field(msg, exc_type, message, field):
    with pytest.raises(exc_type) as info:
        MessageCodec(signing_key=KEY).encode(msg)
    assert str(info.value) == message
    assert info.value.field == field


def test_encode_takes_only_messages():
    with pytest.raises(TypeError):
        MessageCodec().encode({"name": "x"})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- signing


def test_flipping_any_byte_is_refused():
    codec = MessageCodec(signing_key=KEY, fallback_keys=[OLD_KEY])
    data = codec.encode(Message(name="app.tasks.add", args=(1, 2), kwargs={"x": "y"}))
    assert codec.decode(data).name == "app.tasks.add"
    for position in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(data)
            tampered[position] ^= mask
            with pytest.raises(InvalidMessage) as info:
                codec.decode(bytes(tampered))
            if position < 4:  # magic and format version: not a frame this code can read at all
                assert isinstance(info.value, MessageDecodeError), position
            else:  # flags, signature and body: all covered by the HMAC
                assert isinstance(info.value, BadSignature), (position, mask, info.value)
                assert info.value.reason == "bad_signature"


def test_fallback_keys_verify_and_unknown_keys_do_not():
    old_codec = MessageCodec(signing_key=OLD_KEY)
    data = old_codec.encode(Message(name="x", args=(1,)))
    rotated = MessageCodec(signing_key=KEY, fallback_keys=[OTHER_KEY, OLD_KEY])
    assert rotated.decode(data).args == (1,)
    assert rotated.decode_value(old_codec.encode_value("r")) == "r"
    with pytest.raises(BadSignature, match="does not match the signing key or any fallback key"):
        MessageCodec(signing_key=KEY).decode(data)
    # new frames are signed with the current key, not a fallback
    new = rotated.encode(Message(name="x"))
    MessageCodec(signing_key=KEY).decode(new)
    with pytest.raises(BadSignature):
        old_codec.decode(new)


def test_unsigned_frame_is_refused_by_a_signing_codec():
    data = MessageCodec().encode(Message(name="x"))
    with pytest.raises(BadSignature, match="not signed") as info:
        MessageCodec(signing_key=KEY).decode(data)
    assert info.value.reason == "bad_signature"
    # and stripping the signature from a signed frame is no downgrade either
    signed = MessageCodec(signing_key=KEY).encode(Message(name="x"))
    stripped = MAGIC + bytes((1, signed[4] & ~FLAG_SIGNED)) + signed[HEADER_SIZE + SIGNATURE_SIZE :]
    with pytest.raises(BadSignature):
        MessageCodec(signing_key=KEY).decode(stripped)


def test_codec_without_a_key_reads_signed_json_frames():
    data = MessageCodec(signing_key=KEY).encode(Message(name="x"))
    assert MessageCodec().decode(data).name == "x"


# ----------------------------------------------------------------------- pickle never loaded unsigned


class Marker:
    """Unpickling this calls ``open(path, "w")``, creating the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_body(path) -> bytes:
    return pickle.dumps({"version": 1, "id": "x", "name": "t", "args": [Marker(path)], "kwargs": {}})


def test_the_marker_payload_really_runs_code_when_unpickled(tmp_path):
    """Control for the next test: without the codec, the payload does create its file."""
    control = tmp_path / "control"
    loaded = pickle.loads(evil_body(control))
    loaded["args"][0].close()
    assert control.exists()


def test_pickle_frames_are_never_loaded_unless_signed_and_configured(tmp_path):
    marker = tmp_path / "pwned"
    body = evil_body(marker)
    unsigned = make_frame(body, SERIALIZER_PICKLE)
    unsigned_value = make_frame(body, SERIALIZER_PICKLE | FLAG_VALUE)
    wrong_key = make_frame(body, SERIALIZER_PICKLE | FLAG_SIGNED, OTHER_KEY)
    right_key = make_frame(body, SERIALIZER_PICKLE | FLAG_SIGNED, KEY)
    compressed = make_frame(zlib.compress(body), SERIALIZER_PICKLE | FLAG_COMPRESSED)

    cases = [
        (MessageCodec(), unsigned, MessageDecodeError),
        (MessageCodec(), compressed, MessageDecodeError),
        (MessageCodec(), wrong_key, MessageDecodeError),
        (MessageCodec(), right_key, MessageDecodeError),  # a JSON queue never unpickles, signed or not
        (MessageCodec(signing_key=KEY), unsigned, BadSignature),
        (MessageCodec(signing_key=KEY), right_key, MessageDecodeError),
        (MessageCodec("pickle", signing_key=KEY), unsigned, BadSignature),
        (MessageCodec("pickle", signing_key=KEY), compressed, BadSignature),
        (MessageCodec("pickle", signing_key=KEY), wrong_key, BadSignature),
        (MessageCodec("pickle", signing_key=OTHER_KEY, fallback_keys=[OLD_KEY]), right_key, BadSignature),
    ]
    for codec, data, expected in cases:
        with pytest.raises(expected):
            codec.decode(data)
        with pytest.raises(InvalidMessage):
            codec.decode_value(unsigned_value)
        assert not marker.exists(), (codec, expected)
    with pytest.raises(
        MessageDecodeError, match="refusing a pickle frame: this queue uses the json serializer"
    ):
        MessageCodec().decode(unsigned)


def test_pickle_codec_requires_a_signing_key():
    with pytest.raises(ConfigurationError, match="pickle requires signing"):
        MessageCodec("pickle")


def test_custom_serializers():
    class Upper(BaseSerializer):
        name = "upper"
        safe_without_signing = True

        def dumps(self, obj, *, where="value"):
            return json.dumps(obj).encode()

        def loads(self, data):
            return json.loads(data)

    class Duck:
        def dumps(self, obj):
            return pickle.dumps(obj)

        def loads(self, data):
            return pickle.loads(data)

    upper = MessageCodec(Upper())
    data = upper.encode(Message(name="x", args=(1,)))
    assert data[4] & 0b11 == SERIALIZER_CUSTOM
    assert upper.decode(data).args == (1,)
    with pytest.raises(MessageDecodeError, match="refusing a custom-serializer frame"):
        MessageCodec().decode(data)
    with pytest.raises(ConfigurationError, match="requires signing"):
        MessageCodec(Duck())
    duck = MessageCodec(Duck(), signing_key=KEY)
    assert duck.decode(duck.encode(Message(name="x", args=(Decimal(1),)))).args == (Decimal(1),)


# ----------------------------------------------------------------------------- size limits


def test_oversize_message_is_refused_at_encode():
    codec = MessageCodec(signing_key=KEY)
    with pytest.raises(MessageTooLarge) as info:
        codec.encode(Message(name="x", args=("a" * DEFAULT_MAX_SIZE,)))
    assert str(info.value).endswith("bytes, over the limit of 1048576 bytes")
    assert info.value.field == "payload"
    assert info.value.reason == "too_large"


def test_frame_just_over_the_limit_is_refused_with_its_size():
    codec = MessageCodec(max_size=1000)
    base = len(codec.encode(Message(id="i", name="x", args=("",))))
    assert len(codec.encode(Message(id="i", name="x", args=("a" * (1000 - base),)))) == 1000
    with pytest.raises(MessageTooLarge) as info:
        codec.encode(Message(id="i", name="x", args=("a" * (1001 - base),)))
    assert str(info.value) == "encoded message is 1001 bytes, over the limit of 1000 bytes"
    with pytest.raises(MessageTooLarge, match=r"^encoded value is 1001 bytes, over the limit of 1000 bytes$"):
        codec.encode_value("a" * (1001 - HEADER_SIZE - 2))


def test_compression_does_not_lift_the_limit():
    """The limit applies to the uncompressed body too, so what encodes always decodes."""
    codec = MessageCodec(compression=True, signing_key=KEY)
    with pytest.raises(MessageTooLarge, match=r"body is .* over the limit of 1048576 bytes"):
        codec.encode(Message(name="x", args=("0" * (2 * DEFAULT_MAX_SIZE),)))


def test_oversize_bytes_are_refused_at_decode_before_verifying(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the signature must not be checked for oversize input")

    monkeypatch.setattr(codec_module, "verify", boom)
    codec = MessageCodec(signing_key=KEY)
    for data in (b"\x00" * (10 * 1024 * 1024), MAGIC + bytes((1, FLAG_SIGNED)) + b"x" * DEFAULT_MAX_SIZE):
        with pytest.raises(MessageTooLarge) as info:
            codec.decode(data)
        assert f"message is {len(data)} bytes, over the limit of 1048576 bytes" == str(info.value)
        assert info.value.reason == "too_large"
    with pytest.raises(MessageTooLarge):
        codec.decode_value(b"\x00" * (DEFAULT_MAX_SIZE + 1))


def test_validly_signed_but_oversize_frame_is_refused():
    big = MessageCodec(signing_key=KEY, max_size=4 * DEFAULT_MAX_SIZE)
    data = big.encode(Message(name="x", args=("a" * (2 * DEFAULT_MAX_SIZE),)))
    with pytest.raises(MessageTooLarge):
        MessageCodec(signing_key=KEY).decode(data)


# ----------------------------------------------------------------------------- compression


def test_compression_round_trip():
    codec = MessageCodec(compression=True, signing_key=KEY)
    msg = Message(name="x", args=("repetitive " * 2000,), kwargs={"rows": [{"a": i % 3} for i in range(500)]})
    data = codec.encode(msg)
    assert describe_frame(data)["compressed"] is True
    assert len(data) < len(MessageCodec(signing_key=KEY).encode(msg)) / 5
    assert codec.decode(data) == msg
    # a codec without compression still reads compressed frames
    assert MessageCodec(signing_key=KEY).decode(data) == msg


def test_small_or_incompressible_bodies_are_stored_as_they_are():
    codec = MessageCodec(compression=True, compress_threshold=1024)
    small = codec.encode(Message(name="x", args=("a" * 100,)))
    assert describe_frame(small)["compressed"] is False
    noise = random.Random(1).randbytes(5000)  # pickle stores bytes raw, so zlib cannot shrink them
    pickling = MessageCodec("pickle", signing_key=KEY, compression=True)
    data = pickling.encode(Message(name="x", args=(noise,)))
    assert describe_frame(data)["compressed"] is False
    assert pickling.decode(data).args == (noise,)


def test_compression_bomb_is_refused_quickly_and_without_inflating_it():
    bomb_body = zlib.compress(b"0" * (50 * 1024 * 1024), 9)
    assert len(bomb_body) < 100_000
    data = make_frame(bomb_body, SERIALIZER_JSON | FLAG_COMPRESSED | FLAG_SIGNED, KEY)
    codec = MessageCodec(signing_key=KEY)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(MessageTooLarge, match="inflates to more than the limit of 1048576 bytes") as info:
            codec.decode(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "too_large"
    assert elapsed < 2.0
    assert peak < 4 * DEFAULT_MAX_SIZE, peak


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not zlib at all", "compressed body is corrupt"),
        (zlib.compress(b'{"a":1}' * 50)[:-6], "compressed body is truncated"),
        (zlib.compress(b"[]") + b"trailing", "followed by unexpected bytes"),
    ],
)
def test_corrupt_compressed_bodies(body, fragment):
    data = make_frame(body, SERIALIZER_JSON | FLAG_COMPRESSED | FLAG_SIGNED, KEY)
    with pytest.raises(MessageDecodeError, match=fragment):
        MessageCodec(signing_key=KEY).decode(data)


# ----------------------------------------------------------------------------- poison input


def test_random_bytes_are_refused():
    rng = random.Random(1234)
    signing, plain = MessageCodec(signing_key=KEY), MessageCodec()
    for size in (0, 1, 4, 5, 36, 37, 100, 5000):
        for _ in range(20):
            data = rng.randbytes(size)
            for codec in (signing, plain):
                with pytest.raises(MessageDecodeError) as info:
                    codec.decode(data)
                assert info.value.reason == "decode_error"
            # random bytes behind a valid header: the signature catches them
            framed = MAGIC + bytes((1, SERIALIZER_JSON | FLAG_SIGNED)) + data
            with pytest.raises(InvalidMessage) as info:
                signing.decode(framed)
            expected = "bad_signature" if size >= SIGNATURE_SIZE else "decode_error"
            assert info.value.reason == expected


def test_truncated_frames_are_refused_with_the_right_reason():
    signing = MessageCodec(signing_key=KEY)
    data = signing.encode(Message(name="app.tasks.add", args=(1, 2)))
    for length in range(len(data)):
        with pytest.raises(InvalidMessage) as info:
            signing.decode(data[:length])
        expected = "bad_signature" if length >= HEADER_SIZE + SIGNATURE_SIZE else "decode_error"
        assert info.value.reason == expected, length
    plain = MessageCodec()
    data = plain.encode(Message(name="app.tasks.add", args=(1, 2)))
    for length in range(len(data)):
        with pytest.raises(MessageDecodeError):
            plain.decode(data[:length])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (envelope()[:-3], "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"\xff\xfe\x00", "body is not valid UTF-8"),
        (envelope(name=None)[:0] + b'{"version":1,"id":"a"}', "name is missing (missing field 'name')"),
        (envelope(name=5), "name must be a str, got int"),
        (envelope(args="1"), "args must be a list, got str"),
        (envelope(version=99), "unknown message version 99"),
        (b"[1,2,3]", "message must be a mapping, got list"),
        (b"null", "message must be a mapping, got None"),
        (envelope(kwargs={"__dtq__": "pickle", "v": "gASV"}), "unknown tag 'pickle'"),
        (envelope(args=[{"__dtq__": "tuple", "v": 1}]), "bad tagged value 'tuple'"),
    ],
    ids=lambda v: str(v)[:40],
)
@pytest.mark.parametrize("signed", [True, False])
def test_bad_bodies_are_decode_errors(body, message, signed):
    codec = MessageCodec(signing_key=KEY) if signed else MessageCodec()
    data = make_frame(body, SERIALIZER_JSON | (FLAG_SIGNED if signed else 0), KEY if signed else None)
    with pytest.raises(MessageDecodeError) as info:
        codec.decode(data)
    assert message in str(info.value)
    assert info.value.reason == "decode_error"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (b"DTQ\x02" + bytes((SERIALIZER_JSON,)), "unknown frame version 2"),
        (b"XYZ\x01" + bytes((SERIALIZER_JSON,)), "not a django-tasks-q frame"),
        (MAGIC + bytes((1, 0b1000_0000)), "unknown flags 0x80"),
        (MAGIC + bytes((1, 3)), "frame names unknown serializer 3"),
    ],
)
def test_bad_headers(header, fragment):
    with pytest.raises(MessageDecodeError, match=fragment):
        MessageCodec().decode(header + envelope())


def test_frame_shorter_than_its_header():
    with pytest.raises(
        MessageDecodeError, match=r"^truncated frame: 4 bytes, shorter than the 5-byte header$"
    ):
        MessageCodec().decode(MAGIC + b"\x01")


def test_non_bytes_are_refused():
    with pytest.raises(MessageDecodeError, match="expected bytes"):
        MessageCodec().decode("DTQ")  # type: ignore[arg-type]
    assert MessageCodec().decode(bytearray(MessageCodec().encode(Message(name="x")))).name == "x"
    assert MessageCodec().decode(memoryview(MessageCodec().encode(Message(name="x")))).name == "x"


class ImportRecorder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.names: list[str] = []

    def find_spec(self, fullname, path, target=None):
        self.names.append(fullname)
        return None


def test_decode_never_imports_anything_named_in_a_payload():
    """Names in a payload are data; only the registry (elsewhere) turns a name into a task."""
    evil_names = ["dtq_evil_module_xyz", "antigravity", "os", "subprocess", "this"]
    codec = MessageCodec(signing_key=KEY)
    msg = Message(
        name="dtq_evil_module_xyz.run",
        args=(*evil_names, "os.system", "builtins.eval"),
        kwargs={"module": "dtq_evil_module_xyz", "__import__": "antigravity", "cls": "this.Zen"},
        extra={"serializer": "dtq_evil_module_xyz.Serializer"},
        on_complete=Message(name="antigravity.fly"),
    )
    data = codec.encode(msg)
    codec.decode(data)  # warm-up: anything lazily imported by the stdlib happens here
    was_loaded = {name: name in sys.modules for name in evil_names}
    recorder = ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        for _ in range(3):
            assert codec.decode(data) == msg
        forged = make_frame(envelope(kwargs={"__dtq__": "dtq_evil_module_xyz", "v": "antigravity"}), 0)
        with pytest.raises(MessageDecodeError):
            MessageCodec().decode(forged)
    finally:
        sys.meta_path.remove(recorder)
    assert recorder.names == []
    assert {name: name in sys.modules for name in evil_names} == was_loaded
    assert "dtq_evil_module_xyz" not in sys.modules


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"serializer": "yaml"}, "unknown serializer 'yaml'"),
        ({"compression": 11}, "compression must be True, False or a zlib level 1-9, got 11"),
        ({"compression": "yes"}, "compression must be"),
        ({"signing_key": "a str"}, "signing_key must be bytes, not str"),
        ({"signing_key": b""}, "signing_key must not be empty"),
        ({"signing_key": KEY, "fallback_keys": [b""]}, "each fallback key must not be empty"),
        ({"signing_key": KEY, "fallback_keys": KEY}, "fallback_keys must be a sequence of keys"),
        ({"fallback_keys": [KEY]}, "fallback_keys given without a signing_key"),
        ({"max_size": 10}, "max_size must be an int of at least 64 bytes"),
        ({"max_size": 1.5e6}, "max_size must be an int"),
        ({"compress_threshold": -1}, "compress_threshold must be a non-negative int"),
    ],
)
def test_codec_configuration_errors(kwargs, fragment):
    with pytest.raises(ConfigurationError) as info:
        MessageCodec(**kwargs)
    assert fragment in str(info.value)


def test_codec_properties():
    codec = MessageCodec(compression=True, signing_key=KEY)
    assert codec.signed and not MessageCodec().signed
    assert codec.compression_level == 6
    assert codec.max_size == DEFAULT_MAX_SIZE
    assert "signed=True" in repr(codec)


# ----------------------------------------------------------------------------- keys


def test_derive_signing_key_is_documented_hmac_and_deterministic():
    expected = hmac.new(b"test-secret", b"django_tasks_q.message", hashlib.sha256).digest()
    assert SIGNING_SALT == b"django_tasks_q.message"
    assert derive_signing_key("test-secret") == expected
    assert derive_signing_key(b"test-secret") == expected
    assert len(expected) == 32
    assert derive_signing_key("test-secret!") != expected
    assert derive_signing_key("ünï") == hmac.new("ünï".encode(), SIGNING_SALT, hashlib.sha256).digest()


def test_derive_signing_key_is_the_same_in_another_process():
    code = (
        "from django_tasks_q.messages.signing import derive_signing_key\n"
        "print(derive_signing_key('test-secret').hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert out.stdout.strip() == KEY.hex()


def test_derive_signing_keys_with_fallbacks():
    key, fallbacks = derive_signing_keys("test-secret", ["old-secret", "", "test-secret", "old-secret"])
    assert key == KEY
    assert fallbacks == [OLD_KEY]
    with pytest.raises(ConfigurationError, match="SECRET_KEY is empty"):
        derive_signing_keys("")
    with pytest.raises(ConfigurationError, match="not a single string"):
        derive_signing_keys("x", "old")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a str"):
        derive_signing_key(None)  # type: ignore[arg-type]


def test_signing_keys_from_settings(monkeypatch):
    import django.conf

    class FakeSettings:
        SECRET_KEY = "test-secret"
        SECRET_KEY_FALLBACKS = ("old-secret",)

    monkeypatch.setattr(django.conf, "settings", FakeSettings())
    assert signing_keys_from_settings() == (KEY, [OLD_KEY])

    class NoFallbacks:
        SECRET_KEY = "test-secret"

    monkeypatch.setattr(django.conf, "settings", NoFallbacks())
    assert signing_keys_from_settings() == (KEY, [])

    class Broken:
        @property
        def SECRET_KEY(self):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured("The SECRET_KEY setting must not be empty.")

    monkeypatch.setattr(django.conf, "settings", Broken())
    with pytest.raises(
        ConfigurationError, match="cannot sign messages: The SECRET_KEY setting must not be empty"
    ):
        signing_keys_from_settings()


def test_keys_from_settings_sign_and_verify(monkeypatch):
    import django.conf

    class Rotated:
        SECRET_KEY = "new-secret"
        SECRET_KEY_FALLBACKS = ("test-secret",)

    monkeypatch.setattr(django.conf, "settings", Rotated())
    key, fallbacks = signing_keys_from_settings()
    codec = MessageCodec(signing_key=key, fallback_keys=fallbacks)
    assert codec.decode(MessageCodec(signing_key=KEY).encode(Message(name="x"))).name == "x"


# ----------------------------------------------------------------------------- diagnostics


def test_peek_raw_is_printable_ascii_and_never_decodes():
    assert peek_raw(b"abc") == "abc"
    assert peek_raw(b"a\\b\x00\xff\n<script>") == "a\\\\b\\x00\\xff\\x0a<script>"
    assert peek_raw("é".encode()) == "\\xc3\\xa9"
    assert peek_raw(b"x" * 300) == "x" * 200 + "... (+100 bytes)"
    assert peek_raw(b"abcdef", n=3) == "abc... (+3 bytes)"
    assert peek_raw(b"") == "" and peek_raw(None) == ""
    preview = peek_raw(random.Random(2).randbytes(1000), n=1000)
    assert preview.isascii() and preview.isprintable()
    bomb = make_frame(zlib.compress(b"0" * 10_000_000), FLAG_COMPRESSED)
    assert peek_raw(bomb, n=10).startswith("DTQ\\x01\\x04")


def test_describe_frame():
    data = MessageCodec("pickle", signing_key=KEY, compression=True, compress_threshold=0).encode(
        Message(name="x", args=("a" * 100,))
    )
    info = describe_frame(data)
    assert info == {
        "size": len(data),
        "is_frame": True,
        "version": 1,
        "serializer": "pickle",
        "payload": "message",
        "compressed": True,
        "signed": True,
        "unknown_flags": 0,
        "body_size": len(data) - HEADER_SIZE - SIGNATURE_SIZE,
        "verified": False,
    }
    assert describe_frame(MessageCodec().encode_value(1))["payload"] == "value"
    assert describe_frame(b"garbage") == {"size": 7, "is_frame": False, "verified": False}


def test_signing_keys_follow_override_settings():
    """With real Django settings (tests/settings.py), keys are read at call time."""
    from django.conf import settings
    from django.test import override_settings

    if not settings.configured:
        pytest.skip("Django settings are not configured in this run")
    with override_settings(SECRET_KEY="test-secret", SECRET_KEY_FALLBACKS=["old-secret"]):
        assert signing_keys_from_settings() == (KEY, [OLD_KEY])
    with override_settings(SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=[]):
        assert signing_keys_from_settings() == (derive_signing_key("new-secret"), [])


def test_call_ids_are_random_version_4_uuids_in_hex() -> None:
    ids = {envelope_module.new_call_id() for _ in range(2000)}
    assert len(ids) == 2000
    for ident in list(ids)[:200]:
        parsed = uuid.UUID(hex=ident)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, ident)


# ----------------------------------------------------------------------------- frames of the previous layout
# Written by the codec as it was when the envelope, the frame codec and the signing were one module
# (django_tasks_q/message.py): queues, stored results and dead letters of either version must be read by the
# other, so these frames must decode, and the uncompressed ones encode again to the same bytes.

OLD_PLAIN_UNSIGNED = bytes.fromhex(
    "44545101007b2276657273696f6e223a312c226964223a223030303030303030303030303030303030303030303030303030"
    "303030303633222c226e616d65223a226170702e7461736b732e6e6f6f70222c2261726773223a5b5d2c226b776172677322"
    "3a7b7d2c22657461223a6e756c6c2c227072696f72697479223a6e756c6c2c2272657472696573223a302c2272657472795f"
    "64656c6179223a302c2272657472795f6261636b6f6666223a312e302c2265787069726573223a6e756c6c2c2274696d656f"
    "7574223a6e756c6c2c226f6e5f636f6d706c657465223a6e756c6c2c226f6e5f6572726f72223a6e756c6c2c2263686f7264"
    "223a6e756c6c2c22656e7175657565645f6174223a22323033302d30312d30325430333a30343a30352e3630303030302b30"
    "303a3030222c226578747261223a7b7d7d"
)
OLD_FULL_SIGNED = bytes.fromhex(
    "44545101081a8b05219385de61de7380035cd2c46279224b8d873f98373786e9e3e07c61a27b2276657273696f6e223a312c"
    "226964223a223030303030303030303030303030303030303030303030303030303030303034222c226e616d65223a226170"
    "702e7461736b732e6665746368222c2261726773223a5b312c2274776f222c332e352c6e756c6c2c747275652c7b225f5f64"
    "74715f5f223a227475706c65222c2276223a5b342c355d7d2c5b362c7b22736576656e223a377d5d2c7b225f5f6474715f5f"
    "223a22646563696d616c222c2276223a22382e3830227d2c7b225f5f6474715f5f223a2275756964222c2276223a22303030"
    "30303030302d303030302d303030302d303030302d303030303030303030303039227d5d2c226b7761726773223a7b227572"
    "6c223a2268747470733a2f2f6578616d706c652e636f6d2fc3bc222c226174223a7b225f5f6474715f5f223a226461746574"
    "696d65222c2276223a22323032342d30352d30365430373a30383a3039227d2c2264223a7b225f5f6474715f5f223a226461"
    "7465222c2276223a22323032342d30312d3031227d7d2c22657461223a22323033302d30312d30325430333a30343a30352e"
    "3630303030302b30303a3030222c227072696f72697479223a31302c2272657472696573223a332c2272657472795f64656c"
    "6179223a322e352c2272657472795f6261636b6f6666223a322e302c2265787069726573223a22323033302d30312d303254"
    "30343a30343a30352e3630303030302b30303a3030222c2274696d656f7574223a33302e302c226f6e5f636f6d706c657465"
    "223a7b2276657273696f6e223a312c226964223a223030303030303030303030303030303030303030303030303030303030"
    "303032222c226e616d65223a226170702e7461736b732e72656e646572222c2261726773223a5b7b225f5f6474715f5f223a"
    "227475706c65222c2276223a5b312c325d7d2c7b225f5f6474715f5f223a22736574222c2276223a5b332c345d7d5d2c226b"
    "7761726773223a7b7d2c22657461223a6e756c6c2c227072696f72697479223a2d352c2272657472696573223a302c227265"
    "7472795f64656c6179223a302c2272657472795f6261636b6f6666223a312e302c2265787069726573223a6e756c6c2c2274"
    "696d656f7574223a6e756c6c2c226f6e5f636f6d706c657465223a7b2276657273696f6e223a312c226964223a2230303030"
    "30303030303030303030303030303030303030303030303030303031222c226e616d65223a226170702e7461736b732e6e6f"
    "74696679222c2261726773223a5b22646f6e65225d2c226b7761726773223a7b227768656e223a7b225f5f6474715f5f223a"
    "226461746574696d65222c2276223a22323033302d30312d30325430333a30343a30352e3630303030302b30303a3030227d"
    "7d2c22657461223a6e756c6c2c227072696f72697479223a6e756c6c2c2272657472696573223a302c2272657472795f6465"
    "6c6179223a302c2272657472795f6261636b6f6666223a312e302c2265787069726573223a6e756c6c2c2274696d656f7574"
    "223a6e756c6c2c226f6e5f636f6d706c657465223a6e756c6c2c226f6e5f6572726f72223a6e756c6c2c2263686f7264223a"
    "6e756c6c2c22656e7175657565645f6174223a6e756c6c2c226578747261223a7b7d7d2c226f6e5f6572726f72223a6e756c"
    "6c2c2263686f7264223a6e756c6c2c22656e7175657565645f6174223a6e756c6c2c226578747261223a7b7d7d2c226f6e5f"
    "6572726f72223a7b2276657273696f6e223a312c226964223a22303030303030303030303030303030303030303030303030"
    "3030303030303033222c226e616d65223a226170702e7461736b732e636c65616e7570222c2261726773223a5b5d2c226b77"
    "61726773223a7b22776879223a7b225f5f6474715f5f223a226279746573222c2276223a2241474a356447567a227d7d2c22"
    "657461223a6e756c6c2c227072696f72697479223a6e756c6c2c2272657472696573223a302c2272657472795f64656c6179"
    "223a302c2272657472795f6261636b6f6666223a312e302c2265787069726573223a6e756c6c2c2274696d656f7574223a6e"
    "756c6c2c226f6e5f636f6d706c657465223a6e756c6c2c226f6e5f6572726f72223a6e756c6c2c2263686f7264223a6e756c"
    "6c2c22656e7175657565645f6174223a6e756c6c2c226578747261223a7b7d7d2c2263686f7264223a7b226964223a226368"
    "6f72642d31222c2273697a65223a332c2263616c6c6261636b223a6e756c6c7d2c22656e7175657565645f6174223a223230"
    "33302d30312d30325430333a30343a30342e3630303030302b30303a3030222c226578747261223a7b22636f6e7465787422"
    "3a747275652c226c6f636b223a7b225f5f6474715f5f223a227475706c65222c2276223a5b2261222c2262225d7d7d7d"
)
OLD_BIG_COMPRESSED = bytes.fromhex(
    "445451010c0e3b1d8eee658bb95fdc0fb3b120c3261896778360f42ac48d9c8de10cadc95f789cedd8c16e83300c06e077f1"
    "b5293265ed21cfb1db34a10cdc2d02e2cc84b6a8eabb2f0c21f5b4db6efe4ef92d2756aebec38564f41cc096067c0b16f04f"
    "a70a0c043750ee743116c98ddd5804e698eb4e3e47b06f70534a29a594524a29a594524afd3b7837d05dd7addcfd61809203"
    "1ba6be3710c5b3f8346f592889a7dc87eb79ae5beaddfc943f5cd3f1f90cb62c728d6ed1cbd2bf5e4f7e209ed21639d40d0f"
    "b1a7444f251261d972f3c5d26e81c2f74413b5b5cb4fc0012bdc63b9c7c32b56165f2c1e8bd3eff67187681161199fc42d9f"
    "7afc00cf40895f"
)
OLD_PICKLE_SIGNED = bytes.fromhex(
    "4454510109bf04a3800eb055c2e01fa2f46c68a923d62796988bd680d0959d336b749812dc8005956d040000000000007d94"
    "288c0776657273696f6e944b018c026964948c20303030303030303030303030303030303030303030303030303030303030"
    "3034948c046e616d65948c0f6170702e7461736b732e6665746368948c0461726773945d94284b018c0374776f9447400c00"
    "00000000004e884b044b0586945d94284b067d948c05736576656e944b0773658c07646563696d616c948c07446563696d61"
    "6c9493948c04382e383094859452948c0475756964948c04555549449493942981947d948c03696e74944b097362658c066b"
    "7761726773947d94288c0375726c948c1668747470733a2f2f6578616d706c652e636f6d2fc3bc948c026174948c08646174"
    "6574696d65948c086461746574696d65949394430a07e8050607080900000094859452948c016494681e8c04646174659493"
    "94430407e801019485945294758c03657461948c20323033302d30312d30325430333a30343a30352e3630303030302b3030"
    "3a3030948c087072696f72697479944b0a8c0772657472696573944b038c0b72657472795f64656c61799447400400000000"
    "00008c0d72657472795f6261636b6f6666944740000000000000008c0765787069726573948c20323033302d30312d303254"
    "30343a30343a30352e3630303030302b30303a3030948c0774696d656f75749447403e0000000000008c0b6f6e5f636f6d70"
    "6c657465947d942868014b0168028c2030303030303030303030303030303030303030303030303030303030303030329468"
    "048c106170702e7461736b732e72656e6465729468065d94284b014b0286948f94284b034b04906568197d94682a4e682c4a"
    "fbffffff682d4b00682e4b00682f473ff000000000000068304e68324e68337d942868014b0168028c203030303030303030"
    "3030303030303030303030303030303030303030303030319468048c106170702e7461736b732e6e6f746966799468065d94"
    "8c04646f6e65946168197d948c047768656e946820430a07ee01020304050927c094681e8c0874696d657a6f6e6594939468"
    "1e8c0974696d6564656c74619493944b004b004b0087945294859452948694529473682a4e682c4e682d4b00682e4b00682f"
    "473ff000000000000068304e68324e68334e8c086f6e5f6572726f72944e8c0563686f7264944e8c0b656e7175657565645f"
    "6174944e8c056578747261947d9475684d4e684e4e684f4e68507d9475684d7d942868014b0168028c203030303030303030"
    "3030303030303030303030303030303030303030303030339468048c116170702e7461736b732e636c65616e75709468065d"
    "9468197d948c037768799443060062797465739473682a4e682c4e682d4b00682e4b00682f473ff000000000000068304e68"
    "324e68334e684d4e684e4e684f4e68507d9475684e7d942868028c0763686f72642d31948c0473697a65944b038c0863616c"
    "6c6261636b944e75684f8c20323033302d30312d30325430333a30343a30342e3630303030302b30303a30309468507d9428"
    "8c07636f6e7465787494888c046c6f636b948c0161948c016294869475752e"
)
OLD_VALUE_SIGNED = bytes.fromhex(
    "445451011890e42f97f0fc134baadb9272b45da8a567f42c579f6a8b286635c56bc329f6f97b22726573756c74223a5b312c"
    "322e352c6e756c6c2c747275655d2c226572726f72223a7b225f5f6474715f5f223a22657863657074696f6e222c2276223a"
    "7b226d6f64756c65223a226275696c74696e73222c227175616c6e616d65223a2256616c75654572726f72222c2261726773"
    "223a5b22626164222c335d2c226572726f72223a2256616c75654572726f722827626164272c203329227d7d2c227465223a"
    "7b225f5f6474715f5f223a22657863657074696f6e222c2276223a7b226d6f64756c65223a22646a616e676f5f7461736b73"
    "5f712e657863657074696f6e73222c227175616c6e616d65223a225461736b457863657074696f6e222c2261726773223a5b"
    "7b226572726f72223a22626f6f6d222c2274797065223a22782e59227d5d2c226572726f72223a22626f6f6d227d7d7d"
)


def with_fixed_ids(message: Message, counter: Iterator[int] | None = None) -> Message:
    """``message`` with the ids 1, 2, 3 ... (as 32 hex digits) down its pipeline, so its frame never changes."""
    counter = counter if counter is not None else itertools.count(1)
    steps = {
        name: None if getattr(message, name) is None else with_fixed_ids(getattr(message, name), counter)
        for name in ("on_complete", "on_error")
    }
    return dataclasses.replace(message, id=f"{next(counter):032x}", **steps)


def old_frame_messages() -> dict[str, Message]:
    plain = Message(id=f"{99:032x}", name="app.tasks.noop", enqueued_at=T0)
    return {"plain": plain, "full": with_fixed_ids(full_message()), "big": dataclasses.replace(plain, args=("x" * 5000,))}


@pytest.mark.parametrize(
    ("frame", "which", "options", "same_bytes"),
    [
        (OLD_PLAIN_UNSIGNED, "plain", {}, True),
        (OLD_FULL_SIGNED, "full", {"signing_key": KEY}, True),
        (OLD_BIG_COMPRESSED, "big", {"signing_key": KEY, "compression": True}, False),
        (OLD_PICKLE_SIGNED, "full", {"serializer": "pickle", "signing_key": KEY}, False),
    ],
)
def test_a_message_frame_of_the_previous_layout_decodes_and_encodes_the_same(frame, which, options, same_bytes):
    codec = MessageCodec(**options)
    message = old_frame_messages()[which]
    assert codec.decode(frame) == message
    if same_bytes:  # compressed and pickled bytes also depend on the zlib and Python versions
        assert codec.encode(message) == frame


def test_a_value_frame_of_the_previous_layout_decodes_and_encodes_the_same():
    codec = MessageCodec(signing_key=KEY)
    value = codec.decode_value(OLD_VALUE_SIGNED)
    assert value["result"] == [1, 2.5, None, True]
    assert type(value["error"]) is ValueError and value["error"].args == ("bad", 3)
    assert type(value["te"]) is TaskException and value["te"].metadata == {"error": "boom", "type": "x.Y"}
    written = {
        "result": [1, 2.5, None, True],
        "error": ValueError("bad", 3),
        "te": TaskException({"error": "boom", "type": "x.Y"}),
    }
    assert codec.encode_value(written, where="result") == OLD_VALUE_SIGNED
