"""Revocations: calls (by id) and whole tasks that must not run, until a time or only once.

A revocation is a value ``[until, once]`` under the call's or the task's key. The ``revocations-made`` marker is
written before the first one, so that a storage that reads it with each claim lets workers skip the revocation
lookups while a queue has never revoked anything.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from ..backends.base import EmptyData, Feature
from ..exceptions import InvalidMessage
from ..result import Result
from ..task import Task, TaskWrapper
from ..timeutils import epoch, now_utc
from . import keyspace

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")


class Revocations:
    """Revokes and restores a hub's calls and tasks, and tells whether one is revoked."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def mark_existing_revocations(self) -> bool:
        """Write the ``revocations-made`` marker if revocations are stored without it (written by a version
        that did not write the marker); the consumer calls it at start. True when it wrote the marker."""
        storage = self.hub.storage
        if Feature.KEY_LISTING not in storage.features or storage.peek_data(keyspace.REVOCATIONS_MADE) is not EmptyData:
            return False
        if not storage.data_keys(keyspace.REVOKE_ID_PREFIX, 1) and not storage.data_keys(keyspace.REVOKE_TASK_PREFIX, 1):
            return False
        storage.put_data(keyspace.REVOCATIONS_MADE, b"1")
        return True

    def _revoke(self, key: str, revoke_until: dt.datetime | None, revoke_once: bool) -> None:
        hub = self.hub
        # The marker first, on every storage, so that a consumer whose storage reads it with each claim never
        # misses a revocation made by a process configured differently.
        hub.storage.put_data(keyspace.REVOCATIONS_MADE, b"1")
        until = epoch(hub.as_utc(revoke_until)) if revoke_until else None
        hub.storage.put_data(key, hub.codec.encode_value([until, bool(revoke_once)]))

    def revoke_all(
        self, task: TaskWrapper, revoke_until: dt.datetime | None = None, revoke_once: bool = False
    ) -> None:
        """Revoke every call of a task (until a time, or only the next one)."""
        self._revoke(keyspace.revoke_task_key(task.path), revoke_until, revoke_once)

    def restore_all(self, task: TaskWrapper) -> bool:
        """Undo :meth:`revoke_all`."""
        return self.hub.storage.delete_data(keyspace.revoke_task_key(task.path))

    def revoke_by_id(self, id: str, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
        """Revoke one call by task id."""
        self._revoke(keyspace.revoke_id_key(id), revoke_until, revoke_once)

    def restore_by_id(self, id: str) -> bool:
        """Undo :meth:`revoke_by_id`."""
        return self.hub.storage.delete_data(keyspace.revoke_id_key(id))

    def revoke(self, task: Task, revoke_until: dt.datetime | None = None, revoke_once: bool = False) -> None:
        """Revoke one call."""
        self.hub.revoke_by_id(task.id, revoke_until, revoke_once)

    def restore(self, task: Task) -> bool:
        """Undo :meth:`revoke`."""
        return self.hub.restore_by_id(task.id)

    def is_revoked(
        self, task: Task | TaskWrapper | Result | str, timestamp: dt.datetime | None = None, peek: bool = True
    ) -> bool:
        """Whether a call (a Task, its Result or its id) or a whole task (a TaskWrapper) is revoked at ``timestamp``.

        A check only looks (``peek=True``, the default). With ``peek=False`` (what execution does) a
        ``revoke_once`` revocation is used up and one whose ``revoke_until`` has passed is removed.
        """
        hub = self.hub
        now = epoch(now_utc() if timestamp is None else hub.as_utc(timestamp))
        if not isinstance(task, Task):
            if isinstance(task, str):
                return self._check(keyspace.revoke_id_key(task), now, peek)
            if not isinstance(task, Result):
                return self._check(keyspace.revoke_task_key(task.path), now, peek)
            task = task.task
        task_key = keyspace.revoke_task_key(task.path)
        id_key = keyspace.revoke_id_key(task.id)
        by_id, by_task = hub.storage.peek_many([id_key, task_key])  # one round trip for both
        return self._check(id_key, now, peek, by_id) or self._check(task_key, now, peek, by_task)

    def _check(self, key: str, now: float, peek: bool, raw: Any = None) -> bool:
        hub = self.hub
        if raw is None:
            raw = hub.storage.peek_data(key)
        if raw is EmptyData:
            return False
        try:
            until, once = hub.codec.decode_value(raw)
        except InvalidMessage as exc:
            logger.error("queue %r: ignoring revocation %s that does not verify: %s", hub.name, key, exc)
            return False
        if until is not None and now >= until:
            if not peek:
                hub.storage.delete_data(key)
            return False
        if once and not peek:
            # delete_data, not pop_data: on an expiring storage a read leaves the value, and the one check that
            # removes a revoke-once revocation must be the one that skips the call.
            return hub.storage.delete_data(key)
        return True
