"""A SqliteStorage file written by an older version (integer states, a ``claims`` column, random message and
dead-letter ids, keys without a hash) is rebuilt in the current layout when the storage opens it, keeping
every message, value and counter."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from django_tasks_q.backends.sqlite import SqliteStorage

OLDER_TABLES = [
    """CREATE TABLE tasks_q_message (
        id INTEGER PRIMARY KEY{autoincrement}, queue TEXT NOT NULL, message_id TEXT NOT NULL, data BLOB NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0, claims INTEGER NOT NULL DEFAULT 0,
        token TEXT, deadline REAL, reserved_at REAL)""",
    "CREATE INDEX tasks_q_message_order ON tasks_q_message (queue, state, priority DESC, id)",
    "CREATE INDEX tasks_q_message_lease ON tasks_q_message (queue, state, deadline)",
    "CREATE UNIQUE INDEX tasks_q_message_ident ON tasks_q_message (queue, message_id)",
    """CREATE TABLE tasks_q_schedule (
        id INTEGER PRIMARY KEY, queue TEXT NOT NULL, data BLOB NOT NULL, timestamp REAL NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX tasks_q_schedule_due ON tasks_q_schedule (queue, timestamp, id)",
    """CREATE TABLE tasks_q_kv (
        id INTEGER PRIMARY KEY, queue TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        is_result INTEGER NOT NULL DEFAULT 0, expires_at REAL, UNIQUE (queue, key))""",
    "CREATE INDEX tasks_q_kv_expiry ON tasks_q_kv (queue, expires_at)",
    """CREATE TABLE tasks_q_counter (
        id INTEGER PRIMARY KEY, queue TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, expires_at REAL,
        UNIQUE (queue, key))""",
    "CREATE INDEX tasks_q_counter_expiry ON tasks_q_counter (queue, expires_at)",
    """CREATE TABLE tasks_q_dead (
        id INTEGER PRIMARY KEY, queue TEXT NOT NULL, letter_id TEXT NOT NULL, data BLOB NOT NULL,
        reason TEXT NOT NULL, detail TEXT NOT NULL, attempts INTEGER NOT NULL, failed_at REAL NOT NULL,
        priority INTEGER, UNIQUE (queue, letter_id))""",
]

LEASED_UNTIL = time.time() + 3600


def older_file(path: Path, strict_fifo: bool) -> None:
    """A file as the older version left it: two queues' messages (one reserved), the newest message of a
    strict_fifo file already gone, a scheduled item, values, a counter and a dead letter."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for statement in OLDER_TABLES:
            conn.execute(statement.format(autoincrement=" AUTOINCREMENT" if strict_fifo else ""))
        conn.executemany(
            "INSERT INTO tasks_q_message (id, queue, message_id, data, priority, state, claims, token, deadline, "
            "reserved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, "q", "a1", b"low", -1, 0, 0, None, None, None),
                (2, "q", "a2", b"held", 0, 1, 2, "f" * 32, LEASED_UNTIL, LEASED_UNTIL - 30),
                (3, "q", "a3", b"high", 2**40, 0, 1, None, None, None),
                (4, "other", "a4", b"elsewhere", 0, 0, 0, None, None, None),
                (5, "q", "a5", b"gone", 0, 0, 0, None, None, None),
            ],
        )
        conn.execute("DELETE FROM tasks_q_message WHERE id = 5")
        conn.execute(
            "INSERT INTO tasks_q_schedule (queue, data, timestamp, priority) VALUES ('q', x'6c61746572', 1.0, 4)"
        )
        conn.executemany(
            "INSERT INTO tasks_q_kv (queue, key, value, is_result, expires_at) VALUES (?, ?, ?, ?, ?)",
            [("q", "result:1", b"r", 1, LEASED_UNTIL), ("q", "lock", b"l", 0, None)],
        )
        conn.execute("INSERT INTO tasks_q_counter (queue, key, value, expires_at) VALUES ('q', 'rate', 5, NULL)")
        conn.execute(
            "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
            "VALUES ('q', 'b7', x'64656164', 'boom', 'why', 3, 10.0, 7)"
        )


@pytest.mark.parametrize("strict_fifo", [False, True])
def test_an_older_file_is_rebuilt_keeping_every_message_value_and_counter(tmp_path: Path, strict_fifo: bool) -> None:
    path = tmp_path / "older.db"
    older_file(path, strict_fifo)
    storage = SqliteStorage("q", filename=path, strict_fifo=strict_fifo)
    assert storage.enqueued_items() == [b"high", b"low"]
    (held,) = storage.in_flight_items()
    assert (held.message_id, held.data, held.token, held.attempt, held.deadline) == (
        "2", b"held", "f" * 32, 2, LEASED_UNTIL
    )
    assert storage.ack(held)  # a reservation taken before the rebuild is still the reservation
    assert storage.scheduled_items() == [b"later"]
    assert storage.enqueue_due(2.0) == 1
    assert (storage.peek_data("result:1"), storage.peek_data("lock")) == (b"r", b"l")
    assert storage.task_results() == {"result:1": b"r"}
    assert storage.incr("rate") == 6
    (letter,) = storage.dead_letters()
    assert (letter.id, letter.data, letter.reason, letter.detail, letter.attempts, letter.priority) == (
        "1", b"dead", "boom", "why", 3, 7
    )
    assert SqliteStorage("other", filename=path, strict_fifo=strict_fifo).enqueued_items() == [b"elsewhere"]
    first = storage.reserve(30)
    assert first is not None and (first.data, first.priority, first.attempt) == (b"high", 2**40, 2)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM tasks_q_message WHERE data = x'6c61746572'")]
        assert ids == ([6] if strict_fifo else [5])  # AUTOINCREMENT kept, with its sequence past the lost row
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks_q_message'").fetchone()[0]
        assert ("AUTOINCREMENT" in table) is strict_fifo
        assert "claims" not in table
        assert conn.execute("SELECT key_hash FROM tasks_q_kv WHERE key = 'lock'").fetchone()[0] == (
            hashlib.sha256(b"lock").hexdigest()
        )
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    storage.close()


def test_processes_opening_an_older_file_at_once_rebuild_it_once(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    older_file(path, strict_fifo=False)
    sizes: list[int] = []

    def open_and_count() -> None:
        storage = SqliteStorage("q", filename=path)
        sizes.append(storage.queue_size())
        storage.close()

    threads = [threading.Thread(target=open_and_count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sizes == [2, 2, 2, 2]


def test_a_file_opened_without_create_tables_is_rebuilt_by_initialize_schema(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    older_file(path, strict_fifo=False)
    storage = SqliteStorage("q", filename=path, create_tables=False)
    storage.initialize_schema()
    assert storage.enqueued_items() == [b"high", b"low"]
    storage.close()
