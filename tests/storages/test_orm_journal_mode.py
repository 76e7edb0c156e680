"""The ORM storage switches a SQLite database in SQLite's default journal mode to WAL, and leaves others alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from django_tasks_q.backends.orm import OrmStorage


def journal_mode(path: Path) -> str:
    """The journal mode of a database file, as a fresh connection of its own sees it."""
    with sqlite3.connect(path) as plain:
        return plain.execute("PRAGMA journal_mode").fetchone()[0]


@pytest.fixture
def sqlite_alias(tmp_path: Path, django_db_blocker: Any) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Make a migrated SQLite file database under a new alias (``startproject``'s settings unless told)."""
    made: list[str] = []

    def make(**options: Any) -> tuple[str, Path]:
        alias, path = f"journal_{len(made)}", tmp_path / f"journal_{len(made)}.sqlite3"
        config = {name: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": options}
                  for name in ("default", alias)}
        connections.settings[alias] = connections.configure_settings(config)[alias]
        made.append(alias)
        call_command("migrate", "django_tasks_q", database=alias, verbosity=0)
        connections[alias].close()
        return alias, path

    with django_db_blocker.unblock():
        yield make
    for alias in made:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def test_a_startproject_database_ends_in_wal_after_the_first_storage_call(sqlite_alias: Callable) -> None:
    alias, path = sqlite_alias()
    assert journal_mode(path) == "delete"

    storage = OrmStorage("journal", using=alias)
    storage.enqueue(b"payload")

    assert journal_mode(path) == "wal"
    assert storage.dequeue() == b"payload"


def test_a_journal_mode_someone_chose_is_left_alone(sqlite_alias: Callable) -> None:
    alias, path = sqlite_alias(init_command="PRAGMA journal_mode=TRUNCATE;")

    OrmStorage("journal", using=alias).enqueue(b"payload")

    with connections[alias].cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "truncate"
    assert journal_mode(path) == "delete"  # TRUNCATE lasts as long as the connection; WAL would have stayed
