"""The fixtures shared by the test folders; a fixture used in one folder only lives in that folder's conftest.py.

Helpers (functions and classes, not fixtures) are in ``tests/support``; the fixtures of its subprocess
deployments and private Redis servers are registered here, so that any test may ask for them by name.
"""

import os
import time
from collections.abc import Iterator

import pytest

from tests.support.deployments import (  # noqa: F401  (fixtures, registered by being imported here)
    fixture_chaos_lab,
    fixture_chaos_redis,
    fixture_django_sqlite_template,
    fixture_postgres,
    fixture_postgres_template,
)
from tests.support.redis_servers import fixture_synced_redis  # noqa: F401  (a fixture)

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


def _unavailable(message):
    """Skip on a developer's machine; fail under CI (``CI`` set), where every test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so these tests may not be skipped)", pytrace=False)
    pytest.skip(message)


def _flush(url):
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url():
    """URL of the dedicated Redis test database on 127.0.0.1:6379.

    The database number comes from ``TASKS_Q_TEST_REDIS_DB`` (default 15; pytest-xdist worker ``gwN`` uses that
    number minus 2N, so parallel workers never flush each other's data). Redis is checked once per session;
    when it does not answer the test is skipped, or failed under CI. The database is flushed at the start and
    end of the session; use ``fresh_redis_url`` for a database emptied around each test.
    """
    try:
        import redis
    except ImportError:
        _unavailable("the 'redis' package is not installed — pip install -e '.[test,redis]'")

    raw_db = os.environ.get("TASKS_Q_TEST_REDIS_DB", "15")
    try:
        db = int(raw_db)
    except ValueError:
        raise pytest.UsageError(
            f"TASKS_Q_TEST_REDIS_DB must be a Redis database number, not {raw_db!r}"
        ) from None

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):  # parallel workers (pytest -n): gw0 keeps the number, gw1 two below, ...
        db -= 2 * int(worker[2:])
        if db < 0:
            raise pytest.UsageError(f"too many pytest-xdist workers for Redis test database {raw_db}")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError:
        _unavailable(
            f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT} — start redis-server to run the Redis tests"
        )
    finally:
        client.close()

    _flush(url)
    yield url
    _flush(url)


@pytest.fixture
def fresh_redis_url(redis_url):
    """Like ``redis_url``, but the database is flushed before and after this test."""
    _flush(redis_url)
    yield redis_url
    _flush(redis_url)


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time is New York's for the test (EDT, UTC-4, in June)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
