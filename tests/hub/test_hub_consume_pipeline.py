"""What a worker does with a reserved message: size → signature → decode → registry → execute. Poison is dead-lettered with a reason and never executed; a stale reservation writes nothing."""

from __future__ import annotations

import json
import os
import zlib

import pytest
from django.conf import settings
from django.test import override_settings

from django_tasks_q import TaskException
from django_tasks_q.messages.codec import MessageCodec
from django_tasks_q.messages.envelope import Message
from django_tasks_q.messages.signing import derive_signing_key
from tests.support.hub import Recorder, drain, later, new_queue, run_next, sign_frame


@pytest.fixture
def system_calls(monkeypatch):
    """Every call of ``os.system`` made while the test runs (none should be)."""
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args) or 0)
    return calls


def make():
    q = new_queue()
    events = Recorder(q)
    ran = []

    @q.task(name="t.good")
    def good(x):
        ran.append(x)
        return x

    return q, events, ran, good


def valid_message(q, good, x=1):
    """The bytes of a real, signed ``good(x)`` message."""
    good(x)
    [data] = q.storage.enqueued_items()
    q.storage.flush_queue()
    return data


def poison_cases(q, good):
    real = valid_message(q, good)
    flipped_body = bytearray(real)
    flipped_body[-3] ^= 0x01
    flipped_signature = bytearray(real)
    flipped_signature[10] ^= 0x80
    other_key = MessageCodec(signing_key=derive_signing_key("another secret")).encode(
        Message(name="t.good", args=(2,))
    )
    unsigned = MessageCodec().encode(Message(name="t.good", args=(3,)))
    envelope = Message(name="t.good", args=(4,)).to_dict()
    no_name = {key: value for key, value in envelope.items() if key != "name"}
    bomb = zlib.compress(b"[" * (4 * 1024 * 1024), 9)
    return [
        ("random bytes", os.urandom(200), "decode_error", None),
        ("empty", b"", "decode_error", "truncated frame: 0 bytes, shorter than the 5-byte header"),
        (
            "truncated frame",
            real[:20],
            "decode_error",
            "truncated frame: 20 bytes, too short to hold its signature",
        ),
        (
            "truncated body",
            real[:-5],
            "bad_signature",
            "signature does not match the signing key or any fallback key",
        ),
        (
            "a flipped byte in the body",
            bytes(flipped_body),
            "bad_signature",
            "signature does not match the signing key or any fallback key",
        ),
        (
            "a flipped byte in the signature",
            bytes(flipped_signature),
            "bad_signature",
            "signature does not match the signing key or any fallback key",
        ),
        (
            "signed with another key",
            other_key,
            "bad_signature",
            "signature does not match the signing key or any fallback key",
        ),
        (
            "unsigned",
            unsigned,
            "bad_signature",
            "message is not signed, but this queue requires signed messages",
        ),
        (
            "a result replayed as a task",
            q.codec.encode_value(["ok", 1]),
            "decode_error",
            "frame holds a value, not a task message",
        ),
        (
            "signed garbage",
            sign_frame(q, b"{not json"),
            "decode_error",
            "body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            "no task name",
            sign_frame(q, json.dumps(no_name).encode()),
            "decode_error",
            "name is missing (missing field 'name')",
        ),
        (
            "an unknown task",
            q.codec.encode(Message(name="reports.delete_everything")),
            "unknown_task",
            f"message names task 'reports.delete_everything', which is not registered on queue {q.name!r}",
        ),
        (
            "os.system as the task name",
            q.codec.encode(Message(name="os.system", args=("touch /tmp/owned",))),
            "unknown_task",
            f"message names task 'os.system', which is not registered on queue {q.name!r}",
        ),
        (
            "too large",
            b"DTQ" + os.urandom(2 * 1024 * 1024),
            "too_large",
            f"message is {2 * 1024 * 1024 + 3} bytes, over the limit of 1048576 bytes",
        ),
        (
            "a compression bomb",
            sign_frame(q, bomb, compressed=True),
            "too_large",
            f"compressed body inflates to more than the limit of 1048576 bytes ({len(bomb)} bytes compressed)",
        ),
    ]


def test_every_poison_message_is_dead_lettered_with_its_reason_and_never_run(system_calls):
    q, events, ran, good = make()
    cases = poison_cases(q, good)
    for _label, data, _reason, _detail in cases:
        q.storage.enqueue(data)
    for x in range(10):
        good(x)

    assert drain(q) == len(cases) + 10
    assert ran == list(range(10))  # the good ones all ran, after every bad one
    assert system_calls == []

    letters = q.storage.dead_letters()
    assert [letter.data for letter in letters] == [data for _label, data, _reason, _detail in cases]
    for letter, (label, _data, reason, detail) in zip(letters, cases, strict=True):
        assert letter.reason == reason, label
        if detail is not None:  # random bytes: see test_random_bytes_are_not_a_frame
            assert letter.detail == detail, label
        assert letter.attempts == 1, label
    dead_events = [e for e in events.events if e.signal == "dead-lettered"]
    assert [(e.task, e.args) for e in dead_events] == [
        (None, (letter.reason, letter.detail, letter.id, None)) for letter in letters
    ]
    assert q.storage.in_flight_size() == 0
    assert len(q) == 0


