"""Django settings for the django-tasks-q test suite.

The database is chosen by the ``TASKS_Q_TEST_DB`` environment variable:

* ``sqlite`` (default) — a SQLite file in the temp folder (the test database itself is in memory);
* ``postgres`` — ``postgres://postgres@127.0.0.1:5432/test``;
* ``mysql`` — ``mysql://root@127.0.0.1:3306/test`` through PyMySQL (MariaDB 10.11+ or MySQL 8.4+);
* any database URL (``scheme://...``) — used as it is.

Django's test runner creates its own ``test_<NAME>`` database next to the one named here.
"""

import os
import tempfile

import environ

env = environ.Env()

DB_URLS = {
    "sqlite": "sqlite:///" + os.path.join(tempfile.gettempdir(), "django_tasks_q_tests.sqlite3"),
    "postgres": "postgres://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}

TEST_DB = env.str("TASKS_Q_TEST_DB", default="sqlite")
if "://" in TEST_DB:
    _db_url = TEST_DB
elif TEST_DB in DB_URLS:
    _db_url = DB_URLS[TEST_DB]
else:
    raise ValueError(
        f"TASKS_Q_TEST_DB={TEST_DB!r} is not one of {', '.join(sorted(DB_URLS))} nor a database URL"
    )

DATABASES = {"default": env.db_url_config(_db_url)}

if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # mysqlclient needs C headers to build; PyMySQL is pure Python and speaks the same DB-API.
    import pymysql

    pymysql.install_as_MySQLdb()
    # Django 6.1 refuses a MySQLdb older than mysqlclient 2.2.1; PyMySQL reports its compatibility level here.
    if pymysql.version_info < (2, 2, 1):
        pymysql.version_info = (2, 2, 1, "final", 0)
        pymysql.__version__ = "2.2.1"
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("charset", "utf8mb4")
    DATABASES["default"].setdefault("TEST", {}).update(
        {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    )

SECRET_KEY = "django-tasks-q-tests-not-a-secret"  # a fixed value, for tests only
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_q",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# Fast hashing: the tests create users, they do not test password security.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Django's standard task API runs on django-tasks-q (see tests/django/test_tasks_backend.py).
TASKS = {
    "default": {
        "BACKEND": "django_tasks_q.tasks_backend.TasksQBackend",
        "QUEUES": ["default", "other"],
    }
}
