"""What an execution leaves behind: the stored form of results and errors, and the work left once a task ran.

A stored result is ``[kind, payload]``: ``ok`` with the value, ``error`` with the error metadata (plain data,
never an exception object), or, for a chord member that never ran, ``skipped``. An error travels to an
``.error()`` handler or a chord callback as metadata and is turned back into the exception the task raised
just before the handler runs (:func:`with_errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import TaskException
from ..serializers import decode_exception
from ..task import Task

OK = "ok"
ERROR = "error"
SKIPPED = "skipped"
ERROR_ARGUMENT = "error_argument"
"""A call's ``extra`` key: the position of the argument that holds an error's metadata, passed to the
function as the exception the failed task raised (an ``.error()`` handler's last argument)."""
CHORD_ERRORS = "chord_errors"
"""A chord callback's ``extra`` key: the positions, in its list of member results, of members that failed;
each is passed to the function as the exception the member raised."""


class Outcome:
    """What an execution leaves to do once the task has run: a result to write, follow-ups to enqueue."""

    __slots__ = ("completed", "final_failure", "follow_ups", "intermediate_error", "requeued", "result")

    def __init__(self) -> None:
        self.result: bytes | None = None
        self.intermediate_error: bytes | None = None
        self.completed: Task | None = None
        self.follow_ups: list[Callable[[], object]] = []
        self.final_failure = False
        self.requeued = False


def error_handler_call(handler: Task, metadata: dict[str, Any]) -> Task:
    """A copy of an ``.error()`` handler call with the error appended (one copy per failed attempt)."""
    call = handler.copy(id=handler.id)
    call.args = (*call.args, metadata)
    call.extra[ERROR_ARGUMENT] = len(call.args) - 1
    return call


def with_errors(task: Task) -> tuple[Any, ...]:
    """``task.args`` with the error metadata it carries turned into the exceptions the failed tasks raised."""
    args = task.args
    position = task.extra.get(ERROR_ARGUMENT)
    if position is not None and position < len(args) and isinstance(args[position], dict):
        args = (*args[:position], _raised(args[position]), *args[position + 1 :])
    failed = task.extra.get(CHORD_ERRORS)
    if failed and args and isinstance(args[-1], list):
        values = list(args[-1])
        for index in failed:
            if index < len(values) and isinstance(values[index], dict):
                values[index] = _raised(values[index])
        args = (*args[:-1], values)
    return args


def _raised(metadata: dict[str, Any]) -> BaseException:
    """The exception a failed task raised, rebuilt from its error metadata; a :class:`TaskException` holding
    the metadata when it cannot be rebuilt (see :func:`~django_tasks_q.serializers.decode_exception`) or
    when an overridden ``build_error_result`` left the encoded exception out."""
    rebuilt = decode_exception(metadata.get("exception"))
    return rebuilt if rebuilt is not None else TaskException(metadata)


def chord_carrier(task: Task) -> Task | None:
    """The step of ``task``'s pipeline that reports to a chord: a member that stops early (failed, revoked,
    expired, canceled) must still report, or its chord would wait forever."""
    node: Task | None = task
    while node is not None:
        if node.chord:
            return node
        node = node.on_complete
    return None
