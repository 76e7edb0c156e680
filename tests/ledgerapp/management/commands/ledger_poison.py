"""``ledger_poison``: push bad and hostile messages straight into the default queue's store.

The bytes go through ``queues['default'].storage.enqueue(...)``, never through the hub's validation: a raw
store write is the point (a compromised producer, a corrupted store, an attacker with write access). Prints a
JSON list of ``{"label", "reason", "sha"}``: the reason each one must be dead-lettered with, and the sha256 of
its bytes (the first 16 hex digits) to find its dead letter.

``--marker PATH``: the pickle payloads create PATH when unpickled (it must never appear: pickle is
loaded only from a verified frame).
``--only-pickle``: push only the pickle payloads. ``--control``: push only a pickle signed with this project's key
(a pickle queue loads it: the marker appears, so the payload is known to work).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import zlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_tasks_q.conf import queues
from django_tasks_q.messages.codec import (
    FLAG_COMPRESSED,
    FLAG_SIGNED,
    FLAG_VALUE,
    FRAME_VERSION,
    MAGIC,
    SERIALIZER_PICKLE,
    MessageCodec,
)
from django_tasks_q.messages.envelope import Message
from django_tasks_q.messages.signing import derive_signing_key
from tests.ledgerapp.tasks import record

MiB = 1024 * 1024


class MarkerPayload:
    """Unpickling this object opens (creates) the marker file: code run from a payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def frame(body: bytes, *, key: bytes | None, flags: int = 0) -> bytes:
    """A frame around ``body``; signed with ``key`` when given (the signature is honest for those bytes)."""
    if key is not None:
        flags |= FLAG_SIGNED
    header = MAGIC + bytes((FRAME_VERSION, flags))
    if key is None:
        return header + body
    return header + hmac.new(key, header + body, hashlib.sha256).digest() + body


def sha(data: bytes) -> str:
    """The first 16 hex digits of the sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()[:16]


class Command(BaseCommand):
    """Push poison."""

    def add_arguments(self, parser: CommandParser) -> None:
        """--marker, --only-pickle."""
        parser.add_argument("--marker", required=True)
        parser.add_argument("--only-pickle", action="store_true", dest="only_pickle")
        parser.add_argument("--control", action="store_true",
                            help="push only a pickle signed with this project's key: on a pickle queue it IS "
                                 "loaded (creating the marker), which proves the payload works")

    def handle(self, *args: Any, **options: Any) -> None:
        """Push every case; print what each must become."""
        hub = queues["default"]
        key = hub.codec.signing_key
        assert key is not None, "the chaos tests expect a signing queue"
        other_key = derive_signing_key("not the secret key of this project")
        cases: list[tuple[str, bytes, str]] = []

        envelope = Message(name=record.path, args=(990,)).to_dict()
        text = json.dumps(envelope).encode()
        pickled = pickle.dumps(
            {"id": "x", "name": record.path, "args": [991], "kwargs": {}, "marker": MarkerPayload(options["marker"])}
        )
        pickle_flags = SERIALIZER_PICKLE
        if options["control"]:
            control = pickle.dumps({"marker": MarkerPayload(options["marker"])})
            cases.append(("pickle, signed with this project's key (control)", frame(control, key=key,
                          flags=pickle_flags), "decode_error"))
            options["only_pickle"] = True
        else:
            cases += [
                ("pickle, unsigned", frame(pickled, key=None, flags=pickle_flags), "bad_signature"),
                ("pickle, signed with another key", frame(pickled, key=other_key, flags=pickle_flags),
                 "bad_signature"),
            ]
        if not options["only_pickle"]:
            real = hub.codec.encode(Message(name=record.path, args=(992,)))
            flipped = bytearray(real)
            flipped[len(real) // 2] ^= 0x01
            no_name = {k: v for k, v in envelope.items() if k != "name"}
            bomb = zlib.compress(b"[" * (16 * MiB), 9)
            cases += [
                ("pickle, signed with the right key (queue uses JSON)", frame(pickled, key=key, flags=pickle_flags),
                 "decode_error"),
                ("random bytes", b"\x00" + os.urandom(300), "decode_error"),
                ("truncated JSON, honestly signed", frame(text[: len(text) // 2], key=key), "decode_error"),
                ("truncated frame", real[: len(real) - 7], "bad_signature"),
                ("missing task name", frame(json.dumps(no_name).encode(), key=key), "decode_error"),
                (
                    "unknown task (a module that must never be imported)",
                    hub.codec.encode(Message(name="tests.ledgerapp.canary.run")),
                    "unknown_task",
                ),
                (
                    "os.system as the task name",
                    hub.codec.encode(Message(name="os.system", args=(f"touch {options['marker']}",))),
                    "unknown_task",
                ),
                ("a flipped byte (R21)", bytes(flipped), "bad_signature"),
                ("unsigned", MessageCodec().encode(Message(name=record.path, args=(993,))), "bad_signature"),
                ("signed with another key", MessageCodec(signing_key=other_key).encode(
                    Message(name=record.path, args=(994,))), "bad_signature"),
                ("a result replayed as a task", hub.codec.encode_value(["ok", 995]), "decode_error"),
                ("a value frame forged as a task", frame(text, key=key, flags=FLAG_VALUE), "decode_error"),
                ("10 MiB", b"DTQ" + os.urandom(10 * MiB), "too_large"),
                ("a compression bomb", frame(bomb, key=key, flags=FLAG_COMPRESSED), "too_large"),
            ]
        for _label, data, _reason in cases:
            hub.storage.enqueue(data)
        self.stdout.write(
            json.dumps([{"label": label, "reason": reason, "sha": sha(data)} for label, data, reason in cases])
        )
