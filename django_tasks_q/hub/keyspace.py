"""Every key the package writes in a storage's key/value area, named in one place.

A storage holds results under the bare task id (as huey does); everything else the hub keeps beside them lives
under one of the prefixes below, so that no two features can collide and a listing by prefix (the admin's
unique keys) finds only its own kind. Nothing else in the package spells a key.
"""

from __future__ import annotations

import datetime as dt

REVOKE_ID_PREFIX = "revoke."
REVOKE_TASK_PREFIX = "revoke-task."
REVOCATIONS_MADE = "revocations-made"
"""Written before the first revocation of a queue (and kept): while it is missing, no call can be revoked, which
a storage with the feature ``peek_on_reserve`` tells the worker with each claim, saving a read per task."""
REVOCATION_PEEK = (REVOCATIONS_MADE,)
"""The keys a storage with the feature ``peek_on_reserve`` reads with each claim."""
CHORD_PREFIX = "chord."
PERIODIC_PREFIX = "periodic."
PROGRESS_PREFIX = "progress."
UNIQUE_PREFIX = "unique."
LOCK_PREFIX = "lock."
RATE_LIMIT_PREFIX = "ratelimit."
RECORD_PREFIX = "djtask."
"""The ``django.tasks`` backend's record of a call (its status, times, worker ids, return value)."""
SCHEDULE_PREFIX = "schedule."
"""Markers of the database schedules' ticks: one per schedule and tick, so one consumer enqueues each."""

UNIQUE_KEY = "unique_key"
"""A call's ``extra`` field that holds the storage key of its unique claim."""
UNIQUE_TTL = "unique_ttl"
"""A call's ``extra`` field that holds how long its unique claim lasts."""


def revoke_id_key(task_id: str) -> str:
    """The revocation of one call."""
    return f"{REVOKE_ID_PREFIX}{task_id}"


def revoke_task_key(path: str) -> str:
    """The revocation of every call of a task."""
    return f"{REVOKE_TASK_PREFIX}{path}"


def unique_key(path: str, key: str) -> str:
    """The claim of a unique task's call: its task path and its key (given, or its arguments' digest)."""
    return f"{UNIQUE_PREFIX}{path}.{key}"


def periodic_marker(path: str, minute: str) -> str:
    """The marker that lets one consumer enqueue a periodic task for one minute (``%Y%m%d%H%M``, UTC)."""
    return f"{PERIODIC_PREFIX}{path}.{minute}"


def schedule_marker(schedule_id: object, tick: dt.datetime) -> str:
    """The marker that lets one consumer enqueue a database schedule's tick."""
    return f"{SCHEDULE_PREFIX}{schedule_id}.{tick.astimezone(dt.UTC).isoformat()}"


def progress_key(task_id: str) -> str:
    """The last progress a call reported."""
    return f"{PROGRESS_PREFIX}{task_id}"


def record_key(task_id: str) -> str:
    """The ``django.tasks`` backend's record of a call."""
    return f"{RECORD_PREFIX}{task_id}"


def chord_member_key(chord_id: str, index: int | str) -> str:
    """The outcome of one member of a chord."""
    return f"{CHORD_PREFIX}{chord_id}.{index}"


def chord_count_key(chord_id: str) -> str:
    """How many members of a chord have finished."""
    return f"{CHORD_PREFIX}{chord_id}.count"


def chord_fired_key(chord_id: str) -> str:
    """Set once the callback of a chord has been enqueued, so that it is enqueued once."""
    return f"{CHORD_PREFIX}{chord_id}.fired"


def lock_key(queue_name: str, lock_name: str) -> str:
    """A named lock: ``<queue name>.lock.<lock name>``, huey's layout, so a lock written by huey-style code
    (``put_if_empty``) is the same lock."""
    return f"{queue_name}.{LOCK_PREFIX}{lock_name}"


def rate_limit_key(name: str, window: int) -> str:
    """The counter of a rate limit's window (its start divided by the window's length)."""
    return f"{RATE_LIMIT_PREFIX}{name}.{window}"
