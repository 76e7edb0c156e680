"""Process workers: the entry point of a worker process, and how it stops with its consumer.

The consumer starts each process worker with ``spawn``; :func:`process_worker_main` sets Django up, rebuilds the
queue from ``TASKS_Q`` by name and runs one worker loop (or ``threads`` of them). The process stops gracefully
when the consumer asks (SIGUSR1) or on a first SIGTERM, at once on a second, and exits when its consumer is
gone: killed at once on Linux, otherwise within a second.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from typing import Any

from .outages import OutageLog, outage_max_delay
from .workers import AcknowledgementHealth, LeaseKeeper, RunningTasks, WorkerLoop

logger = logging.getLogger("django_tasks_q.consumer")


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Ask Linux to send this process ``signum`` when its parent dies; ``False`` (nothing asked) elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return False
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signum)
    return True


def process_worker_main(
    queue_name: str,
    worker_name: str,
    options: dict[str, Any],
    parent_pid: int,
) -> None:
    """Entry point of a worker process (started with ``spawn``): set Django up and run a worker loop."""
    die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(0)
    import django

    django.setup()
    from ..conf import queues  # after setup: the queue is built from this process's settings

    queue = queues[queue_name]
    recorder = None
    if options.get("consumer_identity"):  # the consumer records history: so does each worker process
        from .heartbeats import start_worker_recording  # models: importable once Django is set up

        recorder = start_worker_recording(queue, options["consumer_identity"])
    stop = threading.Event()
    running = RunningTasks()

    stopping = threading.Event()

    def begin_graceful_stop() -> None:
        if stopping.is_set():
            return
        stopping.set()
        stop.set()
        timer = threading.Timer(options["shutdown_timeout"], _give_up, args=(running,))
        timer.daemon = True
        timer.start()

    def on_parent_stop(signum: int, frame: Any) -> None:
        begin_graceful_stop()

    terms_seen = []

    def on_term(signum: int, frame: Any) -> None:
        # A SIGTERM from outside (systemd, a container) stops gracefully like the parent's request; only a
        # second SIGTERM means "now".
        terms_seen.append(signum)
        if len(terms_seen) > 1:
            _release_running(running, count_attempt=True)
            os._exit(1)
        begin_graceful_stop()

    # The consumer asks its workers to stop with SIGUSR1 (idempotent), so that the same SIGTERM or Ctrl-C
    # reaching both the consumer and its workers does not count twice. Ctrl-C is the consumer's to handle.
    signal.signal(signal.SIGUSR1, on_parent_stop)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keeper = LeaseKeeper(running, stop, options["lease_interval"])
    keeper.start()
    watcher = threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True, name="tasks-q-orphan")
    watcher.start()
    outage = OutageLog(queue.name, max_delay=outage_max_delay(queue))  # shared by this process's loops
    count = options.get("threads", 1)
    acknowledgements = AcknowledgementHealth()
    loops = [
        WorkerLoop(
            worker_name if count == 1 else f"{worker_name}.{index + 1}",
            queue,
            stop,
            running,
            initial_delay=options["initial_delay"],
            backoff=options["backoff"],
            max_delay=options["max_delay"],
            max_tasks=options["max_tasks"],
            outage=outage,
            acknowledgements=acknowledgements,
        )
        for index in range(count)
    ]
    if count == 1:
        loops[0].run()
    else:
        _run_loops(loops, stop)
    stop.set()
    if recorder is not None:
        recorder.stop()


def _run_loops(loops: list[WorkerLoop], stop: threading.Event) -> None:
    """Run several worker loops in threads of this process; when one ends (recycled), stop the others."""
    done = threading.Event()

    def run(loop: WorkerLoop) -> None:
        try:
            loop.run()
        finally:
            done.set()

    threads = [threading.Thread(target=run, args=(loop,), name=f"tasks-q-worker-{loop.name}") for loop in loops]
    for thread in threads:
        thread.start()
    while not done.wait(0.5):
        pass
    stop.set()
    for thread in threads:
        thread.join()


def _give_up(running: RunningTasks) -> None:
    """The shutdown timeout passed: hand the running tasks back (their attempt counted) and exit."""
    logger.warning("worker process %d: shutdown timeout reached; releasing its running task", os.getpid())
    _release_running(running, count_attempt=True)
    os._exit(1)


def _release_running(running: RunningTasks, *, count_attempt: bool) -> None:
    for item in running.snapshot().values():
        try:
            item.queue.release(item.reservation, count_attempt=count_attempt)
        except Exception:
            logger.exception("could not release message %s", item.reservation.message_id)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            logger.error("worker process %d: consumer %d is gone; exiting", os.getpid(), parent_pid)
            os._exit(1)
