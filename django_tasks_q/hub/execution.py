"""Running one call with huey's semantics, step by step, and deciding what it leaves to do.

The order of :meth:`Executor.execute`: not yet due → schedule; revoked → skip; expired → skip; pre-execute hooks;
run (within ``timeout``); the value or the error to store; post-execute hooks; pipeline follow-up or error
handler; chord bookkeeping; retry. Nothing is written here: the steps fill an
:class:`~django_tasks_q.hub.outcome.Outcome`, which :class:`~django_tasks_q.hub.delivery.Delivery` writes with
the acknowledgement.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import signals
from ..backends.base import EmptyData
from ..exceptions import (
    CancelExecution,
    InvalidEta,
    MessageTooLarge,
    RateLimitExceeded,
    RetryTask,
    SerializationError,
    TaskException,
    TaskLockedException,
    TaskTimeout,
)
from ..serializers import encode_exception
from ..task import Task, TaskWrapper
from ..timeouts import TimeLimit
from ..timeutils import from_epoch, now_utc, resolve_eta
from .outcome import ERROR, OK, SKIPPED, Outcome, chord_carrier, error_handler_call, with_errors

if TYPE_CHECKING:
    from ..backends.base import Reservation
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")

_NOT_AN_ERROR_SIGNAL = (TaskLockedException, TaskTimeout, RetryTask, RateLimitExceeded, CancelExecution)
"""Failures that have a signal of their own instead of ``error``."""


class Attempt:
    """How one run of a call's function went: its value, or the exception, and whether to retry and when."""

    __slots__ = ("exception", "raised", "retry_eta", "retry_wanted", "value")

    def __init__(self, task: Task) -> None:
        self.value: Any = None
        self.exception: BaseException | None = None
        self.raised: BaseException | None = None
        """What the task itself raised (logged once its fate is known)."""
        self.retry_eta: dt.datetime | None = None
        self.retry_wanted = task.retries > 0


