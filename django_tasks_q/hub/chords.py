"""Chords: header calls that run in parallel, then a callback with the list of their results.

Each member's last pipeline step reports its outcome under a key of its own; a counter says how many have
reported, and the member that completes the set enqueues the callback (a ``fired`` marker makes that happen
once, whichever members race for it).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..backends.base import EmptyData
from ..messages.envelope import Message
from ..result import ChordResult, Result, ResultGroup
from ..signals import SIGNAL_ERROR
from ..task import Task, TaskWrapper
from ..task_groups import chord
from . import keyspace
from .outcome import CHORD_ERRORS, ERROR, error_handler_call

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")

CHORD_TTL = 7 * 86400
"""How long a chord's bookkeeping (and a call's progress) is kept when the queue keeps results for ever."""


class Chords:
    """Enqueues a hub's chords and counts their members' outcomes."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def enqueue_chord(self, header: list[Task | chord], callback: Task | TaskWrapper) -> ChordResult:
        """Enqueue ``header`` calls bound to ``callback`` (see :class:`~django_tasks_q.task_groups.chord`)."""
        return self.enqueue(chord(header, callback))

    def enqueue(self, item: chord) -> ChordResult:
        """Enqueue a chord's members, each told the chord's id, size, its place and the callback."""
        hub = self.hub
        callback = item.callback
        hub.enqueuer.bind(callback)
        chord_id = uuid.uuid4().hex
        size = len(item.tasks)
        tails = []
        markers: list[dict[str, Any]] = []
        for index, member in enumerate(item.tasks):
            head = member.callback if isinstance(member, chord) else member
            tail = head.chain()[-1]
            # The last step of a member reports to the chord: a pipeline member counts when it has finished.
            marker: dict[str, Any] = {"id": chord_id, "size": size, "index": index, "callback": None}
            tail.chord = marker
            markers.append(marker)
            tails.append(tail)
        callback_data = callback.to_message(hub.as_utc).to_dict()
        for marker in markers:
            marker["callback"] = callback_data
        plain = [member for member in item.tasks if isinstance(member, Task)]
        if len(plain) == size:
            hub.enqueue_many(plain)
        else:
            for member in item.tasks:
                hub.enqueue(member)
        results = ResultGroup([Result(hub, tail) for tail in tails])
        return ChordResult(hub, callback, results, [Result(hub, step) for step in callback.chain()[1:]])

    def member_done(self, task: Task, outcome: list[Any]) -> None:
        """Record the outcome of a chord member; the last one to report enqueues the callback."""
        hub = self.hub
        storage = hub.storage
        info = task.chord or {}
        chord_id, size, index = info["id"], int(info["size"]), int(info["index"])
        ttl = hub.result_ttl or CHORD_TTL
        if storage.put_if_empty(keyspace.chord_member_key(chord_id, index), hub.codec.encode_value(outcome), ttl=ttl):
            count = storage.incr(keyspace.chord_count_key(chord_id), 1, ttl=ttl)
            if count < size:
                return
        members = []
        for position in range(size):
            raw = storage.peek_data(keyspace.chord_member_key(chord_id, position))
            if raw is EmptyData:
                return
            members.append(hub.codec.decode_value(raw))
        callback = Task.from_message(Message.from_dict(info["callback"]), present=hub.present)
        if not storage.put_if_empty(keyspace.chord_fired_key(chord_id), b"1", ttl=ttl):
            return
        if callback.path not in hub.registry:
            logger.error("queue %r: chord %s finished but its callback %r is not registered", hub.name,
                         chord_id, callback.path)
            self._fail_callback(
                callback, {"task": callback.path, "task_id": callback.id, "error": "callback task is not registered"}
            )
        else:
            # As in huey the callback always runs: a member that failed for good contributes its error (the
            # exception it raised, when the callback runs), one that was revoked, expired or canceled None.
            callback.wrapper = hub.registry.get(callback.path)
            callback.args = (*callback.args, [payload for _kind, payload in members])
            failed = [position for position, (kind, _payload) in enumerate(members) if kind == ERROR]
            if failed:
                callback.extra[CHORD_ERRORS] = failed
            hub.enqueue(callback)
        for position in range(size):
            storage.delete_data(keyspace.chord_member_key(chord_id, position))
        storage.delete_data(keyspace.chord_count_key(chord_id))

    def _fail_callback(self, callback: Task, member_error: dict[str, Any]) -> None:
        hub = self.hub
        error = RuntimeError(
            f"chord member {member_error.get('task')} ({member_error.get('task_id')}) failed: "
            f"{member_error.get('error')}"
        )
        metadata = hub.build_error_result(callback, error)
        metadata["traceback"] = member_error.get("traceback", "")
        if hub.results:
            hub.result_store.put_encoded(callback.id, hub.codec.encode_value([ERROR, metadata]))
        hub._emit(SIGNAL_ERROR, callback, error)
        if callback.on_error is not None:
            hub.enqueuer.enqueue_follow_up(error_handler_call(callback.on_error, metadata))
