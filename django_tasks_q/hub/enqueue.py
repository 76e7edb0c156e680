"""Building calls and writing them: validation, unique claims, encoding, the queue or the schedule.

Everything here runs in the caller's process before a message exists, or in a worker putting a call back (a
retry, a pipeline's next step, a call taken before its eta). Nothing is written until a call validated and
encoded, so a bad call raises a specific :class:`~django_tasks_q.exceptions.EnqueueError` and leaves no trace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..backends.base import EmptyData
from ..exceptions import EnqueueError, InvalidOption, TaskNotRegistered
from ..result import ChordResult, Result, ResultGroup
from ..signals import SIGNAL_DEAD_LETTERED, SIGNAL_ENQUEUED, SIGNAL_RETRYING, SIGNAL_SCHEDULED
from ..task import PeriodicTask, Task, TaskWrapper
from ..task_groups import chord, group
from ..task_options import CALL_OPTIONS, validate_options, validate_priority
from ..timeutils import convert, epoch, now_utc, resolve_eta, resolve_expires
from . import keyspace

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("django_tasks_q")

UNIQUE_CLAIM_ROUNDS = 100
DEFAULTED_OPTIONS = frozenset({"priority", "retries", "retry_delay", "retry_backoff", "expires", "timeout"})
"""Call options for which None means the task's default."""
_VALIDATED_OPTIONS = ("retries", "retry_delay", "retry_backoff", "timeout")