def test_random_bytes_are_not_a_frame():
    q, _events, _ran, _good = make()
    q.storage.enqueue(b"\x00" + os.urandom(100))
    run_next(q)
    [letter] = q.storage.dead_letters()
    assert letter.reason == "decode_error"
    assert letter.detail.startswith("not a django-tasks-q frame (starts with '\\x00")


def test_a_dead_lettered_message_is_logged_without_its_bytes(caplog):
    q, _events, _ran, _good = make()
    q.storage.enqueue(b"DTQ\x01\x00{oops")
    with caplog.at_level("ERROR", logger="django_tasks_q"):
        run_next(q)
    [letter] = q.storage.dead_letters()
    [record] = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert record.getMessage() == (
        f"queue {q.name!r}: a message that does not decode dead-lettered (bad_signature): "
        f"message is not signed, but this queue requires signed messages; message {letter.id}"
    )


def test_a_dead_lettered_unknown_task_is_logged_with_its_name_reason_and_id(caplog):
    q, _events, _ran, good = make()
    result = good(1)
    q.registry.unregister("t.good")
    with caplog.at_level("ERROR", logger="django_tasks_q"):
        run_next(q)
    [letter] = q.storage.dead_letters()
    [record] = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert record.getMessage().startswith(f"queue {q.name!r}: task t.good ({result.id}) dead-lettered (unknown_task): ")
    assert record.getMessage().endswith(f"; message {letter.id}")
    assert "DTQ" not in record.getMessage()


def test_an_unsigned_queue_still_refuses_undecodable_messages():
    q = new_queue(signing=False)
    ran = []

    @q.task(name="t.good")
    def good(x):
        ran.append(x)

    q.storage.enqueue(b"DTQ\x01\x00{not json")
    q.storage.enqueue(MessageCodec().encode(Message(name="os.system", args=("x",))))
    good(1)
    drain(q)
    assert [letter.reason for letter in q.storage.dead_letters()] == ["decode_error", "unknown_task"]
    assert ran == [1]


def test_a_message_signed_with_an_old_secret_key_still_verifies():
    old_key = settings.SECRET_KEY
    q_old = new_queue()

    @q_old.task(name="t.good")
    def good_old(x):
        return x

    data = valid_message(q_old, good_old, 7)
    with override_settings(SECRET_KEY="a brand new secret", SECRET_KEY_FALLBACKS=[old_key]):
        q = new_queue()

        @q.task(name="t.good")
        def good(x):
            return x * 2

        q.storage.enqueue(data)
        q.storage.enqueue(
            MessageCodec(signing_key=derive_signing_key("neither")).encode(Message(name="t.good"))
        )
        drain(q)
        assert [letter.reason for letter in q.storage.dead_letters()] == ["bad_signature"]
        [value] = q.all_results().values()
        assert value == 14


# ---------------------------------------------------------------------------------------------- fencing


def test_a_stale_reservation_writes_no_result():
    q, events, ran, good = make()
    result = good(5)
    stale = q.reserve(lease=5)
    [reclaimed] = q.reclaim_expired(later(6))
    assert reclaimed.reservation.token == stale.token
    fresh = q.reserve()
    assert (stale.attempt, fresh.attempt) == (1, 2)

    q.process(stale)  # the first worker was only slow: it runs the task, but its ack is refused
    assert ran == [5]
    assert result.is_ready() is False
    assert q.storage.in_flight_size() == 1  # still the fresh reservation's
    assert events.signals()[-1] == "lost-lease"

    q.process(fresh)
    assert ran == [5, 5]
    assert result() == 5
    assert q.storage.in_flight_size() == 0


def test_a_stale_reservation_of_a_failing_task_writes_no_error():
    q = new_queue()
    attempts = []

    @q.task(name="t.flaky", context=True)
    def flaky(task=None):
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise RuntimeError("the slow worker's failure")
        return "the new owner's value"

    result = flaky()
    stale = q.reserve(lease=5)
    q.reclaim_expired(later(6))
    fresh = q.reserve()
    q.process(fresh)  # the new owner finishes first
    q.process(stale)  # then the old one fails: its error must not replace the value
    assert attempts == [2, 1]
    assert result() == "the new owner's value"


