"""``python manage.py run_tasks``: the consumer of the queues configured in ``TASKS_Q``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks_q.backends.features import Feature
from django_tasks_q.conf import configured_queues, consumer_options, queues
from django_tasks_q.consumer import Consumer, ConsumerOptions, StorageUnavailable, reloading
from django_tasks_q.exceptions import ConfigurationError

COMMAND_LINE_OPTIONS = (
    "workers",
    "worker_type",
    "threads",
    "initial_delay",
    "backoff",
    "max_delay",
    "scheduler_interval",
    "health_check_interval",
    "max_tasks",
    "shutdown_timeout",
)


class Command(BaseCommand):
    """Run the consumer: workers, scheduler, lease keeper and reaper for one, several or all queues."""

    help = "Consume tasks from the queues configured in TASKS_Q (all of them unless --queue is given)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Command-line options; each consumer option overrides the queue's CONSUMER setting."""
        parser.add_argument("--queue", "-q", action="append", dest="queues", metavar="NAME",
                            help="queue to consume (repeatable; default: every configured queue)")
        parser.add_argument("--workers", "-w", type=int, help="worker threads or processes per queue")
        parser.add_argument("--worker-type", "-k", choices=("thread", "process"), dest="worker_type")
        parser.add_argument("--threads", type=int,
                            help="worker threads inside each worker process (with --worker-type process)")
        parser.add_argument("--no-periodic", action="store_false", dest="periodic", default=None,
                            help="do not enqueue periodic tasks")
        parser.add_argument("--burst", action="store_true", help="run what is due, then exit 0")
        parser.add_argument("--max-tasks", type=int, dest="max_tasks", help="recycle a worker after N tasks")
        parser.add_argument("--flush-locks", "-f", action="store_true", dest="flush_locks",
                            help="release every known task lock at start (locks left by a killed consumer)")
        parser.add_argument("--heartbeat-file", dest="heartbeat_file", metavar="PATH",
                            help="touch PATH every second while running (for container liveness probes)")
        parser.add_argument("--check", action="store_true",
                            help="check that every storage is reachable and configured, then exit")
        parser.add_argument("--reload", action="store_true", default=False,
                            help="restart gracefully when code changes (development; off by default)")
        parser.add_argument("--no-reload", action="store_false", dest="reload",
                            help="do not restart on code changes (the default)")
        parser.add_argument("--wait-for-storage", action="store_true", dest="wait_for_storage",
                            help="at start, wait for unavailable storages instead of exiting with an error")
        parser.add_argument("--initial-delay", type=float, dest="initial_delay")
        parser.add_argument("--backoff", type=float)
        parser.add_argument("--max-delay", type=float, dest="max_delay")
        parser.add_argument("--scheduler-interval", type=float, dest="scheduler_interval")
        parser.add_argument("--health-check-interval", type=float, dest="health_check_interval")
        parser.add_argument("--shutdown-timeout", type=float, dest="shutdown_timeout")

    def handle(self, *args: Any, **options: Any) -> None:
        """Resolve queues and options, then run (or check) the consumer."""
        self._configure_logging(options["verbosity"])
        names = self._queue_names(options["queues"])
        if options["check"]:
            self._check(names)
            return
        if options["reload"] and not reloading.is_reload_child():
            sys.exit(reloading.run_parent())
        self._run(names, options)

    def _queue_names(self, requested: list[str] | None) -> list[str]:
        try:
            configured = list(configured_queues())
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        if not requested:
            return configured
        unknown = [name for name in requested if name not in configured]
        if unknown:
            raise CommandError(f"unknown queue(s) {unknown}; TASKS_Q configures {configured}")
        return list(dict.fromkeys(requested))

    def _options_for(self, name: str, options: dict[str, Any]) -> ConsumerOptions:
        values = consumer_options(name)
        for key in COMMAND_LINE_OPTIONS:
            if options.get(key) is not None:
                values[key] = options[key]
        if options.get("periodic") is False:
            values["periodic"] = False
        return ConsumerOptions.from_dict(values, where=f"TASKS_Q[{name!r}]['CONSUMER']")

    def _run(self, names: list[str], options: dict[str, Any]) -> None:
        try:
            hubs = [queues[name] for name in names]
            per_queue = {name: self._options_for(name, options) for name in names}
            for hub in hubs:
                if hub.supports(Feature.PROCESS_LOCAL):
                    raise ConfigurationError(
                        f"TASKS_Q[{hub.name!r}] uses {type(hub.storage).__name__}, which lives inside one "
                        "process: run_tasks cannot see what your web processes enqueue there. Choose a shared "
                        "storage (orm, sqlite, file or redis) for this queue, or IMMEDIATE=True in development."
                    )
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        consumer = Consumer(
            hubs,
            per_queue,
            burst=options["burst"],
            flush_locks=options["flush_locks"],
            heartbeat_file=options["heartbeat_file"],
            verify_storage=True,
            wait_for_storage=options["wait_for_storage"],
        )
        changed = None
        if options["reload"] and reloading.is_reload_child():
            reloading.prepare_child()
            changed = reloading.start_watching(consumer)
        try:
            status = consumer.run()
        except StorageUnavailable as exc:
            raise CommandError(
                f"{exc}\nThe consumer did not start. Start the storage (or run `python manage.py migrate` for "
                "missing tables), or pass --wait-for-storage to wait for it."
            ) from None
        if changed is not None and changed.is_set():
            sys.exit(reloading.RESTART_EXIT_CODE)
        if status:
            sys.exit(status)

    def _check(self, names: list[str]) -> None:
        problems = []
        for name in names:
            try:
                hub = queues[name]
                self._options_for(name, {})
                pending = hub.pending_count()
            except Exception as exc:
                problems.append(f"queue {name!r}: {type(exc).__name__}: {exc}")
                continue
            self.stdout.write(f"queue {name!r}: {type(hub.storage).__name__} reachable, {pending} pending")
        if problems:
            raise CommandError("storage check failed:\n  " + "\n  ".join(problems))

    @staticmethod
    def _configure_logging(verbosity: int) -> None:
        level = {0: logging.WARNING, 1: logging.INFO, 2: logging.INFO, 3: logging.DEBUG}.get(verbosity, logging.DEBUG)
        logger = logging.getLogger("django_tasks_q")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(level)
