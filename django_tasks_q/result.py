"""Handles on task results: :class:`Result`, :class:`ResultGroup` and :class:`ChordResult`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .backends.base import EmptyData
from .exceptions import InvalidMessage, ResultTimeout, TaskDeadLettered, TaskException

if TYPE_CHECKING:
    from .backends.base import DeadLetter
    from .hub.queue import TaskQueue
    from .task import Task

_MISSING = object()


class Result:
    """The result of one enqueued call; ``result()`` / ``result.get()`` read its value.

    A value read from the storage is removed there (unless ``preserve=True``; on the expiring Redis storages
    values stay until they expire, as in huey) and cached on this handle; :meth:`reset` forgets the cached value.
    """

    def __init__(self, queue: TaskQueue, task: Task) -> None:
        self.queue = queue
        self.task = task
        self._value: Any = _MISSING

    @property
    def id(self) -> str:
        """The task id (stable across retries and redeliveries)."""
        return self.task.id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Result {self.task!r}>"

    def is_ready(self) -> bool:
        """Whether a value (or error) is stored for this task, or already read."""
        return self._value is not _MISSING or self.queue.result_exists(self.id)

    def _get(self, preserve: bool = False) -> Any:
        """The stored value (a ``StoredError`` for a failure) or ``EmptyData``; removed unless ``preserve``."""
        if self._value is not _MISSING:
            return self._value
        value = self.queue.read_result(self.id, preserve=preserve)
        if value is not NO_RESULT:
            self._value = value
        return value

    def get(
        self,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        """Return the task's value, ``None`` when not ready, or raise :class:`TaskException` if it failed.

        With ``blocking=True`` wait for it, polling with ``backoff`` up to
        ``max_delay`` seconds between looks (a storage that can wait for a key
        is asked to); after ``timeout`` seconds raise :class:`ResultTimeout`
        (revoking the task first when ``revoke_on_timeout``).
        """
        value = self._get(preserve)
        if value is NO_RESULT and blocking:
            value = self._wait(timeout, backoff, max_delay, preserve)
            if value is NO_RESULT:
                if revoke_on_timeout:
                    self.revoke()
                self._raise_if_dead_lettered(timeout)
                raise ResultTimeout(f"task {self.id} ({self.task.path}) produced no result in {timeout} s")
        if value is NO_RESULT:
            return None
        if isinstance(value, StoredError):
            raise TaskException(value.metadata)
        return value

    def _raise_if_dead_lettered(self, timeout: float | None) -> None:
        """After a timeout (never on the normal path): tell the caller when the message is a dead letter."""
        letter = find_dead_letter(self.queue, self.id)
        if letter is None:
            return
        raise TaskDeadLettered(
            f"task {self.id} ({self.task.path}) produced no result in {timeout} s because its message was "
            f"dead-lettered on queue {self.queue.name!r} ({letter.reason}: {letter.detail}); it will not run. "
            f"The admin's Dead letters page (or queues[{self.queue.name!r}].dead_letters()) shows it as "
            f"{letter.id!r}; fix the cause, then requeue it there",
            reason=letter.reason,
            detail=letter.detail,
            dead_letter_id=letter.id,
        )

    def _wait(self, timeout: float | None, backoff: float, max_delay: float, preserve: bool) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return NO_RESULT
            wait_for = delay if remaining is None else min(delay, remaining)
            arrived = self.queue.wait_for_result(self.id, wait_for)
            value = self._get(preserve)
            if value is not NO_RESULT or arrived:
                # A value that was there when the wait ended but is gone now was read by another caller:
                # it will not come back, so stop waiting (ResultTimeout) rather than wait for ever.
                return value
            delay = min(delay * backoff, max_delay)

    def progress(self) -> dict[str, Any] | None:
        """The last progress the task reported (``fraction``, ``message``, ``at``), or None."""
        return self.queue.get_progress(self.id)

    def revoke(self, revoke_once: bool = True) -> None:
        """Revoke this call so that it does not run (unless it already started)."""
        self.queue.revoke_by_id(self.id, revoke_once=revoke_once)

    def restore(self) -> bool:
        """Undo :meth:`revoke`; True when a revocation was removed."""
        return self.queue.restore_by_id(self.id)

    def is_revoked(self) -> bool:
        """Whether this call is revoked."""
        return self.queue.is_revoked(self.task)

    def reschedule(
        self,
        eta: dt.datetime | None = None,
        delay: float | dt.timedelta | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        priority: int | None = None,
        preserve_pipeline: bool = True,
    ) -> Result:
        """Revoke this call and enqueue a copy (new id) at ``eta`` / after ``delay``; returns its Result."""
        return self.queue.reschedule(
            self.task,
            eta=eta,
            delay=delay,
            expires=expires,
            priority=priority,
            preserve_pipeline=preserve_pipeline,
        )

    def reset(self) -> None:
        """Forget the cached value so the next :meth:`get` reads the storage again."""
        self._value = _MISSING


def find_dead_letter(queue: TaskQueue, task_id: str) -> DeadLetter | None:
    """The dead letter of task ``task_id`` in ``queue``'s storage, or None (a scan: for error paths only)."""
    try:
        if not queue.supports_dead_letters:
            return None
        letters = queue.dead_letters()
    except Exception:  # the storage is down: the plain timeout is all that can be said
        return None
    for letter in reversed(letters):
        try:
            if queue.codec.decode(letter.data).id == task_id:
                return letter
        except InvalidMessage:
            continue
    return None


