"""PostgresStorage (huey's PostgresHuey parameters) on the ORM storage of a PostgreSQL entry of DATABASES.

Runs on every database (``db_backends``): the refusals everywhere, the storage itself where the test database is
PostgreSQL (the PostgreSQL run of ``scripts/test``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from django_tasks_q.backends.base import EmptyData
from django_tasks_q.backends.postgres import PostgresStorage, database_alias_for
from django_tasks_q.exceptions import ConfigurationError

pytestmark = [pytest.mark.db_backends, pytest.mark.django_db(transaction=True)]

ON_POSTGRES = connection.vendor == "postgresql"
needs_postgres = pytest.mark.skipif(not ON_POSTGRES, reason="the test database is not PostgreSQL")


def the_test_database_dsn() -> str:
    entry = connection.settings_dict
    return f"postgresql://{entry['USER']}@{entry['HOST'] or 'localhost'}:{entry['PORT'] or 5432}/{entry['NAME']}"


@pytest.fixture
def storage() -> Iterator[PostgresStorage]:
    storage = PostgresStorage(f"pg-{uuid.uuid4().hex[:10]}", dsn=the_test_database_dsn(), read_timeout=0.2)
    yield storage
    storage.flush_all()
    storage.close()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"connection": lambda: None}, "connection= (a callable"),
        ({"table_prefix": "mine"}, "table_prefix='mine' is not supported"),
        ({"read_timeout": 0}, "read_timeout must be a positive number"),
        ({"read_timeout": "1"}, "read_timeout must be a positive number"),
    ],
)
def test_huey_parameters_without_an_equivalent_are_refused_with_the_reason(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresStorage("q", using="default", **options)
    assert needle in str(caught.value)


def test_a_dsn_that_names_no_database_entry_says_what_to_add() -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresStorage("q", dsn="postgresql://someone@db.example:6543/elsewhere")
    message = str(caught.value)
    assert "dbname='elsewhere' host='db.example' port=6543 user='someone'" in message
    assert "DATABASES['tasks']" in message and "using='tasks'" in message


@pytest.mark.skipif(ON_POSTGRES, reason="checks the refusal of a database that is not PostgreSQL")
def test_a_database_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="runs on postgresql"):
        PostgresStorage("q", using="default")


def test_an_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no_such_option"):
        PostgresStorage("q", using="default", no_such_option=1)


DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "tasks": {"ENGINE": "django.db.backends.postgresql", "NAME": "jobs", "HOST": "", "PORT": "", "USER": "app"},
}


def test_a_dsn_or_keywords_find_the_entry_of_the_same_database_whatever_the_spelling() -> None:
    assert database_alias_for("postgresql://app@localhost/jobs", {}, "q", DATABASES) == "tasks"
    assert database_alias_for("dbname=jobs user=app host=127.0.0.1 port=5432", {}, "q", DATABASES) == "tasks"
    assert database_alias_for(None, {"dbname": "jobs", "user": "app"}, "q", DATABASES) == "tasks"
    assert database_alias_for(None, {"database": "jobs", "user": "app", "password": "x"}, "q", DATABASES) == "tasks"
    with pytest.raises(ConfigurationError, match="PostgreSQL entries: \\['tasks'\\]"):
        database_alias_for("postgresql://app@localhost/jobs2", {}, "q", DATABASES)


@needs_postgres
def test_the_dsn_of_the_test_database_runs_the_queue_there(storage: PostgresStorage) -> None:
    assert storage.using == "default"
    storage.enqueue(b"one")
    storage.enqueue(b"two", priority=5)
    assert storage.queue_size() == 2
    assert storage.dequeue() == b"two"
    reservation = storage.reserve(30)
    assert reservation is not None and reservation.data == b"one"
    storage.ack(reservation)
    storage.put_data("k", b"v")
    assert storage.pop_data("k") == b"v" and storage.peek_data("k") is EmptyData


@needs_postgres
def test_connection_keywords_work_like_a_dsn() -> None:
    entry = connection.settings_dict
    storage = PostgresStorage("pg-kw", host=entry["HOST"], port=entry["PORT"], dbname=entry["NAME"], user=entry["USER"])
    assert storage.using == "default"


@needs_postgres
def test_an_idle_wait_ends_after_read_timeout_and_a_wake_ends_it_early(storage: PostgresStorage) -> None:
    assert storage.wait_for_messages(30) is False  # returns after read_timeout (0.2 s), not 30 s
    wake = threading.Event()
    wake.set()
    polling = PostgresStorage("pg-poll", dsn=the_test_database_dsn(), blocking=False, read_timeout=30)
    assert polling.wait_for_messages(30, wake) is True


@needs_postgres
def test_postgres_huey_runs_a_task_on_the_database_its_dsn_names() -> None:
    from django_tasks_q import PostgresHuey

    queue = PostgresHuey(f"pg-hub-{uuid.uuid4().hex[:8]}", dsn=the_test_database_dsn(), utc=False)
    assert isinstance(queue.storage, PostgresStorage) and queue.storage.using == "default"

    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        result = add(2, 3)
        queue.execute(queue.dequeue())  # huey's way of running one call by hand
        assert result.get() == 5
        assert queue.pending_count() == 0
    finally:
        queue.storage.flush_all()
        queue.storage.close()


def test_postgres_huey_refuses_what_has_no_equivalent_when_its_storage_is_built() -> None:
    from django_tasks_q import PostgresHuey

    with pytest.raises(ConfigurationError, match="table_prefix"):
        _ = PostgresHuey("pg-refused", using="default", table_prefix="other").storage
