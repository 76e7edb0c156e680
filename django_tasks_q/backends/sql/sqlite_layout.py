"""The tables of the SQLite storage's file: created on first use, and rebuilt once from the older layout.

The file holds the five tables of the ORM storage (the same columns, so both storages run the same statements),
named ``tasks_q_*`` so that the file may also be Django's own database without meeting the ORM storage's tables.
Files written before the two storages shared their statements have a message table with a ``claims`` column
(integer states, a random ``message_id`` per message, dead letters keyed by a ``letter_id``, keys without a
hash). Opening such a file rebuilds its tables in the current layout inside one ``BEGIN IMMEDIATE``: every
ready, in-flight, scheduled and dead-lettered message, every value and every counter is kept, each message keeps
its row id (its place in the queue; it is now also its message id), and a message table created with
``AUTOINCREMENT`` keeps it and its sequence. A dead letter's id becomes its row id.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time

__all__ = ["create_statements", "rebuild_older_layout", "sha256_hex"]

TABLES = ("tasks_q_message", "tasks_q_schedule", "tasks_q_kv", "tasks_q_counter", "tasks_q_dead")


def sha256_hex(text: str | None) -> str | None:
    """The hash under which a key's row is found (SHA-256 of the key as UTF-8, hex)."""
    return None if text is None else hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _tables(strict_fifo: bool, suffix: str = "") -> list[str]:
    autoincrement = " AUTOINCREMENT" if strict_fifo else ""
    exists = "" if suffix else " IF NOT EXISTS"
    return [
        f"""CREATE TABLE{exists} tasks_q_message{suffix} (
            id INTEGER PRIMARY KEY{autoincrement},
            queue TEXT NOT NULL,
            data BLOB NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'ready',
            token TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            deadline REAL,
            reserved_at REAL,
            created_at REAL NOT NULL
        )""",
        f"""CREATE TABLE{exists} tasks_q_schedule{suffix} (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            data BLOB NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            eta REAL NOT NULL,
            created_at REAL NOT NULL
        )""",
        f"""CREATE TABLE{exists} tasks_q_kv{suffix} (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            is_result INTEGER NOT NULL DEFAULT 0,
            expires_at REAL,
            updated_at REAL NOT NULL,
            UNIQUE (queue, key_hash)
        )""",
        f"""CREATE TABLE{exists} tasks_q_counter{suffix} (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            key TEXT NOT NULL,
            value INTEGER NOT NULL DEFAULT 0,
            expires_at REAL,
            UNIQUE (queue, key_hash)
        )""",
        f"""CREATE TABLE{exists} tasks_q_dead{suffix} (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            data BLOB NOT NULL,
            priority INTEGER,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            failed_at REAL NOT NULL,
            created_at REAL
        )""",
    ]


_INDEXES = [
    "CREATE INDEX IF NOT EXISTS tasks_q_message_order ON tasks_q_message (queue, state, priority DESC, id)",
    "CREATE INDEX IF NOT EXISTS tasks_q_message_lease ON tasks_q_message (queue, state, deadline)",
    "CREATE INDEX IF NOT EXISTS tasks_q_schedule_due ON tasks_q_schedule (queue, eta, id)",
    "CREATE INDEX IF NOT EXISTS tasks_q_kv_expiry ON tasks_q_kv (queue, expires_at)",
    "CREATE INDEX IF NOT EXISTS tasks_q_counter_expiry ON tasks_q_counter (queue, expires_at)",
    "CREATE INDEX IF NOT EXISTS tasks_q_dead_failed ON tasks_q_dead (queue, failed_at)",
]

_COPIES = [
    "INSERT INTO tasks_q_message_new (id, queue, data, priority, state, token, attempts, deadline, reserved_at, "
    "created_at) SELECT id, queue, data, priority, CASE state WHEN 1 THEN 'in_flight' ELSE 'ready' END, "
    "coalesce(token, ''), claims, deadline, reserved_at, :now FROM tasks_q_message ORDER BY id",
    "INSERT INTO tasks_q_schedule_new (id, queue, data, priority, eta, created_at) "
    "SELECT id, queue, data, priority, timestamp, :now FROM tasks_q_schedule ORDER BY id",
    "INSERT INTO tasks_q_kv_new (id, queue, key_hash, key, value, is_result, expires_at, updated_at) "
    "SELECT id, queue, tasks_q_sha256(key), key, value, is_result, expires_at, :now FROM tasks_q_kv ORDER BY id",
    "INSERT INTO tasks_q_counter_new (id, queue, key_hash, key, value, expires_at) "
    "SELECT id, queue, tasks_q_sha256(key), key, value, expires_at FROM tasks_q_counter ORDER BY id",
    "INSERT INTO tasks_q_dead_new (id, queue, data, priority, reason, detail, attempts, failed_at) "
    "SELECT id, queue, data, priority, reason, detail, attempts, failed_at FROM tasks_q_dead ORDER BY id",
]


def create_statements(strict_fifo: bool) -> list[str]:
    """The ``CREATE … IF NOT EXISTS`` statements of the tables and their indexes."""
    return [*_tables(strict_fifo), *_INDEXES]


def has_older_layout(conn: sqlite3.Connection) -> bool:
    """Whether the file's message table is of the older layout (it has a ``claims`` column)."""
    return any(row[1] == "claims" for row in conn.execute("PRAGMA table_info(tasks_q_message)"))


def rebuild_older_layout(conn: sqlite3.Connection, strict_fifo: bool) -> None:
    """Inside the caller's ``BEGIN IMMEDIATE``: rebuild tables of the older layout in the current one, keeping
    every row (see the module documentation); nothing to do when the file has the current layout."""
    if not has_older_layout(conn):
        return
    conn.create_function("tasks_q_sha256", 1, sha256_hex, deterministic=True)
    sequence = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tasks_q_message'").fetchone() if (
        strict_fifo
    ) else None
    for statement in _tables(strict_fifo, suffix="_new"):
        conn.execute(statement)
    now = time.time()
    for statement in _COPIES:
        conn.execute(statement, {"now": now})
    for table in TABLES:
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    if sequence is not None:
        # The copy set the new table's sequence to its largest id; the old one may have been past it.
        conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'tasks_q_message'", (sequence[0],)
        )
        if not conn.execute("SELECT changes()").fetchone()[0]:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('tasks_q_message', ?)", (sequence[0],))