class StoredError:
    """A failure as stored in the result area: plain data (the error metadata), never an exception object."""

    __slots__ = ("metadata",)

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"<StoredError {self.metadata.get('error')!r}>"


NO_RESULT: Any = EmptyData
"""What :meth:`TaskQueue.read_result` returns when nothing is stored for an id: the storage's ``EmptyData``."""


class ResultGroup:
    """Results of several calls (a pipeline, a group or ``map``)."""

    def __init__(self, results: list[Result]) -> None:
        self._results = list(results)

    def __getitem__(self, index: int) -> Any:
        """The value of the ``index``-th result, waiting for it (as huey does); iterate for the Results."""
        return self._results[index].get(blocking=True)

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        return f"<ResultGroup of {len(self._results)}>"

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.get(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> list[Any]:
        """The values of every result, in order (each read with the same arguments as :meth:`Result.get`)."""
        return [result.get(*args, **kwargs) for result in self._results]

    def as_completed(
        self, backoff: float = 1.15, max_delay: float = 1.0, timeout: float | None = None
    ) -> Iterator[Any]:
        """Yield values as their tasks finish (raising :class:`TaskException` for a failed one)."""
        pending = list(self._results)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while pending:
            for result in list(pending):
                if result.is_ready():
                    pending.remove(result)
                    yield result.get()
            if not pending:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"{len(pending)} task(s) of the group produced no result in {timeout} s")
            time.sleep(delay)
            delay = min(delay * backoff, max_delay)

    def reset(self) -> None:
        """Forget every cached value."""
        for result in self._results:
            result.reset()


class ChordResult(Result):
    """The result of a chord: reading it reads the callback's value.

    ``results`` (also ``header``) holds the members' results (for a pipeline member, its last step's);
    ``callback`` is the callback's :class:`Result`; ``pipeline_results`` holds the results of the callback
    and of the steps chained onto it with ``.then()``, or ``None`` when nothing is chained.
    """

    def __init__(
        self, queue: TaskQueue, callback: Task, results: ResultGroup, chained: list[Result] | None = None
    ) -> None:
        super().__init__(queue, callback)
        self.results = results
        self.header = results
        self.callback = Result(queue, callback)
        self.pipeline_results = ResultGroup([self.callback, *chained]) if chained else None

    def _get(self, preserve: bool = False) -> Any:
        return self.callback._get(preserve)

    def reset(self) -> None:
        """Forget the callback's cached value."""
        self.callback.reset()

    def __repr__(self) -> str:
        return f"<ChordResult {self.task!r} after {len(self.results)} tasks>"
