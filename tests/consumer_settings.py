"""Settings for consumer subprocesses in end-to-end tests: tests.settings plus the ledger app and one queue.

Environment:

* ``TASKS_Q_URL`` (the queue), ``TASKS_Q_LEASE`` (seconds), ``TASKS_Q_MAX_ATTEMPTS``,
  ``TASKS_Q_SHUTDOWN_TIMEOUT``, ``TASKS_Q_SERIALIZER`` (``json`` by default, or ``pickle``);
* Django's database: ``TASKS_Q_DB_PATH`` (a SQLite file shared by every process of one test), or, with
  ``TASKS_Q_DJANGO_DB=postgres``, the PostgreSQL database ``TASKS_Q_DJANGO_DB_NAME`` on
  ``TASKS_Q_PG_HOST``:``TASKS_Q_PG_PORT`` (default 127.0.0.1:5432) as ``TASKS_Q_PG_USER`` (default postgres).
  The ORM storage (``orm://``) lives in this database.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.ledgerapp"]

if os.environ.get("TASKS_Q_DJANGO_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["TASKS_Q_DJANGO_DB_NAME"],
            "USER": os.environ.get("TASKS_Q_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TASKS_Q_PG_PASSWORD", ""),
            "HOST": os.environ.get("TASKS_Q_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TASKS_Q_PG_PORT", "5432"),
            "OPTIONS": {"connect_timeout": 5},
        }
    }
else:
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
        "SERIALIZER": os.environ.get("TASKS_Q_SERIALIZER", "json"),
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
    "formatters": {"chaos": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "chaos"}},
    "loggers": {"django_tasks_q": {"handlers": ["console"], "level": "INFO"}},
}
