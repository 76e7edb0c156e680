"""Django settings of the benchmark's django-tasks-q processes (producers and ``run_tasks``): what a user gets.

The base is the ``settings.py`` that ``django-admin startproject`` writes with the installed Django, rendered from
Django's own project template at import time (so it stays true when Django changes its defaults), with the project
folder ``BENCH_PROJECT_DIR``: the database is that folder's ``db.sqlite3``, journal mode and ``CONN_MAX_AGE`` as
Django leaves them, ``DEBUG = True``. Added to it, as the quickstart says: the app, the benchmark's tasks and one
``TASKS_Q`` queue. Task history stays at its default.

Environment: ``BENCH_PROJECT_DIR`` (the startproject folder), ``BENCH_QUEUE_URL`` (the ``bench`` queue's
storage), ``BENCH_DB_URL`` (only to replace Django's database, e.g. by PostgreSQL), ``BENCH_LEDGER`` (read by the
task body) and ``BENCH_TUNED``: a comma-separated list of the tunings in :data:`TUNINGS` (the benchmark labels
every row that uses one).
"""

import os
import re
from pathlib import Path

import django

_TEMPLATE = Path(django.__file__).parent / "conf" / "project_template" / "project_name" / "settings.py-tpl"
_PROJECT_DIR = Path(os.environ.get("BENCH_PROJECT_DIR", "/tmp/tasks_q_bench_project"))


def _startproject_settings() -> dict:
    """The settings ``startproject benchproject`` would write into ``BENCH_PROJECT_DIR``, evaluated."""
    values = {
        "project_name": "benchproject",
        "secret_key": "django-tasks-q-benchmark-not-a-secret",
        "django_version": django.get_version(),
        "docs_version": "dev",
    }
    text = _TEMPLATE.read_text()
    if "{%" in text:
        raise RuntimeError(f"{_TEMPLATE} uses template tags; the benchmark only fills in variables")
    text = re.sub(r"\{\{ (\w+) \}\}", lambda found: values[found.group(1)], text)
    namespace = {"__file__": str(_PROJECT_DIR / "benchproject" / "settings.py"), "__name__": "benchproject.settings"}
    exec(compile(text, str(_TEMPLATE), "exec"), namespace)
    return {name: value for name, value in namespace.items() if name.isupper()}


globals().update(_startproject_settings())

ROOT_URLCONF = "benchmarks.urls"  # the urls.py startproject writes (the admin only)
INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_q", "benchmarks.benchapp"]  # noqa: F821 - from the template
TASKS_Q = {"bench": {"URL": os.environ.get("BENCH_QUEUE_URL", "memory://")}}

if os.environ.get("BENCH_DB_URL"):
    import environ

    DATABASES = {"default": environ.Env().db_url_config(os.environ["BENCH_DB_URL"])}

TUNINGS = {
    "history-off": "TASKS_Q_HISTORY = 'off'",
    "persistent": "DATABASES['default']['CONN_MAX_AGE'] = None",
    "wal": "DATABASES['default']['OPTIONS'] = {'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;'}",
}
"""Settings a tuned row adds, by name (the names ``BENCH_TUNED`` lists); the report prints them."""

for _name in filter(None, os.environ.get("BENCH_TUNED", "").split(",")):
    if _name not in TUNINGS:
        raise RuntimeError(f"BENCH_TUNED: unknown tuning {_name!r}; expected some of {sorted(TUNINGS)}")
    exec(TUNINGS[_name])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
