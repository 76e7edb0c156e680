"""Django settings of the benchmark's django-tasks-q processes (producers and ``run_tasks``).

Environment: ``BENCH_QUEUE_URL`` (the ``bench`` queue's storage), ``BENCH_DB_URL`` (Django's database: a SQLite
file or PostgreSQL; the ORM storage lives there) and ``BENCH_LEDGER`` (read by the task body). Signing is on (the
default: a key derived from ``SECRET_KEY``) and delivery is reliable (every storage here leases messages). Task
history is off: huey keeps none, and the figures are about moving tasks.
"""

import os

import environ

env = environ.Env()

SECRET_KEY = "django-tasks-q-benchmark-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_tasks_q", "benchmarks.benchapp"]

DATABASES = {"default": env.db_url_config(os.environ.get("BENCH_DB_URL", "sqlite:////tmp/tasks_q_bench.sqlite3"))}
# Persistent connections: the consumer closes "old" connections around every task, and with Django's default
# CONN_MAX_AGE = 0 every connection is old, so the ORM storage would reconnect for every task.
DATABASES["default"]["CONN_MAX_AGE"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL with synchronous=NORMAL, as for the SQLite storage (and as SQLite recommends for WAL).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

TASKS_Q = {
    "bench": {
        "URL": os.environ.get("BENCH_QUEUE_URL", "memory://"),
    }
}
TASKS_Q_HISTORY = "off"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
