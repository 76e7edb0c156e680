"""``python manage.py run_huey``: djhuey's consumer command, run by ``run_tasks`` on the djhuey queue.

It takes huey's consumer flags and maps each onto ``run_tasks`` (see docs/djhuey.md for the table). Keys of
``HUEY['consumer']`` that huey's command applies itself (``flush_locks``, ``extra_locks``, ``logfile``,
``verbose``, ``simple_log``) are applied here too; flags override them. As in djhuey, huey's ``-v`` is
``-V`` / ``--huey-verbose`` because Django keeps ``-v`` for ``--verbosity``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_tasks_q.conf import registry_for
from django_tasks_q.consumer import ConsumerOptions
from django_tasks_q.contrib.djhuey import queue_name
from django_tasks_q.exceptions import ConfigurationError
from django_tasks_q.huey_settings import huey_translation
from django_tasks_q.management.commands.run_tasks import Command as RunTasksCommand

MAPPED_TO_RUN_TASKS = (
    "workers",
    "worker_type",
    "initial_delay",
    "max_delay",
    "backoff",
    "health_check_interval",
    "scheduler_interval",
    "max_tasks",
    "periodic",
)
"""Options that keep their meaning and their ``run_tasks`` name."""


class Command(RunTasksCommand):
    """Run the consumer of the djhuey queue with huey's command-line flags."""

    help = "Consume the djhuey queue (huey's run_huey flags, run by run_tasks)."

    def add_arguments(self, parser: CommandParser) -> None:
        """huey's consumer flags: workers, scheduler and logging."""
        parser.add_argument("-w", "--workers", type=int, help="number of worker threads or processes")
        parser.add_argument("-k", "--worker-type", dest="worker_type", help="thread or process")
        parser.add_argument("-d", "--delay", type=float, dest="initial_delay", metavar="SECONDS",
                            help="first wait when polling an empty queue")
        parser.add_argument("-m", "--max-delay", type=float, dest="max_delay", metavar="SECONDS",
                            help="longest wait between polls of an empty queue")
        parser.add_argument("-b", "--backoff", type=float, metavar="FACTOR",
                            help="factor by which the wait grows while the queue is empty (>= 1)")
        parser.add_argument("-c", "--health-check-interval", type=float, dest="health_check_interval",
                            metavar="SECONDS", help="seconds between worker health checks")
        parser.add_argument("-C", "--disable-health-check", action="store_false", dest="check_worker_health",
                            default=None, help="do not restart workers that die")
        parser.add_argument("-f", "--flush-locks", action="store_true", dest="flush_locks", default=None,
                            help="release every known task lock at start")
        parser.add_argument("-L", "--extra-locks", dest="extra_locks", metavar="NAMES",
                            help="more locks to release at start, separated by commas")
        parser.add_argument("-M", "--max-tasks", type=int, dest="max_tasks", metavar="COUNT",
                            help="restart a worker after it has run COUNT tasks")
        parser.add_argument("-s", "--scheduler-interval", type=float, dest="scheduler_interval",
                            metavar="SECONDS", help="seconds between scheduler passes")
        parser.add_argument("-n", "--no-periodic", action="store_false", dest="periodic", default=None,
                            help="do not enqueue periodic tasks")
        parser.add_argument("-l", "--logfile", metavar="FILE", help="log to FILE instead of the console")
        parser.add_argument("-V", "--huey-verbose", action="store_true", dest="verbose", default=None,
                            help="debug logging (huey's -v)")
        parser.add_argument("-q", "--quiet", action="store_false", dest="verbose", default=None,
                            help="warnings and errors only")
        parser.add_argument("-S", "--simple", action="store_true", dest="simple_log", default=None,
                            help="log lines as 'time message'")
        parser.add_argument("-A", "--disable-autoload", action="store_true", dest="disable_autoload",
                            help="accepted for compatibility: the django_tasks_q app always imports tasks modules")

    def handle(self, *args: Any, **options: Any) -> None:
        """Map huey's flags onto ``run_tasks`` options and run the consumer of the djhuey queue."""
        if options["disable_autoload"]:
            self.stderr.write("run_huey: -A has no effect; the django_tasks_q app imports tasks modules at start-up")
        huey_options = self.huey_options(options)
        run_options = self.run_tasks_options(huey_options, options["verbosity"])
        extra_locks = _lock_names(huey_options.get("extra_locks"))
        if extra_locks:
            registry_for(run_options["queues"][0]).state.known_locks.update(extra_locks)
        self._configure_huey_logging(huey_options.get("logfile"), bool(huey_options.get("simple_log")))
        super().handle(**run_options)

    @staticmethod
    def huey_options(options: dict[str, Any]) -> dict[str, Any]:
        """The command-line flags given, over the ``HUEY['consumer']`` keys that huey's command applies itself."""
        try:
            translation = huey_translation()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        merged = dict(translation.command_options) if translation is not None else {}
        merged.update({key: value for key, value in options.items() if value is not None})
        if merged.get("worker_type") not in (None, "thread", "process"):
            raise CommandError(
                f"run_huey: worker type {merged['worker_type']!r} does not exist here; use thread or process"
            )
        return merged

    @staticmethod
    def run_tasks_options(huey_options: dict[str, Any], verbosity: int) -> dict[str, Any]:
        """The ``run_tasks`` options (every one, defaults included) that run the djhuey queue as asked.

        ``check_worker_health`` (``-C``), which ``run_tasks`` takes from settings only, rides along and is applied
        by :meth:`_options_for`.
        """
        try:
            name = queue_name()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        run_options = vars(RunTasksCommand().create_parser("manage.py", "run_tasks").parse_args([]))
        run_options.update({key: huey_options[key] for key in MAPPED_TO_RUN_TASKS if key in huey_options})
        huey_verbose = huey_options.get("verbose")
        run_options.update(
            queues=[name],
            flush_locks=bool(huey_options.get("flush_locks") or _lock_names(huey_options.get("extra_locks"))),
            reload=False,
            check_worker_health=huey_options.get("check_worker_health"),
            # huey's --huey-verbose is debug logging (verbosity 3), --quiet warnings only (verbosity 0).
            verbosity=verbosity if huey_verbose is None else (3 if huey_verbose else 0),
        )
        return run_options

    def _options_for(self, name: str, options: dict[str, Any]) -> ConsumerOptions:
        consumer = super()._options_for(name, options)
        if options.get("check_worker_health") is False:
            consumer = dataclasses.replace(consumer, check_worker_health=False)
        return consumer

    @staticmethod
    def _configure_huey_logging(logfile: str | None, simple: bool) -> None:
        """A log file or huey's simple format, unless LOGGING already gives the logger a handler."""
        logger = logging.getLogger("django_tasks_q")
        if not (logfile or simple) or logger.handlers:
            return
        handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler()
        if simple:
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        else:
            handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _lock_names(extra_locks: str | None) -> list[str]:
    """huey's ``--extra-locks`` value (names separated by commas) as a list."""
    return [lock.strip() for lock in (extra_locks or "").split(",") if lock.strip()]