class Executor:
    """Runs a hub's calls: the function itself, its hooks and signals, and the plan of what follows."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub
        self.running: dict[str, Task] = {}
        """The calls this process is running now, by id (told ``interrupted`` when a consumer stops)."""

    def execute(
        self,
        task: Task,
        timestamp: dt.datetime | None = None,
        reservation: Reservation | None = None,
    ) -> Any:
        """Run one call with huey's semantics and return its value (None when it did not complete).

        Order: not yet due → schedule; revoked; expired; pre-execute hooks; run
        (within ``timeout``); store the value or the error; post-execute hooks;
        pipeline follow-up or error handler; chord bookkeeping; retry. With a
        ``reservation`` (given, or the one a call taken by :meth:`dequeue` carries)
        the result write and the acknowledgement are one fenced storage step.
        A naive ``timestamp`` is read as the queue's ``utc`` setting says.
        """
        if reservation is None and task.reservation is not None:
            reservation, task.reservation = task.reservation, None
        return self.run_and_finish(task, timestamp, reservation, None)[0]

    def run_and_finish(
        self,
        task: Task,
        timestamp: dt.datetime | None,
        reservation: Reservation | None,
        wants_next: Callable[[], bool] | None,
    ) -> tuple[Any, Reservation | None]:
        """:meth:`execute`; when ``wants_next()`` says so at acknowledgement time, the acknowledgement also
        claims the next message (returned)."""
        hub = self.hub
        now = now_utc() if timestamp is None else hub.as_utc(timestamp)
        if task.wrapper is None:
            task.wrapper = hub.registry.get(task.path)
        outcome = Outcome()
        # Interrupted (shutdown): the exception leaves the reservation to the consumer (release or lease expiry).
        value = self.run(task, now, outcome, may_be_revoked(reservation))
        return value, hub.delivery.finish(task, reservation, outcome, wants_next)

    def run(self, task: Task, now: dt.datetime, outcome: Outcome, may_be_revoked: bool = True) -> Any:
        """Run ``task`` at ``now``, filling ``outcome``; its value, or None when it did not complete."""
        if self._skipped(task, now, outcome, may_be_revoked) or self._canceled_by_hooks(task, outcome):
            return None
        hub = self.hub
        hub._emit(signals.SIGNAL_EXECUTING, task)
        # As in huey, periodic tasks store no result: nobody holds a handle to read (and remove) it.
        assert task.wrapper is not None  # bound when the call was received
        store = hub.results and task.wrapper.validate_datetime is None
        attempt = self._attempt(task)
        if attempt.exception is None and store and (attempt.value is not None or hub.store_none):
            self._encode_value(task, attempt, outcome)
        will_retry = attempt.exception is not None and not outcome.final_failure and attempt.retry_wanted
        surface_error = attempt.exception is not None and (not will_retry or hub.store_intermediate_errors)
        metadata = hub.build_error_result(task, attempt.exception) if surface_error and attempt.exception else None
        if attempt.raised is not None:
            log_failure(task, attempt.raised, will_retry, attempt.retry_eta)
        self._settle(task, attempt, outcome, store=store and surface_error, will_retry=will_retry, metadata=metadata)
        self._run_post_hooks(task, attempt)
        self._plan_follow_ups(task, attempt, outcome, metadata if surface_error else None, will_retry)
        return attempt.value if attempt.exception is None else None

    def _skipped(self, task: Task, now: dt.datetime, outcome: Outcome, may_be_revoked: bool) -> bool:
        """Not yet due (moved to the schedule), revoked or expired: the call does not run now."""
        hub = self.hub
        if task.eta is not None and hub.as_utc(task.eta) > now:
            outcome.follow_ups.append(lambda: hub.enqueuer.schedule_early_call(task))
            outcome.requeued = True
            return True
        if may_be_revoked and hub.is_revoked(task, timestamp=now, peek=False):
            hub._emit(signals.SIGNAL_REVOKED, task)
            self._plan_chord_skip(task, "revoked", outcome)
            return True
        if task.expires_resolved is not None and now > hub.as_utc(task.expires_resolved):
            hub._emit(signals.SIGNAL_EXPIRED, task)
            self._plan_chord_skip(task, "expired", outcome)
            return True
        return False

    def _canceled_by_hooks(self, task: Task, outcome: Outcome) -> bool:
        """Run the pre-execute hooks; True when one raised CancelExecution (a hook that fails otherwise is
        logged and the call runs)."""
        try:
            for hook_name, hook in list(self.hub.hooks.before.items()):
                try:
                    hook(task)
                except CancelExecution:
                    raise
                except Exception:
                    logger.exception("pre-execute hook %r failed for task %s", hook_name, task)
        except CancelExecution as exc:
            self.hub._emit(signals.SIGNAL_CANCELED, task)
            self._plan_cancel_retry(task, exc, outcome)
            return True
        return False

    def _attempt(self, task: Task) -> Attempt:
        """Call the task's function within its time limit; how it went, failures sorted by kind."""
        hub = self.hub
        attempt = Attempt(task)
        try:
            args = with_errors(task) if task.extra else task.args
            if task.timeout:
                task._deadline = time.monotonic() + task.timeout
            running = self.running
            running[task.id] = task
            try:
                with TimeLimit(task.timeout):
                    assert task.wrapper is not None  # bound when the call was received
                    attempt.value = hub.run_function(task.wrapper, args, task.kwargs, task)
            finally:
                running.pop(task.id, None)
        except TaskLockedException as exc:
            logger.warning("task %s not run: unable to acquire its lock (%s)", task, exc)
            attempt.exception = exc
            hub._emit(signals.SIGNAL_LOCKED, task)
        except RateLimitExceeded as exc:
            self._rate_limited(task, exc, attempt)
        except RetryTask as exc:
            self._retry_asked(task, exc, attempt)
        except CancelExecution as exc:
            attempt.exception = exc
            hub._emit(signals.SIGNAL_CANCELED, task)
            attempt.retry_wanted = _retried_after_cancel(task, exc)
            if not attempt.retry_wanted:
                task.retries = 0
        except TaskTimeout as exc:
            error = TaskTimeout(f"task {task.path} ({task.id}) ran longer than its timeout of {task.timeout:g} s")
            error.__cause__ = exc
            attempt.exception = error
            logger.error("%s", error)
            hub._emit(signals.SIGNAL_TIMEOUT, task)
        except KeyboardInterrupt:
            logger.info("task %s interrupted by shutdown before it finished", task)
            hub._emit(signals.SIGNAL_INTERRUPTED, task)
            raise
        except BaseException as exc:
            # SystemExit and other BaseExceptions raised by a task's code are that task's failure: letting one
            # escape would end the worker and leave the message to be reclaimed and dead-lettered unrecorded.
            attempt.exception = attempt.raised = exc
        return attempt

    def _rate_limited(self, task: Task, exc: RateLimitExceeded, attempt: Attempt) -> None:
        attempt.exception = exc
        self.hub._emit(signals.SIGNAL_RATE_LIMITED, task)
        if not (exc.retry or task.retries > 0):
            logger.info("task %s rate-limited by %r, not retried", task, exc.key)
            attempt.retry_wanted = False
            return
        # Retried when the window reopens (or after the task's own retry delay); a limit declared with
        # retry=True does not use up one of the call's retries.
        logger.info("task %s rate-limited by %r, retrying", task, exc.key)
        attempt.retry_wanted = True
        if task.retry_delay or exc.retry_at is None:
            attempt.retry_eta = now_utc() + dt.timedelta(seconds=task.retry_delay or exc.delay)
        else:
            attempt.retry_eta = from_epoch(exc.retry_at)
        if exc.retry:
            task.retries += 1

    def _retry_asked(self, task: Task, exc: RetryTask, attempt: Attempt) -> None:
        logger.info("task %s raised RetryTask, retrying", task)
        attempt.exception = exc
        attempt.retry_wanted = True
        task.retries += 1  # RetryTask does not use up one of the call's retries
        if exc.eta is None and exc.delay is None:
            return
        try:
            attempt.retry_eta = resolve_eta(exc.eta, exc.delay, naive_is_utc=self.hub.utc)
        except InvalidEta as bad:
            logger.error("task %s raised RetryTask with an unusable time: %s", task, bad)
            attempt.exception = bad
            task.retries -= 1
            attempt.retry_wanted = task.retries > 0

    def _encode_value(self, task: Task, attempt: Attempt, outcome: Outcome) -> None:
        """The value to store; a value the codec refuses makes the call fail for good."""
        codec = self.hub.codec
        try:
            outcome.result = codec.encode_value([OK, attempt.value], where="result")
        except (SerializationError, MessageTooLarge):
            attempt.exception = SerializationError(
                f"task {task.path} ({task.id}) returned a value that cannot be stored: "
                f"{self._serialization_problem(attempt.value)}"
            )
            logger.error("%s", attempt.exception)
            outcome.final_failure = True

    def _serialization_problem(self, value: Any) -> str:
        try:
            self.hub.codec.encode_value(value, where="return value")
        except (SerializationError, MessageTooLarge) as exc:
            return str(exc)
        return "the encoded result is larger than the message size limit"

    def _settle(
        self,
        task: Task,
        attempt: Attempt,
        outcome: Outcome,
        *,
        store: bool,
        will_retry: bool,
        metadata: dict[str, Any] | None,
    ) -> None:
        """Note a completed call, or the error to store (now for a retry, with the acknowledgement otherwise)."""
        hub = self.hub
        if attempt.exception is None:
            # Sent once the result is stored (by Delivery.finish), so a receiver can read it.
            outcome.completed = task
            return
        if store:
            error = hub.codec.encode_value([ERROR, metadata])
            if will_retry:
                # Written before the retry is enqueued (not with the acknowledgement), so that a fast retry's
                # own result is never overwritten by this attempt's error.
                outcome.intermediate_error = error
            else:
                outcome.result = error
        if not isinstance(attempt.exception, _NOT_AN_ERROR_SIGNAL):
            hub._emit(signals.SIGNAL_ERROR, task, attempt.exception)

    def _run_post_hooks(self, task: Task, attempt: Attempt) -> None:
        for hook in list(self.hub.hooks.after.values()):
            try:
                hook(task, attempt.value, attempt.exception)
            except Exception:
                logger.exception("post-execute hook failed for task %s", task)

    def _plan_follow_ups(
        self, task: Task, attempt: Attempt, outcome: Outcome, metadata: dict[str, Any] | None, will_retry: bool
    ) -> None:
        """The pipeline's next step or the error handler, the chord's count, the retry (``metadata`` is the
        error when it is surfaced to the handler)."""
        hub = self.hub
        if attempt.exception is None:
            value = attempt.value
            if task.on_complete is not None:
                follow = task.on_complete
                follow.extend_data(value)
                outcome.follow_ups.append(lambda: hub.enqueuer.enqueue_follow_up(follow))
            if task.chord:
                outcome.follow_ups.append(lambda: hub.chords.member_done(task, [OK, value]))
        elif metadata is not None and task.on_error is not None:
            # A copy per attempt: each failed attempt's handler gets only that attempt's error.
            handler = error_handler_call(task.on_error, metadata)
            outcome.follow_ups.append(lambda: hub.enqueuer.enqueue_follow_up(handler))
        if attempt.exception is not None and not will_retry:
            carrier = chord_carrier(task)
            if carrier is not None:
                outcome.follow_ups.append(lambda: hub.chords.member_done(carrier, [ERROR, metadata]))
        if will_retry:
            retry_eta = attempt.retry_eta
            outcome.follow_ups.append(lambda: hub.enqueuer.retry(task, retry_eta))
            outcome.requeued = True

    def _plan_cancel_retry(self, task: Task, exc: CancelExecution, outcome: Outcome) -> None:
        """A pre-execute hook canceled the call: retried when the exception asks for it, else a chord
        member counts as skipped."""
        if _retried_after_cancel(task, exc):
            outcome.follow_ups.append(lambda: self.hub.enqueuer.retry(task, None))
            outcome.requeued = True
        else:
            self._plan_chord_skip(task, "canceled", outcome)

    def _plan_chord_skip(self, task: Task, what: str, outcome: Outcome) -> None:
        """A chord member that will never run counts as failed, so its chord fails instead of waiting forever."""
        carrier = chord_carrier(task)
        if carrier is not None:
            logger.info("chord member %s was %s; its chord callback receives None in its place", task, what)
            outcome.follow_ups.append(lambda: self.hub.chords.member_done(carrier, [SKIPPED, None]))

    def run_function(
        self, wrapper: TaskWrapper, args: tuple[Any, ...], kwargs: dict[str, Any], task: Task | None
    ) -> Any:
        """Call the task's function (inside its context manager; awaiting it when it is ``async``)."""
        kwargs = dict(kwargs)
        if wrapper.context:
            kwargs["task"] = task
        if wrapper.context_manager is not None:
            with wrapper.context_manager as entered:
                if wrapper.as_argument:
                    args = (entered, *args)
                return _call(wrapper, args, kwargs)
        return _call(wrapper, args, kwargs)

    def build_error_result(self, task: Task, exception: BaseException) -> dict[str, Any]:
        """The stored description of a failure, plain data only (never an exception object); override to
        add keys.

        ``error`` is ``repr(exception)`` (for a re-raised :class:`TaskException`, the inner error's text),
        as in huey; beside it ``task_id``, ``task``, ``type``, ``message``, ``traceback``, ``retries``,
        ``attempt`` and ``exception``, the exception's class path and arguments in the JSON codec's tagged
        form (:func:`~django_tasks_q.serializers.encode_exception`), from which an ``.error()`` handler and
        a chord callback get the exception itself. ``exception`` is left out when its JSON is over a quarter
        of the codec's ``max_size`` (the handler then gets the :class:`TaskException` of this metadata).
        What this returns must survive the queue's serializer.
        """
        kind = type(exception)
        if isinstance(exception, TaskException):
            error = exception.metadata.get("error") or repr(exception)
        else:
            error = repr(exception)
        metadata = {
            "task_id": task.id,
            "task": task.path,
            "error": error,
            "type": f"{kind.__module__}.{kind.__qualname__}",
            "message": str(exception),
            "traceback": "".join(traceback.format_exception(kind, exception, exception.__traceback__)),
            "retries": task.retries,
            "attempt": task.attempt,
        }
        encoded = encode_exception(exception)
        # The metadata holds the error's text three times already and must fit in one stored value: a large
        # exception is not carried a fourth and fifth time (its args and repr).
        if len(json.dumps(encoded, ensure_ascii=False).encode("utf-8")) <= self.hub.codec.max_size // 4:
            metadata["exception"] = encoded
        return metadata


