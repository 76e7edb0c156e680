"""Every exception django-tasks-q raises, importable from one place.

The storage errors (``ConfigurationError``, ``StorageError`` and their base ``TasksQError``) are defined in
:mod:`django_tasks_q.backends.errors`, beside the storages that raise them, and exported here.

The names huey users know (``TaskException``, ``RetryTask``, ``CancelExecution``,
``TaskLockedException``, ``ResultTimeout``, ``HueyException``) are kept; the
rest are specific so that callers can catch exactly what went wrong.
"""

from __future__ import annotations

from typing import Any

from .backends.errors import ConfigurationError, MissingDependency, StorageError, TasksQError, UnknownOptions

__all__ = [
    "AcknowledgementFailed",
    "BadSignature",
    "CancelExecution",
    "ConfigurationError",
    "EnqueueError",
    "HueyException",
    "InvalidEta",
    "InvalidMessage",
    "InvalidOption",
    "InvalidPriority",
    "MessageDecodeError",
    "MessageTooLarge",
    "MissingDependency",
    "RateLimitExceeded",
    "ResultTimeout",
    "RetryTask",
    "SerializationError",
    "StorageError",
    "TaskDeadLettered",
    "TaskException",
    "TaskLockedException",
    "TaskNotRegistered",
    "TaskTimeout",
    "TasksQError",
    "UnknownOptions",
    "UnknownQueue",
    "UnknownTaskInMessage",
]


HueyException = TasksQError


class AcknowledgementFailed(StorageError):
    """A task reached its final state but the storage could not record it (unreachable, or its disk full).

    The worker still holds the reservation: ``reservation`` and ``result`` (the ``(key, value, ttl)`` write,
    or ``None``) are what to acknowledge again once the storage answers. The acknowledgement is fenced by the
    reservation's token, so trying it again is safe: once the lease was reclaimed it changes nothing.
    ``completed`` is the task whose ``complete`` signal waits for that acknowledgement (it carries the result).
    """

    def __init__(self, message: str, *, reservation: Any, result: Any, task_id: str, completed: Any = None) -> None:
        super().__init__(message)
        self.reservation = reservation
        self.result = result
        self.task_id = task_id
        self.completed = completed


# --- enqueue-time validation: nothing is written when one is raised ---


class EnqueueError(TasksQError):
    """A call could not be turned into a message; nothing was written.

    ``field`` names the part of the call that was wrong (``"args"``,
    ``"priority"``, ``"eta"`` ...).
    """

    field: str = ""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class TaskNotRegistered(EnqueueError):
    """The task path is not in the queue's registry."""

    field = "name"


class SerializationError(EnqueueError):
    """A value cannot be encoded by the serializer and decoded back unchanged."""

    field = "args"


class InvalidPriority(EnqueueError):
    """The priority is not an integer in the allowed range."""

    field = "priority"


class InvalidEta(EnqueueError):
    """The eta or delay is not a usable point in time."""

    field = "eta"


class InvalidOption(EnqueueError):
    """A task option or call keyword is unknown or has a value of the wrong kind."""

    field = "options"


class UnknownQueue(EnqueueError, ConfigurationError):
    """No queue of that name is configured."""

    field = "queue"


# --- consume-time rejection: the message goes to the dead letters, never runs ---


class InvalidMessage(TasksQError):
    """Stored bytes that must not be executed; ``reason`` is the dead-letter reason code."""

    reason: str = "invalid"


class BadSignature(InvalidMessage):
    """The message's HMAC does not verify with the current key or any fallback key."""

    reason = "bad_signature"


class MessageDecodeError(InvalidMessage):
    """The message verified (or signing is off) but its body cannot be decoded."""

    reason = "decode_error"


class MessageTooLarge(InvalidMessage, EnqueueError):
    """The encoded message is larger than the queue's size limit."""

    reason = "too_large"
    field = "payload"


class UnknownTaskInMessage(InvalidMessage):
    """A stored message names a task this process has not registered."""

    reason = "unknown_task"


# --- raised inside or around task execution (huey's semantics) ---


class RetryTask(Exception):
    """Raise from a task to retry it now, or at ``eta`` / after ``delay`` seconds."""

    def __init__(self, msg: str | None = None, eta: Any = None, delay: float | None = None) -> None:
        super().__init__(msg or "retry requested")
        self.eta = eta
        self.delay = delay


class CancelExecution(Exception):
    """Raise from a ``pre_execute`` hook or a task to cancel it; ``retry=True`` retries it."""

    def __init__(self, retry: bool | None = None, *args: Any) -> None:
        super().__init__(*args)
        self.retry = retry


class TaskLockedException(TasksQError):
    """A ``lock_task`` lock was already held when the task tried to take it."""


class RateLimitExceeded(TasksQError):
    """A ``rate_limit`` window is full.

    ``key`` names the limit, ``delay`` is the seconds until the next window opens (``retry_at``, in epoch
    seconds, when known) and ``retry`` says whether a task that hits it is retried without using a retry.
    """

    def __init__(
        self,
        key: str,
        delay: float,
        retry: bool = True,
        *,
        retry_at: float | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(message or f"rate limit {key!r} reached; next window in {delay:.2f} s")
        self.key = key
        self.delay = delay
        self.retry = retry
        self.retry_at = retry_at


class TaskTimeout(TasksQError):
    """The task ran longer than its ``timeout``."""


class ResultTimeout(TasksQError):
    """``Result.get(blocking=True, timeout=...)`` waited for longer than the timeout."""


class TaskDeadLettered(ResultTimeout):
    """``Result.get(blocking=True)`` timed out because the task's message was dead-lettered: it will never run.

    A :class:`ResultTimeout`, so code that catches timeouts keeps working; ``reason`` is the dead letter's
    code (``"unknown_task"``, ``"max_attempts"`` ...), ``detail`` its text and ``dead_letter_id`` its id in
    the queue's storage (requeue or purge it from the admin's Dead letters page or the hub).
    """

    def __init__(self, message: str, *, reason: str, detail: str, dead_letter_id: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail
        self.dead_letter_id = dead_letter_id


class TaskException(TasksQError):
    """The task failed; ``metadata`` holds the error text, traceback, task id and retries.

    ``Result.get()`` of a failed call raises it. An ``.error()`` handler or a chord callback receives
    the exception the task raised instead, rebuilt from its class path and args; a TaskException stands
    for it only when it cannot be rebuilt without importing a module, is not an :class:`Exception`, or
    its class does not take its args back (see :mod:`django_tasks_q.serializers`).
    """

    def __init__(self, metadata: dict[str, Any] | None = None, *args: Any) -> None:
        self.metadata = metadata or {}
        super().__init__(self.metadata.get("error", "task failed"), *args)

    def __repr__(self) -> str:
        # Stands for the task's own error: its text is the repr of the exception the task raised.
        return self.error or "TaskException()"

    @property
    def error(self) -> str:
        """The text of the error the task raised."""
        return str(self.metadata.get("error", ""))

    @property
    def traceback(self) -> str:
        """The formatted traceback of the failure, as stored by the worker."""
        return str(self.metadata.get("traceback", ""))
