"""A ``django.tasks`` backend, so code written against Django's standard task API runs on django-tasks-q.

.. code-block:: python

    TASKS = {"default": {"BACKEND": "django_tasks_q.tasks_backend.TasksQBackend"}}

A Django task's ``queue_name`` is a ``TASKS_Q`` queue (``QUEUES`` absent or empty means
every configured queue). Its ``TaskResult`` — status, timestamps, errors,
worker ids, return value — is kept in the queue's storage and can be read from
any process with ``get_result()``. On Django 6.1 ``@task(retries=3,
retry_delay=10, retry_backoff=2, timeout=60)`` reach the queue's retry and
time-limit machinery. On Django 5.2 the ``django-tasks`` backport provides the
same API.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import traceback
from dataclasses import dataclass, replace
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

try:
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task as DjangoTask
    from django.tasks.base import TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    _DJANGO_HAS_TASKS = True
except ImportError:
    _DJANGO_HAS_TASKS = False

# The type checker skips this branch (setup.cfg names the flag in always_true): the names come from above.
if not _DJANGO_HAS_TASKS:  # Django < 6.0: the django-tasks backport
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task as DjangoTask
    from django_tasks.base import TaskError
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

from django.utils.module_loading import import_string

from .conf import configured_queues, queues, registry_for
from .decorators import QueueTaskWrapper
from .hub.keyspace import record_key

logger = logging.getLogger("django_tasks_q.tasks_backend")

RECORD_TTL = 7 * 86400


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueTask(DjangoTask):
    """A Django task with django-tasks-q's options (``@task(retries=..., timeout=...)`` on Django 6.1)."""

    retries: int = 0
    retry_delay: float = 0
    retry_backoff: float = 1.0
    timeout: float | None = None


class TasksQBackend(BaseTaskBackend):
    """``django.tasks`` backend that enqueues onto ``TASKS_Q`` queues and runs on ``run_tasks``."""

    task_class = QueueTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = set(configured_queues())
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    # ------------------------------------------------------------------ registration

    def validate_task(self, task: DjangoTask) -> None:
        """Django's checks, then register the task on its queue so every process can run it."""
        super().validate_task(task)
        self._register(task)

    def _register(self, task: DjangoTask) -> QueueTaskWrapper:
        registry = registry_for(task.queue_name)
        path = task.module_path
        if path in registry:
            existing = registry.get(path)
            if isinstance(existing, QueueTaskWrapper) and getattr(existing, "django_task", None) is not None:
                return existing
        wrapper = QueueTaskWrapper(task.queue_name, _make_runner(self.alias, task), name=path, context=True)
        # Registered and sent under Django's module_path (our path); named as Django names it.
        wrapper.name = task.name
        wrapper.django_task = task
        registry.register(wrapper)
        return wrapper

    # ------------------------------------------------------------------ enqueue and results

    def enqueue(self, task: DjangoTask, args: Any, kwargs: Any) -> TaskResult:
        """Validate, record as READY and enqueue; returns the TaskResult."""
        self.validate_task(task)
        wrapper = self._register(task)
        hub = queues[task.queue_name]
        options: dict[str, Any] = {"priority": task.priority}
        if task.run_after is not None:
            options["eta"] = task.run_after
        for option in ("retries", "retry_delay", "timeout"):
            value = getattr(task, option, None)
            if value:
                options[option] = value
        call = hub.build_task(wrapper, tuple(args), dict(kwargs), **options)
        retry_backoff = getattr(task, "retry_backoff", 1.0)
        if retry_backoff != 1.0:
            call.retry_backoff = retry_backoff
        record = _ready_record(task, args, kwargs, run_after=task.run_after, enqueued_at=timezone.now())
        _save(hub, call.id, record)
        task_enqueued.send(type(self), task_result=_result(self.alias, task, call.id, record))
        try:
            hub.enqueue(call)
        except Exception:
            hub.delete_record(record_key(call.id))
            raise
        return _result(self.alias, task, call.id, _read_back(hub, call.id, record))

    def get_result(self, result_id: str, task_hint: DjangoTask | None = None) -> TaskResult:
        """The TaskResult of ``result_id`` from any process; TaskResultDoesNotExist when unknown.

        ``QUEUES: []`` restricts nothing (as in Django), so every configured queue is searched.
        """
        for name in sorted(self.queues) or configured_queues():
            try:
                hub = queues[name]
            except Exception:
                continue
            record = hub.get_record(record_key(result_id))
            if record is not None:
                task = task_hint if task_hint is not None else _load_task(record)
                return _result(self.alias, task, result_id, record)
        raise TaskResultDoesNotExist(f"no task result with id {result_id!r}")

    async def aget_result(self, result_id: str) -> TaskResult:
        """See :meth:`get_result`."""
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)


