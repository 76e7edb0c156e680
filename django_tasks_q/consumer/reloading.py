"""``run_tasks --reload``: restart the consumer when code changes, with graceful stops throughout.

The command runs as two processes. The **parent** starts the consumer as a child in a process group of its
own (so that Ctrl-C in a terminal reaches the parent only), forwards SIGINT, SIGTERM and SIGHUP to it, waits
for it, and starts it again when it exits with :data:`RESTART_EXIT_CODE`. The **child** is an ordinary
consumer plus Django's file watcher in a thread: a changed file stops the consumer gracefully (running tasks
finish or are handed back) and the child exits with :data:`RESTART_EXIT_CODE`. If the parent dies without
forwarding anything (``kill -9``, a closed terminal), Linux sends the child SIGTERM, which stops it gracefully.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from .processes import die_with_parent

logger = logging.getLogger("django_tasks_q.consumer")

PARENT_PID_ENV = "DJANGO_TASKS_Q_RELOAD_PARENT"
"""Set in the child's environment to the parent's pid; its presence makes the command run as the child."""

RESTART_EXIT_CODE = 3
"""The child's exit status after a code change: the parent starts it again."""

FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def is_reload_child() -> bool:
    """Whether this process is the consumer started by a ``--reload`` parent."""
    return PARENT_PID_ENV in os.environ


def run_parent() -> int:
    """Run the consumer in a child process until it stops for another reason than a code change.

    Returns the child's last exit status. Stop signals are forwarded, never acted on here: the child decides
    (a first signal stops it gracefully, a second at once), and the parent waits for it to exit.
    """
    from django.utils import autoreload

    arguments = autoreload.get_child_arguments()
    environment = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: Any) -> None:
        if signum != signal.SIGHUP:
            received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for name in FORWARDED_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)
    while True:
        child = subprocess.Popen(arguments, env=environment, process_group=0)
        if received:  # a stop signal arrived while the child was being started
            child.send_signal(received[-1])
        status = child.wait()
        if status != RESTART_EXIT_CODE or received:
            return status
        logger.info("code changed: starting the consumer again")


def prepare_child() -> None:
    """In the child: die gracefully with the parent (SIGTERM on Linux), or exit if it is already gone."""
    parent = int(os.environ[PARENT_PID_ENV])
    die_with_parent(signal.SIGTERM)  # not Linux: the watch thread of start_watching notices the parent's death
    if os.getppid() != parent:
        sys.exit(0)


def start_watching(consumer: Any) -> threading.Event:
    """Watch the code with Django's reloader; a change stops ``consumer`` gracefully and sets the event."""
    from django.utils import autoreload

    changed = threading.Event()
    parent = int(os.environ[PARENT_PID_ENV])
    reloader = autoreload.get_reloader()

    def on_change(sender: Any, file_path: Any, **kwargs: Any) -> bool:
        if not changed.is_set():
            logger.info("%s changed: stopping gracefully to load the new code", file_path)
            changed.set()
            consumer.stop()
            reloader.stop()
        return True  # handled: Django's own reaction (exiting from its thread) is not wanted here

    autoreload.file_changed.connect(on_change, weak=False)

    def watch_parent() -> None:
        while not consumer.stop_event.wait(1.0):
            if os.getppid() != parent:
                logger.error("the reloading parent %d is gone; stopping gracefully", parent)
                consumer.stop()
                return

    logger.info("watching for code changes with %s", type(reloader).__name__)
    threading.Thread(target=reloader.run, args=(threading.main_thread(),), name="tasks-q-reloader", daemon=True).start()
    threading.Thread(target=watch_parent, name="tasks-q-reload-parent", daemon=True).start()
    return changed
