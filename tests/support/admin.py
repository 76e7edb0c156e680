"""Shared pieces of the admin and history tests: queues, tasks, users, a recorder without its thread, pages."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client

from django_tasks_q import crontab
from django_tasks_q.conf import queues
from django_tasks_q.decorators import periodic_task, task
from django_tasks_q.history.recorder import HistoryRecorder
from django_tasks_q.testing import drain

Q = "adm"
Q2 = "adm2"
XSS = "<script>alert('x')</script>"


def memory_settings() -> dict[str, Any]:
    """Two memory queues for the admin tests."""
    return {
        Q: {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}, "LEASE": 30},
        Q2: {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}},
    }


def storage_settings(kind: str, request: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """TASKS_Q with queue Q on storage ``kind`` (``extra``: more hub settings of Q) and Q2 in memory."""
    if kind == "memory":
        settings = memory_settings()
        settings[Q].update(extra)
        return settings
    if kind == "redis":
        url = request.getfixturevalue("fresh_redis_url")
        return {Q: {"URL": f"{url}?prefix=adm-{uuid.uuid4().hex[:8]}", **extra}, Q2: {"BACKEND": "memory"}}
    if kind == "sqlite":
        return {Q: {"URL": f"sqlite:///{tmp_path / 'q.db'}", **extra}, Q2: {"BACKEND": "memory"}}
    if kind == "file":
        return {Q: {"URL": f"file://{tmp_path / 'queue'}", **extra}, Q2: {"BACKEND": "memory"}}
    return {Q: {"BACKEND": "orm", **extra}, Q2: {"BACKEND": "memory"}}



@task(queue=Q)
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task(queue=Q)
def echo(text: str) -> str:
    """Return the text."""
    return text


@task(queue=Q, context=True)
def halfway(n: int, task: Any = None) -> int:
    """Report progress (with markup in the message) and return."""
    task.report_progress(0.5, f"half of {n} {XSS}")
    return n


@task(queue=Q)
def explode(text: str) -> None:
    """Fail with markup in the error."""
    raise ValueError(f"boom {text}")


@task(queue=Q2)
def other_queue_task() -> str:
    """A task of the second queue."""
    return "ok"


@periodic_task(crontab(minute="*/5", tz="Europe/Paris"), queue=Q, name="adm.tick")
def tick() -> None:
    """Every five minutes, Paris time."""


@contextlib.contextmanager
def recording(*hubs: Any) -> Iterator[HistoryRecorder]:
    """A recorder connected (no thread) for the block; flushed at the end."""
    recorder = HistoryRecorder(consumer_identity=None).connect()
    for hub in hubs:
        recorder.attach(hub)
    try:
        yield recorder
    finally:
        recorder.disconnect()
        recorder.flush()


def populate(hub: Any) -> dict[str, Any]:
    """Put something in every area of ``hub``: pending, scheduled, in flight, results, history, dead letters."""
    made: dict[str, Any] = {}
    with recording(hub):
        made["done"] = hub.enqueue_call("tests.support.admin.echo", [XSS])
        made["failed"] = hub.enqueue_call("tests.support.admin.explode", [XSS])
        made["progress"] = hub.enqueue_call("tests.support.admin.halfway", [7])
        drain(hub.name)
    # A call with a future eta is enqueued; the worker that takes it (drain) moves it to the schedule.
    made["scheduled"] = hub.enqueue_call("tests.support.admin.add", [3, 4], delay=3600)
    drain(hub.name)
    made["pending"] = hub.enqueue_call("tests.support.admin.echo", [XSS])
    made["pending2"] = hub.enqueue_call("tests.support.admin.add", [1, 2], priority=5)
    made["running"] = hub.enqueue_call("tests.support.admin.add", [5, 6])
    # The reservation is taken last so that the first reserved message is "running" (FIFO for equal priority).
    if hub.supports_dead_letters:
        hub.storage.add_dead_letter(b"\x00garbage " + XSS.encode(), "decode_error", f"detail {XSS}", attempts=1)
    hub.lock_task("adm-lock").acquire()
    limiter = hub.rate_limit("adm-rate", 5, 60)
    limiter.acquire()
    return made


def reserve_one(hub: Any) -> Any:
    """Reserve the next ready message (leaving it in flight)."""
    return hub.reserve(60)


def make_user(username: str, *codenames: str, staff: bool = True, superuser: bool = False) -> User:
    """A user with the given ``django_tasks_q`` permissions."""
    user = User.objects.create_user(username, password="pw", is_staff=staff, is_superuser=superuser)
    if codenames:
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_tasks_q",
                                                             codename__in=codenames))  # fmt: skip
    return user


def client_for(user: User | None, csrf: bool = False) -> Client:
    """A test client logged in as ``user`` (anonymous for None); ``csrf`` enforces CSRF checks."""
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


VIEW_PERMS = (
    "view_queueoverview", "view_pendingtask", "view_scheduledtask", "view_inflighttask", "view_deadletterentry",
    "view_periodictask", "view_registeredtask", "view_lockentry", "view_taskhistory", "view_consumerheartbeat",
)  # fmt: skip

PAGES = {
    "dashboard": "/admin/django_tasks_q/queueoverview/",
    "pending": "/admin/django_tasks_q/pendingtask/",
    "scheduled": "/admin/django_tasks_q/scheduledtask/",
    "in_flight": "/admin/django_tasks_q/inflighttask/",
    "dead_letters": "/admin/django_tasks_q/deadletterentry/",
    "periodic": "/admin/django_tasks_q/periodictask/",
    "registered": "/admin/django_tasks_q/registeredtask/",
    "run_form": f"/admin/django_tasks_q/registeredtask/run/?queue={Q}&task=tests.support.admin.add",
    "locks": "/admin/django_tasks_q/lockentry/",
    "history": "/admin/django_tasks_q/taskhistory/",
    "consumers": "/admin/django_tasks_q/consumerheartbeat/",
}
PAGE_PERMS = {
    "dashboard": "view_queueoverview",
    "pending": "view_pendingtask",
    "scheduled": "view_scheduledtask",
    "in_flight": "view_inflighttask",
    "dead_letters": "view_deadletterentry",
    "periodic": "view_periodictask",
    "registered": "view_registeredtask",
    "run_form": "view_registeredtask",
    "locks": "view_lockentry",
    "history": "view_taskhistory",
    "consumers": "view_consumerheartbeat",
}


def action_url(name: str) -> str:
    """URL of one admin action."""
    return f"/admin/django_tasks_q/queueoverview/action/{name}/"


def soon(seconds: float = 0) -> dt.datetime:
    """Now plus ``seconds``, aware."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def hub(name: str = Q) -> Any:
    """The hub of a queue under the current settings."""
    return queues[name]
