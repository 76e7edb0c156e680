"""Settings for consumer subprocesses in end-to-end tests: tests.settings plus the ledger app and one queue.

Environment: ``TASKS_Q_URL`` (the queue), ``TASKS_Q_LEASE`` (seconds), ``TASKS_Q_DB_PATH`` (a SQLite file for
Django's database, shared by every process of one test).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.ledgerapp"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TASKS_Q_DB_PATH", ":memory:"),
        "OPTIONS": {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

TASKS_Q = {
    "default": {
        "URL": os.environ["TASKS_Q_URL"],
        "LEASE": float(os.environ.get("TASKS_Q_LEASE", "2")),
        "MAX_ATTEMPTS": int(os.environ.get("TASKS_Q_MAX_ATTEMPTS", "5")),
        "CONSUMER": {
            "initial_delay": 0.02,
            "max_delay": 0.2,
            "scheduler_interval": 0.2,
            "health_check_interval": 0.5,
            "shutdown_timeout": float(os.environ.get("TASKS_Q_SHUTDOWN_TIMEOUT", "10")),
        },
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_tasks_q": {"handlers": ["console"], "level": "INFO"}},
}