def _read_back(hub: Any, task_id: str, written: dict[str, Any]) -> dict[str, Any]:
    """The record of a task just published, as its queue now holds it (an immediate queue has run it).

    The message is out: a failure to read is logged and answered with the record as written, never raised,
    so the caller is not told that work which was queued (or done) failed.
    """
    try:
        stored = hub.get_record(record_key(task_id))
    except Exception:
        logger.warning("task %s was enqueued on %r but its result could not be read back", task_id, hub.name,
                       exc_info=True)  # fmt: skip
        return written
    return written if stored is None else stored


def _save(hub: Any, task_id: str, record: dict[str, Any]) -> None:
    hub.put_record(record_key(task_id), record, ttl=hub.result_ttl or RECORD_TTL)


def _load_task(record: dict[str, Any]) -> DjangoTask:
    task = import_string(record["module_path"])
    changes: dict[str, Any] = {"queue_name": record["queue_name"], "priority": record["priority"]}
    if record.get("run_after") is not None:
        changes["run_after"] = record["run_after"]
    return replace(task, **changes)


def _result(alias: str, task: DjangoTask, result_id: str, record: dict[str, Any]) -> TaskResult:
    result: TaskResult = TaskResult(
        task=task,
        id=result_id,
        status=TaskResultStatus(record["status"]),
        enqueued_at=record["enqueued_at"],
        started_at=record["started_at"],
        finished_at=record["finished_at"],
        last_attempted_at=record["last_attempted_at"],
        args=record["args"],
        kwargs=record["kwargs"],
        backend=alias,
        errors=[TaskError(exception_class_path=e["class"], traceback=e["traceback"]) for e in record["errors"]],
        worker_ids=list(record["worker_ids"]),
    )
    object.__setattr__(result, "_return_value", record["return_value"])
    return result


def _make_runner(alias: str, django_task: DjangoTask) -> Any:
    def run(*args: Any, task: Any = None, **kwargs: Any) -> Any:
        return _run(alias, django_task, task, args, kwargs)

    run.__module__ = __name__
    run.__qualname__ = f"django_task[{django_task.module_path}]"
    run.__name__ = django_task.name
    return run


def _run(alias: str, django_task: DjangoTask, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    backend = task_backends[alias] if alias in task_backends.settings else None
    sender = type(backend) if backend is not None else TasksQBackend
    hub = queues[django_task.queue_name]
    record = hub.get_record(record_key(call.id)) or _fresh_record(hub, django_task, call, args, kwargs)
    now = timezone.now()
    record.update(status=TaskResultStatus.RUNNING.value, started_at=now, last_attempted_at=now)
    record["worker_ids"] = [*record["worker_ids"], f"{socket.gethostname()}:{os.getpid()}"]
    _save(hub, call.id, record)
    result = _result(alias, django_task, call.id, record)
    task_started.send(sender=sender, task_result=result)
    try:
        if django_task.takes_context:
            value = django_task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = django_task.call(*args, **kwargs)
        value = normalize_json(value)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        kind = type(exc)
        record["errors"] = [
            *record["errors"],
            {"class": f"{kind.__module__}.{kind.__qualname__}", "traceback": "".join(traceback.format_exception(exc))},
        ]
        record.update(status=TaskResultStatus.FAILED.value, finished_at=timezone.now())
        _save(hub, call.id, record)
        task_finished.send(sender=sender, task_result=_result(alias, django_task, call.id, record))
        raise
    record.update(status=TaskResultStatus.SUCCESSFUL.value, finished_at=timezone.now(), return_value=value)
    _save(hub, call.id, record)
    task_finished.send(sender=sender, task_result=_result(alias, django_task, call.id, record))
    return value


def _fresh_record(
    hub: Any, django_task: DjangoTask, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict:
    enqueued = hub.as_utc(call.enqueued_at) if call.enqueued_at is not None else dt.datetime.now(dt.UTC)
    return _ready_record(django_task, args, kwargs, run_after=None, enqueued_at=enqueued)


def _ready_record(
    django_task: DjangoTask, args: Any, kwargs: Any, *, run_after: dt.datetime | None, enqueued_at: dt.datetime
) -> dict:
    """The stored TaskResult of a call that is enqueued and has not started yet."""
    return {
        "status": TaskResultStatus.READY.value,
        "module_path": django_task.module_path,
        "queue_name": django_task.queue_name,
        "priority": django_task.priority,
        "run_after": run_after,
        "enqueued_at": enqueued_at,
        "started_at": None,
        "finished_at": None,
        "last_attempted_at": None,
        "args": list(args),
        "kwargs": dict(kwargs),
        "errors": [],
        "worker_ids": [],
        "return_value": None,
    }