class Enqueuer:
    """Builds calls of a hub's tasks and writes them to its storage (or runs them, in immediate mode)."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    # ------------------------------------------------------------------ building

    def build_task(
        self,
        wrapper: TaskWrapper,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        id: str | None = None,
        partial: bool = False,
        **options: Any,
    ) -> Task:
        """Validate a call of ``wrapper`` and return it as a :class:`Task` (nothing is written).

        ``partial`` accepts incomplete arguments (pipeline steps, chord callbacks).
        """
        hub = self.hub
        if hub.registry.find(wrapper.path) is not wrapper:
            raise TaskNotRegistered(f"task {wrapper.path!r} is not registered on queue {hub.name!r}")
        where = f"task {wrapper.path!r}"
        # As in huey, an option given as None means the task's default (not "none").
        options = {k: v for k, v in options.items() if not (v is None and k in DEFAULTED_OPTIONS)}
        if options:
            unknown = set(options) - set(CALL_OPTIONS)
            if unknown:
                raise InvalidOption(f"{where}: unknown call option(s) {sorted(unknown)}")
            validate_options(where, **{k: v for k, v in options.items() if k in _VALIDATED_OPTIONS})
            if "priority" in options:
                validate_priority(options["priority"], where)
        if id is not None and (not isinstance(id, str) or not id):
            raise InvalidOption(f"{where}: id must be a non-empty string, got {id!r}", field="id")
        wrapper.check_arguments(args, kwargs, partial=partial)
        eta = resolve_eta(options.get("eta"), options.get("delay"), naive_is_utc=hub.utc)
        expires = options.get("expires", wrapper.expires)
        task_class = Task if wrapper.validate_datetime is None else PeriodicTask
        return task_class(
            wrapper.path,
            args,
            kwargs,
            id=id,
            eta=convert(hub.present, eta),
            priority=options.get("priority", wrapper.priority),
            retries=options.get("retries", wrapper.retries),
            retry_delay=options.get("retry_delay", wrapper.retry_delay),
            retry_backoff=options.get("retry_backoff", wrapper.retry_backoff),
            expires=expires,
            expires_resolved=self.absolute_expiry(expires),
            timeout=options.get("timeout", wrapper.timeout),
            extra=self._unique_extra(wrapper, args, kwargs, options.get("unique_key"), where),
            wrapper=wrapper,
        )

    def _unique_extra(
        self, wrapper: TaskWrapper, args: tuple[Any, ...], kwargs: dict[str, Any], key: Any, where: str
    ) -> dict[str, Any]:
        """The ``extra`` fields of a unique call (its claim's key and lifetime); empty for other calls."""
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidOption(f"{where}: unique_key must be a non-empty string, got {key!r}", field="unique_key")
        if not wrapper.unique and key is None:
            return {}
        return {
            keyspace.UNIQUE_KEY: keyspace.unique_key(wrapper.path, key or self._arguments_digest(args, kwargs)),
            keyspace.UNIQUE_TTL: wrapper.unique_ttl,
        }

    def absolute_expiry(self, expires: dt.datetime | dt.timedelta | float | None) -> dt.datetime | None:
        """Check ``expires`` (InvalidEta); the moment it stands for when it is a datetime, else None: a relative
        expiry counts from when the call is enqueued (a pipeline step's from when that step is)."""
        resolved = resolve_expires(expires, naive_is_utc=self.hub.utc)
        return self.hub.present(resolved) if isinstance(expires, dt.datetime) and resolved is not None else None

    def _arguments_digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """A stable digest of a call's arguments (keyword order does not matter)."""
        plain = self.hub.codec.serializer.dumps([list(args), sorted(kwargs.items())])
        return hashlib.sha256(plain).hexdigest()[:32]

    def _claim_unique(self, task: Task) -> str | None:
        """Take the unique key of ``task``; returns the id of the call holding it when it is taken."""
        key = task.extra.get(keyspace.UNIQUE_KEY)
        if key is None:
            return None
        storage = self.hub.storage
        # Each failed round means the key was released between our two reads; giving up silently would enqueue
        # a duplicate, so after many rounds (a key taken and released in a tight loop) the call is refused.
        for _attempt in range(UNIQUE_CLAIM_ROUNDS):
            if storage.put_if_empty(key, task.id.encode(), ttl=task.extra.get(keyspace.UNIQUE_TTL)):
                return None
            holder = storage.peek_data(key)
            if holder is not EmptyData:
                return holder.decode()
        raise EnqueueError(
            f"task {task.path!r}: unique key {key!r} was taken and released {UNIQUE_CLAIM_ROUNDS} times while "
            "this call tried to claim it; not enqueued, to avoid a duplicate"
        )

    def release_unique(self, key: str) -> bool:
        """Release a unique-task key (when its task finished, or from the admin); True when it was held.

        Only keys of unique tasks (``unique.<task>.<key>``) can be released, so this never deletes a result
        or a lock.
        """
        if not key.startswith(keyspace.UNIQUE_PREFIX):
            raise ValueError(f"{key!r} is not a unique-task key (those start with {keyspace.UNIQUE_PREFIX!r})")
        return self.hub.storage.delete_data(key)

    def encode(self, task: Task) -> bytes:
        """The signed message of ``task``, stamped with the time it is enqueued."""
        hub = self.hub
        now = now_utc()
        if task.expires_resolved is None and task.expires is not None:
            # Fixed at the first enqueue: a retry or a call moved to the schedule keeps its expiry.
            expires = resolve_expires(task.expires, naive_is_utc=hub.utc)
            assert expires is not None  # a given expiry resolves to a moment
            task.expires_resolved = hub.present(expires)
        message = task.to_message(hub.as_utc)
        message.enqueued_at = now
        return hub.codec.encode(message)

    # ------------------------------------------------------------------ enqueueing

    def enqueue(
        self, task: Task | group | chord, *, on_commit: bool | None = None
    ) -> Result | ResultGroup | ChordResult | None:
        """Enqueue a call (and its pipeline), a :class:`group` or a :class:`chord`.

        Returns a Result, a ResultGroup for pipelines and groups, a ChordResult
        for chords, or None when results are off. The call is validated and
        encoded before anything is written: a bad call raises a specific
        :class:`~django_tasks_q.exceptions.EnqueueError`. With ``on_commit``
        (default: the queue's ``enqueue_on_commit``) the message is written when
        the surrounding transaction commits, and never if it rolls back; outside
        a transaction it is written at once.
        """
        hub = self.hub
        if not isinstance(task, Task):
            return self._enqueue_composite(task)
        self.bind(task)
        data = self.encode(task)
        holder = self._claim_unique(task)
        if holder is not None:
            logger.debug("queue %r: %s is a duplicate of pending call %s; not enqueued", hub.name, task, holder)
            return Result(hub, task.copy(id=holder)) if hub.results else None
        if on_commit if on_commit is not None else hub.enqueue_on_commit:
            from django.db import transaction

            transaction.on_commit(lambda: self._send(task, data), using=hub.on_commit_using)
        else:
            self._send(task, data)
        return self._result_for(task)

    def enqueue_many(self, tasks: Iterable[Task]) -> ResultGroup:
        """Enqueue several calls; all are validated and encoded before the first is written.

        Outside immediate mode the calls reach the storage in one ``enqueue_many`` (one round trip on Redis,
        one transaction on SQL), in order, whatever their eta (a worker moves a call taken before its eta to the
        schedule).
        """
        hub = self.hub
        tasks = list(tasks)
        encoded = []
        for task in tasks:
            self.bind(task)
            encoded.append(self.encode(task))
        results = []
        ready: list[tuple[Task, bytes]] = []
        for task, data in zip(tasks, encoded, strict=True):
            holder = self._claim_unique(task)
            if holder is None:
                if hub.immediate:
                    self._send(task, data)  # run now, or into the schedule when not yet due
                else:
                    ready.append((task, data))
            results.append(Result(hub, task if holder is None else task.copy(id=holder)))
        if ready:
            hub.storage.enqueue_many([(data, task.priority) for task, data in ready])
            for task, _data in ready:
                hub._emit(SIGNAL_ENQUEUED, task)
        return ResultGroup(results)

    def bind(self, task: Task) -> None:
        """Bind a call, its pipeline steps and its error handlers to the tasks registered on this queue.

        Raises TaskNotRegistered (nothing written) for a step that is not registered here, such as a
        call of another queue's task, instead of leaving it to be dead-lettered by a worker.
        """
        pending = [task]
        while pending:
            node = pending.pop()
            node.wrapper = self.hub.registry.get(node.path)
            pending.extend(step for step in (node.on_complete, node.on_error) if step is not None)

    def _send(self, task: Task, data: bytes) -> None:
        hub = self.hub
        immediate = hub.immediate
        if immediate and hub.ready_to_run(task):
            hub._emit(SIGNAL_ENQUEUED, task)
            hub.execute(hub._decode_task(data))
            return
        if immediate:
            # Not yet due, and no worker to take it: it waits in the schedule, as if taken early.
            hub._emit(SIGNAL_ENQUEUED, task)
            self.schedule_early_call(task)
            return
        # As in huey, a call with a future eta is enqueued too: the worker that dequeues it early moves it to
        # the schedule (signal "scheduled") in the step that acknowledges it.
        hub.storage.enqueue(data, task.priority)
        hub._emit(SIGNAL_ENQUEUED, task)

    def _result_for(self, task: Task) -> Result | ResultGroup | None:
        if not self.hub.results:
            return None
        if task.on_complete is not None:
            return ResultGroup([Result(self.hub, step) for step in task.chain()])
        return Result(self.hub, task)

    def enqueue_call(
        self,
        path: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Result | ResultGroup | None:
        """Enqueue a registered task by its :attr:`~django_tasks_q.task.TaskWrapper.path` (for the admin and
        the database schedules)."""
        hub = self.hub
        wrapper = hub.registry.get(path)
        return hub.enqueue(hub.build_task(wrapper, tuple(args), dict(kwargs or {}), **options))

    def _enqueue_composite(self, item: group | chord) -> ResultGroup | ChordResult:
        hub = self.hub
        if isinstance(item, chord):
            return hub.chords.enqueue(item)
        if not isinstance(item, group):
            raise InvalidOption(f"enqueue() takes a task call, a group or a chord, got {type(item).__name__}")
        plain = [member for member in item.tasks if isinstance(member, Task)]
        if len(plain) == len(item.tasks):
            return hub.enqueue_many(plain)
        members: list[Any] = [hub.enqueue(member) for member in item.tasks]
        return ResultGroup(members)

    def reschedule(
        self,
        task: Task,
        *,
        eta: dt.datetime | None = None,
        delay: float | dt.timedelta | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        priority: int | None = None,
        preserve_pipeline: bool = True,
    ) -> Result:
        """Revoke ``task`` and enqueue a copy with a new id at the new time; returns the copy's Result."""
        hub = self.hub
        hub.revoke_by_id(task.id, revoke_once=True)
        new_eta = resolve_eta(eta, delay, naive_is_utc=hub.utc)
        # The copy is a new call: a relative expiry counts again from its enqueue, as in huey.
        expires = task.expires if expires is None else expires
        changes: dict[str, Any] = {
            "eta": convert(hub.present, new_eta),
            "expires": expires,
            "expires_resolved": self.absolute_expiry(expires),
        }
        if priority is not None:
            changes["priority"] = validate_priority(priority, f"task {task.path!r}")
        if not preserve_pipeline:
            changes["on_complete"] = None
            changes["on_error"] = None
        clone = task.copy(**changes)
        hub.enqueue(clone)
        return Result(hub, clone)

    # ------------------------------------------------------------------ putting calls back (workers)

    def _add_to_schedule(self, task: Task, data: bytes, eta: dt.datetime) -> None:
        if task.priority is None:
            self.hub.storage.add_to_schedule(data, epoch(eta))
        else:
            self.hub.storage.add_to_schedule(data, epoch(eta), task.priority)

    def requeue(self, task: Task) -> None:
        """Put a call back (a retry, a rate-limited call): SCHEDULED or ENQUEUED, not both.

        A call whose eta is ahead goes to the schedule; any other to the queue (a new call goes to the queue
        whatever its eta, and the worker that takes it early moves it to the schedule).
        """
        hub = self.hub
        data = self.encode(task)
        if hub.immediate and hub.ready_to_run(task):
            hub._emit(SIGNAL_ENQUEUED, task)
            hub.execute(hub._decode_task(data))
            return
        eta = convert(hub.as_utc, task.eta)
        if eta is not None and eta > now_utc():
            self._add_to_schedule(task, data, eta)
            hub._emit(SIGNAL_SCHEDULED, task)
        else:
            hub.storage.enqueue(data, task.priority)
            hub._emit(SIGNAL_ENQUEUED, task)

    def schedule_early_call(self, task: Task) -> None:
        """Move a call taken before its eta to the schedule (before its claim is acknowledged).

        "Not yet due" was judged at the execution's timestamp, which may differ from the clock (huey's
        ``execute(task, timestamp)``), so the call goes to the schedule whatever the clock says now.
        """
        hub = self.hub
        assert task.eta is not None  # only a call with an eta is taken early
        self._add_to_schedule(task, self.encode(task), hub.as_utc(task.eta))
        hub._emit(SIGNAL_SCHEDULED, task)

    def retry(self, task: Task, eta: dt.datetime | None) -> None:
        """Put a failed call back for its next attempt, after its retry delay (grown by its backoff)."""
        hub = self.hub
        retried = task.copy(id=task.id)
        retried.retries = max(task.retries - 1, 0)
        if eta is None and task.retry_delay:
            eta = now_utc() + dt.timedelta(seconds=task.retry_delay)
        retried.eta = convert(hub.present, eta)
        retried.retry_delay = task.retry_delay * task.retry_backoff
        hub._emit(SIGNAL_RETRYING, task)
        self.requeue(retried)

    def enqueue_follow_up(self, follow: Task) -> None:
        """Enqueue a pipeline's next step or an error handler; dead-letter it when its task is gone."""
        hub = self.hub
        if follow.path not in hub.registry:
            # The step's task is gone (a deploy removed it). Failing here would leave the finished task
            # unacknowledged, to run again at every redelivery; keep the step as a dead letter instead.
            detail = f"follow-up task {follow.path!r} is not registered on queue {hub.name!r}"
            logger.error("queue %r: %s (task id %s); dead-lettered", hub.name, detail, follow.id)
            if hub.supports_dead_letters:
                letter = hub.storage.add_dead_letter(self.encode(follow), "unknown_task", detail, priority=follow.priority)
                hub._emit(SIGNAL_DEAD_LETTERED, follow, "unknown_task", detail, letter, follow.id)
            return
        follow.wrapper = hub.registry.get(follow.path)
        hub.enqueue(follow)
