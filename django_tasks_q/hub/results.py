"""Results and records: what a hub keeps in its storage's key/value area about calls.

A result is stored under the call's id as ``[kind, payload]`` (see :mod:`~django_tasks_q.hub.outcome`), encoded
and signed like a message; a record (progress, the ``django.tasks`` backend's) is any value under a key of its
own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..backends.base import EmptyData
from ..exceptions import InvalidMessage, InvalidOption
from ..result import NO_RESULT, Result, StoredError
from ..task import Task
from ..timeutils import now_utc
from . import keyspace
from .chords import CHORD_TTL
from .outcome import ERROR, OK

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")


class ResultStore:
    """Reads and writes a hub's results, progress and other records."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def put_encoded(self, id: str, data: bytes) -> None:
        """Store an encoded result for call ``id``, kept for the queue's ``result_ttl``."""
        ttl = self.hub.result_ttl
        if ttl is None:
            self.hub.storage.put_data(id, data, is_result=True)
        else:
            self.hub.storage.put_data(id, data, is_result=True, ttl=ttl)

    def put_result(self, id: str, value: Any) -> None:
        """Store ``value`` as the result of ``id``."""
        self.put_encoded(id, self.hub.codec.encode_value([OK, value]))

    def read_result(self, id: str, preserve: bool = False) -> Any:
        """The stored value of a call, a :class:`StoredError`, or ``NO_RESULT``; removed unless ``preserve``."""
        storage = self.hub.storage
        raw = storage.peek_data(id) if preserve else storage.pop_data(id)
        if raw is EmptyData:
            return NO_RESULT
        kind, payload = self.hub.codec.decode_value(raw)
        if kind == ERROR:
            return StoredError(payload)
        return payload

    def result(self, id: str, blocking: bool = False, timeout: float | None = None, **kwargs: Any) -> Any:
        """Read the result of a call by id (``Result.get`` semantics)."""
        return Result(self.hub, Task("", id=id)).get(blocking=blocking, timeout=timeout, **kwargs)

    def result_exists(self, id: str) -> bool:
        """Whether a value or error is stored for ``id``."""
        return self.hub.storage.has_data_for_key(id)

    def wait_for_result(self, id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until a value is stored for ``id``; True when one was seen."""
        return self.hub.storage.wait_result(id, timeout) is not EmptyData

    def peek_result(self, id: str) -> Any:
        """Like ``read_result(id, preserve=True)``, but a value that does not verify is ``NO_RESULT``."""
        try:
            return self.hub.read_result(id, preserve=True)
        except (InvalidMessage, TypeError, ValueError) as exc:
            logger.warning("queue %r: result %s does not decode: %s", self.hub.name, id, exc)
            return NO_RESULT

    def delete_result(self, id: str) -> bool:
        """Delete the stored result of call ``id``; False when there is none (other keys are never touched)."""
        storage = self.hub.storage
        raw = storage.peek_data(id)
        if raw is EmptyData:
            return False
        try:
            kind, _payload = self.hub.codec.decode_value(raw)
        except (InvalidMessage, TypeError, ValueError):
            return False
        return kind in (OK, ERROR) and storage.delete_data(id)

    def all_results(self) -> dict[str, Any]:
        """Every stored result by task id: the value, or a :class:`StoredError`."""
        results: dict[str, Any] = {}
        for key, raw in self.hub.storage.task_results().items():
            try:
                kind, payload = self.hub.codec.decode_value(raw)
            except InvalidMessage as exc:
                logger.warning("queue %r: result %s does not decode: %s", self.hub.name, key, exc)
                continue
            results[key] = StoredError(payload) if kind == ERROR else payload
        return results

    def result_count(self) -> int:
        """How many results are stored."""
        return self.hub.storage.task_result_count()

    def flush_results(self) -> None:
        """Remove every stored result (locks, revocations and other data stay)."""
        self.hub.storage.flush_task_results()

    def put_record(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (encoded and signed like a message) under ``key`` in the key/value area."""
        data = self.hub.codec.encode_value(value, where=key)
        if ttl is None:
            self.hub.storage.put_data(key, data)
        else:
            self.hub.storage.put_data(key, data, ttl=ttl)

    def get_record(self, key: str) -> Any:
        """The value stored with :meth:`put_record`, or ``None``."""
        raw = self.hub.storage.peek_data(key)
        return None if raw is EmptyData else self.hub.codec.decode_value(raw)

    def delete_record(self, key: str) -> bool:
        """Remove a value stored with :meth:`put_record`."""
        return self.hub.storage.delete_data(key)

    def report_progress(self, id: str, fraction: float, message: str = "") -> None:
        """Record the progress of call ``id`` (a fraction from 0 to 1 and a message)."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise InvalidOption(f"progress must be a number from 0 to 1, got {fraction!r}", field="progress")
        record = {"fraction": float(fraction), "message": str(message), "at": now_utc()}
        self.hub.put_record(keyspace.progress_key(id), record, ttl=self.hub.result_ttl or CHORD_TTL)

    def get_progress(self, id: str) -> dict[str, Any] | None:
        """The last progress reported by call ``id`` (``fraction``, ``message``, ``at``), or None."""
        return self.hub.get_record(keyspace.progress_key(id))
