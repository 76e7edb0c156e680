"""Settings of the djhuey-style shop project (see the package docstring for what changed from huey)."""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("DJHUEY_PROJECT_DIR", tempfile.gettempdir()))

SECRET_KEY = "djhuey-shop-project-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_tasks_q",  # was "huey.contrib.djhuey"
    "tests.djhuey_project.shop",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJHUEY_PROJECT_DB", str(STATE_DIR / "shop.sqlite3")),
        "OPTIONS": {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

HUEY = {
    "huey_class": "huey.SqliteHuey",
    "name": "shop",
    "results": True,
    "store_none": False,
    "immediate": False,
    "utc": True,
    "filename": os.environ.get("DJHUEY_PROJECT_QUEUE", str(STATE_DIR / "shop-huey.sqlite3")),
    "consumer": {
        "workers": 2,
        "worker_type": "thread",
        "initial_delay": 0.05,
        "backoff": 1.15,
        "max_delay": 0.5,
        "scheduler_interval": 1,
        "periodic": True,
        "check_worker_health": True,
        "health_check_interval": 1,
    },
}