def test_a_stale_reservation_enqueues_no_follow_up():
    q, _events, ran, good = make()
    q.enqueue(good.s(1).then(good))
    stale = q.reserve(lease=5)
    q.reclaim_expired(later(6))
    fresh = q.reserve()
    q.process(stale)
    assert len(q) == 0  # the next step was not enqueued by the worker that lost its lease
    q.process(fresh)
    assert len(q) == 1
    drain(q)
    assert ran == [1, 1, 1]


def test_a_stale_reservation_cannot_dead_letter():
    q, events, _ran, _good = make()
    q.storage.enqueue(b"junk")
    stale = q.reserve(lease=5)
    q.reclaim_expired(later(6))
    fresh = q.reserve()
    q.process(stale)
    assert q.storage.dead_letter_count() == 0
    assert events.signals() == ["reclaimed", "lost-lease"]
    q.process(fresh)
    assert q.storage.dead_letter_count() == 1


def test_expired_reservations_go_back_then_to_the_dead_letters_at_max_attempts():
    q = new_queue(max_attempts=2)
    events = Recorder(q)

    @q.task(name="t.crashy")
    def crashy():
        return "never acknowledged"

    result = crashy()
    q.reserve(lease=5)  # the worker dies
    assert [r.dead_lettered for r in q.reclaim_expired(later(6))] == [False]
    q.reserve(lease=5)  # and again
    assert [r.dead_lettered for r in q.reclaim_expired(later(12))] == [True]
    assert len(q) == 0
    [letter] = q.storage.dead_letters()
    assert (letter.reason, letter.attempts) == ("max_attempts", 2)
    assert events.signals() == ["enqueued", "reclaimed", "dead-lettered"]
    assert events.events[1].args[0] == result.id
    assert events.events[2].args[:2] == ("max_attempts", f"task {result.id}: lease expired after 2 attempt(s)")


# ---------------------------------------------------------------------------------------- unstorable results


def test_a_return_value_that_cannot_be_stored_is_a_clear_failure_not_a_crash():
    q = new_queue()
    events = Recorder(q)

    @q.task(name="t.unstorable", retries=3)
    def unstorable():
        return {"handle": object()}

    result = unstorable()
    assert drain(q) == 1  # no retry: running it again would give the same value
    assert q.storage.in_flight_size() == 0
    assert events.signals() == ["enqueued", "executing", "error"]
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["type"] == "django_tasks_q.exceptions.SerializationError"
    assert info.value.metadata["message"] == (
        f"task t.unstorable ({result.id}) returned a value that cannot be stored: "
        "return value['handle']: object of type object cannot be serialized as JSON"
    )


LOADED = []


class Marker:
    """Unpickling this records that a payload was loaded (what a malicious pickle would do)."""

    def __reduce__(self):
        return (LOADED.append, ("unpickled",))


def test_a_pickle_frame_with_a_bad_signature_is_never_unpickled():
    q = new_queue(serializer="pickle")
    ran = []

    @q.task(name="t.good")
    def good(x):
        ran.append(x)

    forged = MessageCodec(serializer="pickle", signing_key=b"an attacker's key").encode(
        Message(name="t.good", args=(Marker(),))
    )
    LOADED.clear()
    q.storage.enqueue(forged)
    drain(q)
    assert LOADED == []
    assert ran == []
    [letter] = q.storage.dead_letters()
    assert letter.reason == "bad_signature"


def test_the_signature_is_checked_before_decompression():
    q, _events, _ran, _good = make()
    bomb = zlib.compress(b"[" * (4 * 1024 * 1024), 9)
    forged = bytearray(sign_frame(q, bomb, compressed=True))
    forged[8] ^= 0xFF  # spoil the signature: the bomb must not even be inflated
    q.storage.enqueue(bytes(forged))
    drain(q)
    [letter] = q.storage.dead_letters()
    assert (letter.reason, letter.detail) == (
        "bad_signature",
        "signature does not match the signing key or any fallback key",
    )


def test_a_follow_up_whose_task_is_gone_is_dead_lettered_and_the_task_is_not_run_again():
    q, events, ran, good = make()

    @q.task(name="t.removed")
    def removed(x):
        return x

    first = next(iter(q.enqueue(good.s(1).then(removed))))
    q.registry.unregister("t.removed")  # a deploy removed the task while the pipeline was queued
    assert drain(q) == 1
    assert ran == [1]
    assert first() == 1
    assert q.storage.in_flight_size() == 0  # acknowledged: it will not run again
    [letter] = q.storage.dead_letters()
    assert (letter.reason, letter.detail) == (
        "unknown_task",
        f"follow-up task 't.removed' is not registered on queue {q.name!r}",
    )
    follow_up = q.codec.decode(letter.data)
    assert (follow_up.name, follow_up.args) == ("t.removed", (1,))
    assert events.signals() == ["enqueued", "executing", "complete", "dead-lettered"]
    assert events.events[-1].args == ("unknown_task", letter.detail, letter.id, follow_up.id)