def may_be_revoked(reservation: Reservation | None) -> bool:
    """False only when the claim itself showed that no revocation was ever made on this queue."""
    return reservation is None or reservation.peeked is None or reservation.peeked[0] is not EmptyData


def _retried_after_cancel(task: Task, exc: CancelExecution) -> bool:
    """Whether a canceled call is retried: when CancelExecution asks for it, or (not saying) has retries left;
    such a call keeps at least one retry."""
    if exc.retry or (exc.retry is None and task.retries > 0):
        task.retries = max(task.retries, 1)
        return True
    return False


def log_failure(task: Task, error: BaseException, will_retry: bool, retry_eta: dt.datetime | None) -> None:
    """One WARNING line for a failure that will be retried; the traceback, at ERROR, only for the last."""
    if not will_retry:
        logger.error("task %s (%s) failed", task.path, task.id, exc_info=error)
        return
    total = max(getattr(task.wrapper, "retries", 0) or 0, task.retries) + 1
    if retry_eta is not None:
        when = f"at {retry_eta.isoformat()}"
    else:
        when = f"in {task.retry_delay:g} s" if task.retry_delay else "at once"
    logger.warning(
        "task %s (%s) failed (%s: %s); will retry %s, attempt %d of %d",
        task.path,
        task.id,
        type(error).__name__,
        error,
        when,
        total - task.retries + 1,
        total,
    )


def _call(wrapper: TaskWrapper, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the function; an ``async`` one runs to completion on an event loop of its own."""
    if not wrapper.is_async:
        return wrapper.func(*args, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper.func(*args, **kwargs))
    box: dict[str, Any] = {}

    def run_in_thread() -> None:
        try:
            box["value"] = asyncio.run(wrapper.func(*args, **kwargs))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run_in_thread, name=f"tasks-q-async-{wrapper.path}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
