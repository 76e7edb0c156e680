"""huey's Serializer / SignedSerializer signatures on this project's JSON, signing and bounded decompression."""

from __future__ import annotations

import gzip
import pickle
import zlib

import pytest

from django_tasks_q.exceptions import ConfigurationError, MessageDecodeError, SerializationError
from django_tasks_q.messages.codec import MessageCodec
from django_tasks_q.signed_serializers import Serializer, SignedSerializer

VALUES = [None, 0, 1, b"a" * 1024, ["k1", "k2"], {"k1": "v1"}, (1, "two"), {"nested": [b"\x00", 2.5]}]


@pytest.mark.parametrize(
    "serializer",
    [
        Serializer(),
        Serializer(compression=True),
        Serializer(compression=True, use_zlib=True, compression_level=9),
        SignedSerializer(secret="s3cret"),
        SignedSerializer(secret=b"s3cret", salt=b"app", compression=True),
        SignedSerializer(secret="s3cret", pickle_protocol=pickle.HIGHEST_PROTOCOL, compression=True, use_zlib=True),
    ],
    ids=repr,
)
def test_values_come_back_unchanged(serializer: Serializer) -> None:
    for value in VALUES:
        assert serializer.deserialize(serializer.serialize(value)) == value
        assert serializer.loads(serializer.dumps(value)) == value


def test_the_body_is_json_and_compression_is_gzip_or_zlib_as_in_huey() -> None:
    assert Serializer().serialize({"a": [1]}) == b'{"a":[1]}'
    assert gzip.decompress(Serializer(compression=True).serialize([1])) == b"[1]"
    assert zlib.decompress(Serializer(compression=True, use_zlib=True).serialize([1])) == b"[1]"


def test_compressed_or_not_is_recognised_whatever_the_reader_s_setting() -> None:
    plain, gzipped, zlibbed = Serializer(), Serializer(compression=True), Serializer(compression=True, use_zlib=True)
    for writer in (plain, gzipped, zlibbed):
        for reader in (plain, gzipped, zlibbed):
            assert reader.deserialize(writer.serialize({"k": b"v"})) == {"k": b"v"}


def test_decompression_stops_at_max_size() -> None:
    bomb = gzip.compress(b"[" + b"0," * 600_000 + b"0]")
    with pytest.raises(MessageDecodeError, match="over the limit of 1000000 bytes"):
        Serializer(max_size=1_000_000).deserialize(bomb)
    assert len(Serializer().deserialize(bomb)) == 600_001


def test_unsigned_pickle_is_refused_and_values_json_cannot_carry_are_refused_at_serialize() -> None:
    with pytest.raises(ConfigurationError, match=r"unsigned pickle.*SignedSerializer"):
        Serializer(pickle_protocol=4)
    with pytest.raises(SerializationError, match="object of type complex"):
        Serializer().serialize(1j)
    with pytest.raises(MessageDecodeError):
        Serializer().deserialize(pickle.dumps([1]))


def test_signed_pickle_carries_what_json_cannot() -> None:
    signed = SignedSerializer(secret="k", pickle_protocol=5)
    assert signed.deserialize(signed.serialize({1j, frozenset({2})})) == {1j, frozenset({2})}


@pytest.mark.parametrize("options", [{}, {"secret": ""}, {"secret": "k", "salt": ""}])
def test_signed_serializer_needs_secret_and_salt(options: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="secret and salt are both required"):
        SignedSerializer(**options)


def test_a_signature_that_does_not_verify_is_refused_before_decompressing() -> None:
    signed = SignedSerializer(secret="k", pickle_protocol=5, compression=True)
    data = signed.serialize([1, 2])
    for forged in (
        data[:-1] + bytes([data[-1] ^ 1]),  # tampered signature
        SignedSerializer(secret="k", salt="other", pickle_protocol=5, compression=True).serialize([1, 2]),
        SignedSerializer(secret="other", pickle_protocol=5, compression=True).serialize([1, 2]),
        gzip.compress(b"\x00" * 10_000_000),  # a bomb without a signature is never inflated
        b"short",
    ):
        with pytest.raises(MessageDecodeError, match="signature mismatch"):
            signed.deserialize(forged)


@pytest.mark.parametrize(
    "serializer",
    [Serializer(compression=True), SignedSerializer(secret="k", pickle_protocol=5)],
    ids=repr,
)
def test_they_serve_as_the_hub_s_serializer_without_hub_signing(serializer: Serializer) -> None:
    codec = MessageCodec(serializer=serializer)
    assert codec.decode_value(codec.encode_value({"answer": (4, 2)})) == {"answer": (4, 2)}
    with pytest.raises(SerializationError, match=r"^result: object of type object"):
        Serializer().dumps(object(), where="result")
