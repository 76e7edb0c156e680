"""The consumer: worker threads or processes per queue, a scheduler, a lease keeper and a reaper.

:class:`Consumer` runs until it is stopped. SIGTERM and SIGINT stop it
gracefully (no new reservations; running tasks get ``shutdown_timeout``
seconds, then are handed back to the queue with their attempt counted); a
second signal stops it at once; SIGHUP restarts the process in place.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError
from ..signals import (
    SIGNAL_CANCELED,
    SIGNAL_COMPLETE,
    SIGNAL_ERROR,
    SIGNAL_EXECUTING,
    SIGNAL_EXPIRED,
    SIGNAL_LOCKED,
    SIGNAL_RATE_LIMITED,
    SIGNAL_RETRYING,
    SIGNAL_REVOKED,
    SIGNAL_TIMEOUT,
)
from ..timeutils import now_utc
from .options import ConsumerOptions
from .outages import OutageLog, StorageUnavailable, outage_max_delay, verify_storages
from .processes import process_worker_main
from .scheduler import QueueScheduler
from .workers import AcknowledgementHealth, LeaseKeeper, RunningTasks, WorkerLoop

logger = logging.getLogger("django_tasks_q.consumer")
_TASK_LINE = "%s %s %s %s"  # task path, task id, what happened (signal name), run time


class _WorkerHandle:
    """A running worker (thread or process) and how to tell whether it is alive."""

    def __init__(self, name: str, queue: Any, kind: str) -> None:
        self.name = name
        self.queue = queue
        self.kind = kind
        self.thread: threading.Thread | None = None
        self.process: Any = None

    def is_alive(self) -> bool:
        if self.thread is not None:
            return self.thread.is_alive()
        return self.process is not None and self.process.is_alive()


class Consumer:
    """Consume ``queues`` (TaskQueue objects) with per-queue :class:`ConsumerOptions`.

    Process workers rebuild their queue from ``TASKS_Q`` by name, so they are
    available for queues configured in settings.

    huey's form works too: one queue and the options as keywords, ``Consumer(huey, workers=4,
    worker_type="process")`` (the keywords are :class:`ConsumerOptions` fields).
    """

    def __init__(
        self,
        queues: list[Any] | Any,
        options: dict[str, ConsumerOptions] | ConsumerOptions | None = None,
        *,
        burst: bool = False,
        flush_locks: bool = False,
        install_signal_handlers: bool = True,
        monitor: bool = True,
        heartbeat_file: str | os.PathLike[str] | None = None,
        verify_storage: bool = False,
        wait_for_storage: bool = False,
        **option_values: Any,
    ) -> None:
        if queues is not None and not isinstance(queues, list | tuple):
            queues = [queues]  # huey's Consumer(huey, ...)
        if option_values:
            if options is not None:
                raise ConfigurationError(
                    f"give the consumer options either as options= or as keywords, not both: {sorted(option_values)}"
                )
            options = ConsumerOptions.from_dict(option_values, where="Consumer()")
        if not queues:
            raise ConfigurationError("the consumer needs at least one queue")
        self.queues = list(queues)
        if isinstance(options, ConsumerOptions) or options is None:
            shared = options or ConsumerOptions()
            self.options = {queue.name: shared for queue in self.queues}
        else:
            self.options = {queue.name: options.get(queue.name, ConsumerOptions()) for queue in self.queues}
        self.burst = burst
        self.flush_locks = flush_locks
        self.install_signal_handlers = install_signal_handlers
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop_event = threading.Event()
        self.running = RunningTasks()
        self.acknowledgements = AcknowledgementHealth()
        self.wake = {queue.name: threading.Event() for queue in self.queues}
        self._workers: list[_WorkerHandle] = []
        self._signals_seen = 0
        self._restart = False
        self._threads: list[threading.Thread] = []
        self._task_starts: dict[str, float] = {}
        self._log_receivers: list[tuple[Any, Callable[..., Any]]] = []
        self.heartbeat_file = Path(heartbeat_file) if heartbeat_file else None
        """A file whose modification time the consumer refreshes every second (container liveness probes)."""
        self.monitor = monitor
        """Record task history, heartbeats and queue depths for the admin (when the app is installed)."""
        self._monitoring: Any = None
        self.verify_storage = verify_storage or wait_for_storage
        """Call each storage once before starting; an unavailable one is :class:`StorageUnavailable`."""
        self.wait_for_storage = wait_for_storage
        """Wait (with a capped backoff) for an unavailable storage at start instead of raising."""
        self.outages = {queue.name: OutageLog(queue.name, max_delay=outage_max_delay(queue)) for queue in self.queues}
        """Per queue: the storage failures its workers and the scheduler report (logged once per outage)."""
        self.scheduler = QueueScheduler(self.queues, self.options, self.wake, self.outages, self.stop_event)
        """Moves due messages, enqueues periodic tasks and reaps expired leases, in a thread of its own."""

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Start everything and block until stopped; returns the exit status.

        With ``verify_storage``, a storage that is unavailable at start raises :class:`StorageUnavailable`
        before anything starts (or, with ``wait_for_storage``, is waited for; a stop signal then ends the
        wait and ``run`` returns 0).
        """
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        if self.verify_storage:
            try:
                verify_storages(self.queues, wait=self.wait_for_storage, stop=self.stop_event.is_set)
            except StorageUnavailable:
                if not self.stop_event.is_set():
                    raise
                logger.info("consumer %s stopped before its storages were available", self.identity)
                return 0
        self.start()
        try:
            self._supervise()
        finally:
            self.shutdown()
        if self._restart:
            logger.info("consumer %s restarting (SIGHUP)", self.identity)
            os.execv(sys.executable, [sys.executable, *sys.argv])
        return 0

    def start(self) -> None:
        """Start workers, scheduler, lease keeper; log the start-up summary."""
        self._start_monitoring()
        for queue in self.queues:
            self._connect_task_logging(queue)
            self._mark_existing_revocations(queue)
            if self.flush_locks:
                flushed = queue.flush_locks()
                if flushed:
                    logger.info("queue %r: flushed locks %s", queue.name, sorted(flushed))
        self._log_summary()
        self._log_startup_warnings()
        for queue in self.queues:
            options = self.options[queue.name]
            for index in range(options.workers):
                self._start_worker(_WorkerHandle(f"{queue.name}-{index + 1}", queue, options.worker_type))
        keeper = LeaseKeeper(self.running, self.stop_event, min(map(self._renew_interval, self.queues)))
        keeper.start()
        scheduler = threading.Thread(target=self.scheduler.run, name="tasks-q-scheduler", daemon=True)
        scheduler.start()
        self._threads = [keeper, scheduler]

    def stop(self, graceful: bool = True) -> None:
        """Ask the consumer to stop (what SIGTERM does)."""
        self.stop_event.set()
        for wake in self.wake.values():
            wake.set()
        if not graceful:
            self._hand_back_running()

    def shutdown(self) -> None:
        """Stop workers: wait up to the shutdown timeout for running tasks, then hand them back."""
        self.stop()
        timeout = max(options.shutdown_timeout for options in self.options.values())
        deadline = time.monotonic() + timeout
        for handle in self._workers:
            if handle.process is not None and handle.process.is_alive():
                os.kill(handle.process.pid, signal.SIGUSR1)  # a graceful stop request (see processes.py)
        for handle in self._workers:
            remaining = max(deadline - time.monotonic(), 0)
            if handle.thread is not None:
                handle.thread.join(remaining)
            elif handle.process is not None:
                handle.process.join(remaining + 5)
                if handle.process.is_alive():
                    logger.error("worker process %s did not stop; killing it", handle.name)
                    handle.process.kill()
                    handle.process.join(5)
        if len(self.running):
            logger.warning("shutdown timeout reached with %d task(s) running; handing them back", len(self.running))
            self._hand_back_running()
        for thread in self._threads:
            thread.join(2)
        if self._monitoring is not None:
            self._monitoring.stop()
            self._monitoring = None
        for queue, receiver in self._log_receivers:
            queue.disconnect_signal(receiver)
        self._log_receivers = []
        logger.info("consumer %s stopped", self.identity)

    def _start_monitoring(self) -> None:
        """History, heartbeats and depth samples (:mod:`.heartbeats`), when the Django app is installed."""
        from django.apps import apps

        if self.monitor and self._monitoring is None and apps.ready and apps.is_installed("django_tasks_q"):
            from .heartbeats import start_monitoring

            self._monitoring = start_monitoring(self)

    def _hand_back_running(self) -> None:
        for worker, item in self.running.snapshot().items():
            try:
                item.queue.release(item.reservation, count_attempt=True)
                logger.warning("task message %s of worker %s handed back to queue %r",
                               item.reservation.message_id, worker, item.queue.name)
            except Exception:
                logger.exception("could not hand back message %s", item.reservation.message_id)

    # ------------------------------------------------------------------ OS signals

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_restart_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            logger.warning("second stop signal: stopping at once")
            self._hand_back_running()
            os._exit(1)
        logger.info("received %s: stopping gracefully (send it again to stop at once)", signal.Signals(signum).name)
        self.stop()

    def _on_restart_signal(self, signum: int, frame: Any) -> None:
        logger.info("received SIGHUP: restarting gracefully")
        self._restart = True
        self.stop()

    # ------------------------------------------------------------------ workers

    def _start_worker(self, handle: _WorkerHandle) -> None:
        options = self.options[handle.queue.name]
        if handle.kind == "thread":
            loop = WorkerLoop(
                handle.name,
                handle.queue,
                self.stop_event,
                self.running,
                initial_delay=options.initial_delay,
                backoff=options.backoff,
                max_delay=options.max_delay,
                max_tasks=options.max_tasks,
                wake=self.wake[handle.queue.name],
                outage=self.outages[handle.queue.name],
                acknowledgements=self.acknowledgements,
            )
            handle.thread = threading.Thread(target=loop.run, name=f"tasks-q-worker-{handle.name}", daemon=True)
            handle.thread.start()
        else:
            context = multiprocessing.get_context("spawn")
            worker_options = asdict(options) | {
                "lease_interval": self._renew_interval(handle.queue),
                "consumer_identity": self.identity if self._monitoring is not None else None,
            }
            handle.process = context.Process(
                target=process_worker_main,
                args=(handle.queue.name, handle.name, worker_options, os.getpid()),
                name=f"tasks-q-worker-{handle.name}",
                daemon=False,
            )
            handle.process.start()
        if handle not in self._workers:
            self._workers.append(handle)

    def _renew_interval(self, queue: Any) -> float:
        configured = self.options[queue.name].renew_interval
        return configured if configured is not None else max(queue.lease / 4, 0.05)

    def _supervise(self) -> None:
        interval = min(options.health_check_interval for options in self.options.values())
        tick = min(interval, 0.5 if self.burst else 1.0)
        next_health = time.monotonic() + interval
        self._touch_heartbeat_file()
        while not self.stop_event.wait(tick):
            self._touch_heartbeat_file()
            if self.burst and self._drained():
                logger.info("burst mode: nothing left that is due; exiting")
                self.stop()
                return
            if time.monotonic() >= next_health:
                self.check_workers()
                next_health = time.monotonic() + interval

    def _touch_heartbeat_file(self) -> None:
        if self.heartbeat_file is None:
            return
        try:
            self.heartbeat_file.touch()
        except OSError as exc:
            logger.warning("cannot update heartbeat file %s: %s", self.heartbeat_file, exc)

    def check_workers(self) -> list[str]:
        """Restart workers that died or were recycled; returns their names."""
        restarted = []
        for handle in self._workers:
            if self.stop_event.is_set() or handle.is_alive():
                continue
            if not self.options[handle.queue.name].check_worker_health:
                continue
            exitcode = handle.process.exitcode if handle.process is not None else None
            logger.warning("worker %s is not running (exit code %s); starting a new one", handle.name, exitcode)
            handle.thread = None
            handle.process = None
            self._start_worker(handle)
            restarted.append(handle.name)
        return restarted

    def _drained(self) -> bool:
        if len(self.running):
            return False
        now = now_utc()
        for queue in self.queues:
            queue.enqueue_due(now)
            if queue.pending_count() or queue.in_flight_count():
                return False
        return True

    # ------------------------------------------------------------------ logging

    def _connect_task_logging(self, queue: Any) -> None:
        outcomes = (
            SIGNAL_COMPLETE,
            SIGNAL_ERROR,
            SIGNAL_RETRYING,
            SIGNAL_REVOKED,
            SIGNAL_EXPIRED,
            SIGNAL_CANCELED,
            SIGNAL_LOCKED,
            SIGNAL_TIMEOUT,
            SIGNAL_RATE_LIMITED,
        )

        def log_task(signal_name: str, task: Any, *args: Any) -> None:
            if task is None:
                return
            if signal_name == SIGNAL_EXECUTING:
                self._task_starts[task.id] = time.monotonic()
                return
            started = self._task_starts.pop(task.id, None)
            duration = f"{time.monotonic() - started:.3f}s" if started is not None else "-"
            # A failure with retries left is not the task's fate: the hub logs one WARNING saying when it retries.
            failed = signal_name in (SIGNAL_ERROR, SIGNAL_TIMEOUT) and not task.retries
            level = logging.WARNING if failed else logging.INFO
            if logger.isEnabledFor(level):  # the record is made directly: no stack walk for the caller per task
                record_args = (task.path, task.id, signal_name, duration)
                logger.handle(logger.makeRecord(logger.name, level, __file__, 0, _TASK_LINE, record_args, None, "log_task"))

        queue.signal(SIGNAL_EXECUTING, *outcomes)(log_task)
        self._log_receivers.append((queue, log_task))

    @staticmethod
    def _mark_existing_revocations(queue: Any) -> None:
        """Revocations stored without the marker that workers read with each claim must still be honoured."""
        try:
            if queue.mark_existing_revocations():
                logger.info("queue %r: revocations found; workers check every call against them", queue.name)
        except Exception as exc:  # the storage is down: the workers' own retries report it
            logger.warning("queue %r: could not look for stored revocations: %s", queue.name, exc)

    def _log_startup_warnings(self) -> None:
        """Log what each storage says about its store's durability (Redis without AOF, ...)."""
        for queue in self.queues:
            try:
                warnings = queue.startup_warnings()
            except Exception as exc:  # a custom storage's bug must not stop the consumer
                warnings = [f"{type(queue.storage).__name__}.startup_warnings() failed: {exc}"]
            for warning in warnings:
                logger.warning("queue %r: %s", queue.name, warning)
            if not len(queue.registry):
                logger.warning(
                    "queue %r: no task is registered, so every message it receives will be dead-lettered as an "
                    "unknown task. Tasks are found in the tasks.py module of each app in INSTALLED_APPS: is the "
                    "app that holds your tasks.py listed there?",
                    queue.name,
                )

    def _log_summary(self) -> None:
        lines = [f"consumer {self.identity} starting"]
        for queue in self.queues:
            options = self.options[queue.name]
            storage = type(queue.storage).__name__
            lines.append(
                f"  queue {queue.name!r}: storage {storage}, {options.workers} {options.worker_type} worker(s), "
                f"lease {queue.lease:g}s, periodic {'on' if options.periodic else 'off'}"
            )
            for name in queue.registry.names():
                wrapper = queue.registry.get(name)
                if wrapper.validate_datetime is None:
                    lines.append(f"    task {name}")
                    continue
                next_run = ""
                if hasattr(wrapper.validate_datetime, "next_runs"):
                    runs = wrapper.validate_datetime.next_runs(now_utc(), 1)
                    next_run = f", next run {runs[0].isoformat()}" if runs else ", never runs"
                lines.append(f"    periodic task {name}{next_run}")
        logger.info("\n".join(lines))
