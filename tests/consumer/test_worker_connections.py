"""How a worker treats Django's database connections between tasks (Django's default ``CONN_MAX_AGE = 0``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_tasks_q.backends.orm import OrmStorage
from django_tasks_q.consumer.workers import close_old_connections


@pytest.fixture
def file_aliases(tmp_path: Path, django_db_blocker: Any) -> Iterator[tuple[str, str]]:
    """Two extra SQLite file databases (``CONN_MAX_AGE`` 0, as ``startproject`` leaves it), removed afterwards."""
    aliases = ("tasksq_storage", "tasksq_other")
    config = {alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / f"{alias}.sqlite3")}
              for alias in ("default", *aliases)}
    configured = connections.configure_settings(config)
    for alias in aliases:
        connections.settings[alias] = configured[alias]
    with django_db_blocker.unblock():
        yield aliases
    for alias in aliases:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def test_the_kept_alias_stays_connected_and_the_others_close(file_aliases: tuple[str, str]) -> None:
    kept, other = file_aliases
    for alias in file_aliases:
        connections[alias].ensure_connection()
    storage_connection = connections[kept].connection

    close_old_connections(keep=(kept,))
    close_old_connections(keep=(kept,))

    assert connections[kept].connection is storage_connection
    assert connections[other].connection is None


def test_a_kept_connection_left_outside_autocommit_is_closed(file_aliases: tuple[str, str]) -> None:
    kept, _ = file_aliases
    connections[kept].ensure_connection()
    connections[kept].set_autocommit(False)  # what a task that forgot its transaction leaves behind

    close_old_connections(keep=(kept,))

    assert connections[kept].connection is None


def test_without_keep_every_connection_past_its_lifetime_closes(file_aliases: tuple[str, str]) -> None:
    kept, other = file_aliases
    for alias in file_aliases:
        connections[alias].ensure_connection()

    close_old_connections()

    assert connections[kept].connection is None
    assert connections[other].connection is None


@pytest.mark.django_db
def test_the_orm_storage_asks_workers_to_keep_its_connection() -> None:
    assert OrmStorage("kept-connection", using="default").kept_connection_aliases == ("default",)


def test_the_queries_a_task_logged_are_forgotten_after_it(file_aliases: tuple[str, str], settings: Any) -> None:
    settings.DEBUG = True  # as startproject leaves it: every connection logs its statements
    kept, other = file_aliases
    for alias in file_aliases:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connections[alias].queries_log
    close_old_connections(keep=(kept,))
    assert not connections[kept].queries_log and not connections[other].queries_log
