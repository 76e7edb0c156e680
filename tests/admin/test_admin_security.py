"""The admin and hostile payloads: hostile bytes in every area of every storage; no page ever runs or decodes them.

A pickle whose ``__reduce__`` would create a marker file is pushed unsigned and badly signed (as messages and
as values) into the queue, the schedule, in-flight, dead letters, results, progress and revocation records of
a pickle queue (signing on) and of a JSON queue. Every admin page is opened, the messages are consumed
(and dead-lettered), every page is opened again: the marker never appears, and the pages still answer.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_tasks_q.conf import queues
from django_tasks_q.history.models import TaskHistory
from django_tasks_q.messages.codec import FLAG_SIGNED, FLAG_VALUE, FRAME_VERSION, MAGIC, SERIALIZER_PICKLE
from django_tasks_q.testing import drain
from tests.support.admin import PAGES, Q, client_for, make_user, storage_settings

pytestmark = pytest.mark.django_db

HOSTILE_ID = "hostile-task-id"


class Marker:
    """Unpickling this creates the marker file (``open(path, "w")``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def frames(marker: Path, *, value: bool) -> list[bytes]:
    """The payload as an unsigned frame and as a frame with a wrong signature."""
    body = pickle.dumps(Marker(marker))
    flags = SERIALIZER_PICKLE | (FLAG_VALUE if value else 0)
    unsigned = MAGIC + bytes((FRAME_VERSION, flags)) + body
    badly_signed = MAGIC + bytes((FRAME_VERSION, flags | FLAG_SIGNED)) + b"\x17" * 32 + body
    return [unsigned, badly_signed]


@pytest.fixture(params=["memory", "sqlite", "file", "orm", "redis"])
def hostile(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[Path]:
    serializer = request.node.callspec.params.get("serializer", "pickle")
    settings.TASKS_Q = storage_settings(request.param, request, tmp_path, SERIALIZER=serializer)
    marker = tmp_path / "marker"
    hub = queues[Q]
    storage = hub.storage  # setting up the attack needs the raw storage; the admin never touches it
    for data in frames(marker, value=False):
        storage.enqueue(data)
        storage.add_to_schedule(data, 4_000_000_000.0)
        if hub.supports_dead_letters:
            storage.add_dead_letter(data, "bad_signature", "pushed by the test")
    reserved = hub.reserve(60)
    assert reserved is not None  # one hostile message is now in flight
    unsigned_value, badly_signed_value = frames(marker, value=True)
    storage.put_data(HOSTILE_ID, unsigned_value, is_result=True)
    storage.put_data(f"progress.{HOSTILE_ID}", badly_signed_value)
    storage.put_data(f"revoke.{HOSTILE_ID}", unsigned_value)
    TaskHistory.objects.create(queue=Q, task_id=HOSTILE_ID, name="tests.support.admin.echo", status="failed")
    yield marker
    hub.flush()


def _open_every_page(client: Any) -> None:
    row = TaskHistory.objects.get(task_id=HOSTILE_ID)
    urls = [*PAGES.values(), f"/admin/django_tasks_q/taskhistory/{row.pk}/change/"]
    for page in ("pending", "scheduled", "in_flight", "dead_letters"):
        urls += [PAGES[page] + f"?queue={Q}", PAGES[page] + f"?queue={Q}&q=a"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_hostile_payloads_never_run_from_any_admin_page(hostile: Path, serializer: str) -> None:
    client = client_for(make_user("root", superuser=True))
    _open_every_page(client)
    assert not hostile.exists()
    drain(Q)  # the consumer's path: every hostile message is refused and dead-lettered
    _open_every_page(client)
    assert not hostile.exists()
    body = client.get(PAGES["pending"] + f"?queue={Q}").content.decode()
    assert "Unverified message" not in body  # drained
    detail = client.get(f"/admin/django_tasks_q/taskhistory/{TaskHistory.objects.get(task_id=HOSTILE_ID).pk}/change/")
    assert 'id="tq-no-stored"' in detail.content.decode()


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: unpickling the payload does create the marker, so the test above would notice."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Marker(marker))).close()
    assert marker.exists()
