"""Enqueue on commit: after the surrounding transaction commits, and never on rollback."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings

from django_tasks_q.conf import queues
from django_tasks_q.decorators import task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_backends]

MEMORY = {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}


@task(queue="oncommit")
def note(text: str) -> str:
    return text


class Boom(Exception):
    pass


@override_settings(TASKS_Q={"oncommit": MEMORY})
def test_per_call_on_commit_waits_for_commit_and_drops_on_rollback() -> None:
    hub = queues["oncommit"]
    with transaction.atomic():
        result = note.enqueue_on_commit("kept")
        assert hub.pending_count() == 0
    assert [t.args for t in hub.pending()] == [("kept",)]
    assert [t.id for t in hub.pending()] == [result.id]
    with pytest.raises(Boom), transaction.atomic():
        note.enqueue_on_commit("dropped")
        raise Boom
    assert [t.args for t in hub.pending()] == [("kept",)]


@override_settings(TASKS_Q={"oncommit": MEMORY | {"ENQUEUE_ON_COMMIT": True}})
def test_queue_setting_makes_every_call_wait_for_commit() -> None:
    hub = queues["oncommit"]
    with pytest.raises(Boom), transaction.atomic():
        note("rolled back")
        assert hub.pending_count() == 0
        raise Boom
    with transaction.atomic():
        note("committed")
    assert [t.args for t in hub.pending()] == [("committed",)]


@override_settings(TASKS_Q={"oncommit": MEMORY | {"ENQUEUE_ON_COMMIT": True}})
def test_outside_a_transaction_on_commit_enqueues_at_once() -> None:
    note("now")
    assert queues["oncommit"].pending_count() == 1


@override_settings(TASKS_Q={"oncommit": MEMORY | {"ENQUEUE_ON_COMMIT": True}})
def test_bad_call_fails_at_once_even_when_deferred() -> None:
    from django_tasks_q.exceptions import InvalidOption

    with transaction.atomic(), pytest.raises(InvalidOption, match="arguments do not match"):
        note()
