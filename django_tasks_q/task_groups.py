"""Groups and chords: calls enqueued together, and calls whose results feed one callback (huey's semantics).

Both are built first and enqueued later: ``queue.enqueue(group([...]))`` or ``group([...]).enqueue()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from .exceptions import InvalidOption
from .task import Task, TaskWrapper, as_task

if TYPE_CHECKING:
    from .hub.queue import TaskQueue
    from .result import ChordResult, ResultGroup


class group:
    """Calls to enqueue together: ``queue.enqueue(group([...]))`` (or ``.enqueue()``) returns a ResultGroup.

    Built first and enqueued later, as in huey. ``.then(callback)`` turns the group into a :class:`chord`;
    ``.error(handler)`` gives every member the same error handler.
    """

    def __init__(self, tasks: Iterable[Task | chord]) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise InvalidOption("group() needs at least one task call")
        for member in self.tasks:
            if not isinstance(member, (Task, chord)):
                raise InvalidOption("group() and chord() take task calls made with .s()")

    def then(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> chord:
        """A chord of this group's calls whose callback is ``task`` (a bare task or a ``.s()`` call)."""
        return chord(self.tasks, as_task(task, args, kwargs))

    def error(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> group:
        """Give every member the error handler ``task``; returns the group."""
        handler = as_task(task, args, kwargs)
        for member in self.tasks:
            member.error(handler)
        return self

    def enqueue(self) -> ResultGroup:
        """Enqueue the group on the queue of its first call."""
        return cast("ResultGroup", _queue_of(self).enqueue(self))  # what the queue returns for a group

    def __repr__(self) -> str:
        return f"<group of {len(self.tasks)}>"


class chord:
    """Calls that run in parallel (the header), then ``callback`` with the list of their results appended.

    Built first and enqueued later, as in huey: ``queue.enqueue(chord([...], callback))`` (or ``.enqueue()``)
    returns a :class:`~django_tasks_q.result.ChordResult`. ``callback`` is a ``.s()`` call or a bare task;
    ``.then()`` and ``.error()`` chain onto the callback. A member may be a pipeline (its last step's value
    counts) or another chord (its callback's value counts). As in huey the callback always runs: a member
    that fails for good contributes the exception it raised (rebuilt from its class path and args, else a
    :class:`~django_tasks_q.exceptions.TaskException`), one that is revoked, expires or is canceled ``None``.
    """

    def __init__(self, tasks: Iterable[Task | chord], callback: TaskWrapper | Task) -> None:
        self.tasks = list(tasks)
        if isinstance(callback, TaskWrapper):
            callback = callback.s()
        if not isinstance(callback, Task):
            raise InvalidOption("chord() callback must be a task, or a task call made with .s()")
        if not self.tasks:
            raise InvalidOption("chord() needs at least one task call in its header")
        for member in self.tasks:
            if isinstance(member, group):
                raise InvalidOption("a group cannot be a chord member: use group(...).then(callback) to make it a chord")
            if not isinstance(member, (Task, chord)):
                raise InvalidOption("group() and chord() take task calls made with .s()")
        self.callback = callback

    def then(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> chord:
        """Run ``task`` after the callback succeeds (a pipeline on the callback); returns the chord."""
        self.callback.then(task, *args, **kwargs)
        return self

    def error(self, task: TaskWrapper | Task, *args: Any, **kwargs: Any) -> chord:
        """Run ``task`` if the callback fails (or a member fails, so the callback never runs); returns the chord."""
        self.callback.error(task, *args, **kwargs)
        return self

    def enqueue(self) -> ChordResult:
        """Enqueue the chord on the queue of its first call."""
        return cast("ChordResult", _queue_of(self).enqueue(self))  # what the queue returns for a chord

    def __repr__(self) -> str:
        return f"<chord of {len(self.tasks)} then {self.callback!r}>"


def _queue_of(item: Task | group | chord) -> TaskQueue:
    while isinstance(item, (group, chord)):
        item = item.tasks[0]
    if item.wrapper is None:
        raise InvalidOption("group() and chord() take task calls made with .s()")
    return item.wrapper.queue
