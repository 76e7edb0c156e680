"""SqliteStorage: the storage contract, plus what only a SQLite file storage has to prove.

* the contract suite, three times: plain, ``strict_fifo=True``, and without ``UPDATE … RETURNING`` (the
  fallback for SQLite libraries older than 3.35);
* the seed's parameters, defaults and examples (run as written; the absolute paths of the seed are accepted
  lazily and then run under a temporary root with the same parameters);
* how it is made safe: WAL, ``BEGIN IMMEDIATE`` for every write, the claim as one statement, no transaction
  left open, per-thread and per-process connections;
* bad input: parameters, a missing folder, a folder as filename, a corrupt file, a database locked for longer
  than ``timeout``;
* crashes at chosen statements (``os._exit`` in a child process): nothing half-written, nothing lost;
* several processes at once (spawned, never forked): no "database is locked", nothing lost or doubled.

Multiprocess tests are in ``tests/chaos/test_sqlite_processes.py``, with helpers shared with the file storage in
``tests/support/process_drain.py``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_tasks_q import SqliteHuey
from django_tasks_q.backends.base import BaseStorage, EmptyData
from django_tasks_q.backends.sqlite import SUPPORTS_RETURNING, SchemaMissing, SqliteStorage
from django_tasks_q.exceptions import ConfigurationError, StorageError
from tests.support.storage_contract import StorageContract


class TestSqliteStorage(StorageContract):
    __test__ = True

    supports_named_isolation = True
    options: dict[str, Any] = {}
    use_returning = SUPPORTS_RETURNING

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SqliteStorage]:
        storage = self.make(tmp_path / "contract.db", "contract")
        yield storage
        storage.flush_all()
        storage.close()

    def make(self, filename: Any, name: str) -> SqliteStorage:
        storage = SqliteStorage(name, filename=filename, **self.options)
        storage._use_returning = self.use_returning
        return storage

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        assert isinstance(storage, SqliteStorage)
        return self.make(storage.filename, name)

    unreadable_kinds = ("priority_text", "attempts_text", "attempts_at_maximum")

    def corrupt_record(self, storage: BaseStorage, data: bytes, kind: str, in_flight: bool) -> None:
        assert isinstance(storage, SqliteStorage)
        if kind == "attempts_at_maximum" and in_flight:
            pytest.skip("a reserved row at the maximum attempts is reaped like any other")
        column, value = {
            "priority_text": ("priority", "high"),
            "attempts_text": ("attempts", "many"),
            "attempts_at_maximum": ("attempts", 2**63 - 1),
        }[kind]
        with contextlib.closing(sqlite3.connect(storage.filename)) as conn, conn:
            changed = conn.execute(
                f"UPDATE tasks_q_message SET {column} = ? WHERE queue = ? AND data = ? AND state = ?",
                (value, storage.name, data, "in_flight" if in_flight else "ready"),
            ).rowcount
        assert changed == 1


class TestSqliteStorageStrictFifo(TestSqliteStorage):
    options = {"strict_fifo": True}


class TestSqliteStorageWithoutReturning(TestSqliteStorage):
    """The path taken with SQLite < 3.35: SELECT then UPDATE/DELETE inside the same BEGIN IMMEDIATE."""

    use_returning = False


# ---------------------------------------------------------------------------- helpers


def raw(path: Any) -> sqlite3.Connection:
    """A plain connection to the file, to look at what the storage wrote (or to hold its lock)."""
    return sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)


def pragma(storage: SqliteStorage, name: str) -> Any:
    return storage._connection().execute(f"PRAGMA {name}").fetchone()[0]


class StatementLog:
    """Records every SQL statement a storage's connection (in this thread) runs."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.statements: list[str] = []
        self.conn = storage._connection()
        self.conn.set_trace_callback(self.statements.append)

    def stop(self) -> list[str]:
        self.conn.set_trace_callback(None)
        return [" ".join(s.split()) for s in self.statements]


# ---------------------------------------------------------------------------- parameters and defaults


def test_seed_parameters_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = SqliteStorage()
    assert storage.name == "huey"
    assert (storage.filename, storage.cache_mb, storage.fsync, storage.timeout, storage.strict_fifo) == (
        "huey.db",
        8,
        False,
        60,
        False,
    )
    assert storage.database_path == str(tmp_path / "huey.db")
    assert (SqliteStorage.blocking, SqliteStorage.priority) == (False, True)
    assert SqliteStorage.features == {
        "reliable", "dead_letters", "counters", "key_listing", "wait_for_messages", "reap_by_progress"
    }
    assert not (tmp_path / "huey.db").exists(), "nothing is opened before the first operation"
    storage.enqueue(b"m")
    assert (tmp_path / "huey.db").exists()
    assert pragma(storage, "journal_mode") == "wal"
    assert pragma(storage, "synchronous") == 1  # NORMAL
    assert pragma(storage, "cache_size") == -8 * 1024
    assert pragma(storage, "busy_timeout") == 60_000
    assert pragma(storage, "journal_size_limit") == 16 * 1024 * 1024
    assert "huey.db" in repr(storage)
    storage.close()


def test_tuning_parameters_reach_sqlite(tmp_path: Path) -> None:
    storage = SqliteStorage("tuned", filename=tmp_path / "t.db", cache_mb=64, fsync=True, timeout=120)
    assert pragma(storage, "synchronous") == 2  # FULL
    assert pragma(storage, "cache_size") == -64 * 1024
    assert pragma(storage, "busy_timeout") == 120_000
    storage.close()


def test_the_library_in_use_and_the_claim_statement(tmp_path: Path) -> None:
    assert SUPPORTS_RETURNING is (sqlite3.sqlite_version_info >= (3, 35, 0))
    storage = SqliteStorage("claim", filename=tmp_path / "c.db")
    storage.enqueue(b"m")
    log = StatementLog(storage)
    reservation = storage.reserve(30)
    statements = log.stop()
    assert reservation is not None
    writes = [s for s in statements if not s.startswith("SELECT")]
    if SUPPORTS_RETURNING:
        assert writes[0] == "BEGIN IMMEDIATE"
        assert writes[1].startswith("UPDATE tasks_q_message SET state = 'in_flight'") and "RETURNING" in writes[1]
        assert writes[2:] == ["COMMIT"]
    storage.close()


def test_every_write_is_one_short_begin_immediate_transaction(tmp_path: Path) -> None:
    storage = SqliteStorage("tx", filename=tmp_path / "tx.db")
    storage.enqueue(b"warm-up")  # opens the connection and creates the tables
    log = StatementLog(storage)
    conn = log.conn
    now = time.time()
    operations = [
        lambda: storage.enqueue(b"a", 1),
        lambda: storage.add_to_schedule(b"s", now - 1, 2),
        lambda: storage.enqueue_due(now),
        lambda: storage.put_data("k", b"v", ttl=60),
        lambda: storage.put_if_empty("lock", b"x"),
        lambda: storage.incr("c"),
        lambda: storage.pop_data("k"),
        lambda: storage.delete_data("lock"),
        lambda: storage.reserve(30),
        lambda: storage.requeue_expired(now + 3600, 5),
        lambda: storage.dequeue(),
        lambda: storage.add_dead_letter(b"d", "test"),
        lambda: storage.flush_all(),
    ]
    for operation in operations:
        operation()
        assert not conn.in_transaction, "a transaction was left open"
    statements = log.stop()
    in_transaction = False
    for statement in statements:
        verb = statement.split()[0].upper()
        if verb == "BEGIN":
            assert statement == "BEGIN IMMEDIATE"
            in_transaction = True
        elif verb in ("COMMIT", "ROLLBACK"):
            in_transaction = False
        elif verb in ("INSERT", "UPDATE", "DELETE"):
            assert in_transaction, f"write outside BEGIN IMMEDIATE: {statement}"
    storage.close()


# ---------------------------------------------------------------------------- layout and strict_fifo


def test_tables_are_prefixed_and_queues_share_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    conn = raw(path)  # a file that already holds someone else's table, e.g. a Django database
    conn.execute("CREATE TABLE auth_user (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO auth_user (name) VALUES ('ada')")
    conn.close()
    emails, reports = SqliteStorage("emails", filename=path), SqliteStorage("reports", filename=path)
    emails.enqueue(b"e")
    reports.enqueue(b"r", 5)
    reports.put_data("k", b"v")
    assert emails.enqueued_items() == [b"e"]
    assert emails.peek_data("k") is EmptyData
    emails.flush_all()
    assert reports.enqueued_items() == [b"r"]
    conn = raw(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert conn.execute("SELECT name FROM auth_user").fetchall() == [("ada",)]
    conn.close()
    ours = tables - {"auth_user", "sqlite_sequence"}
    assert ours == {"tasks_q_message", "tasks_q_schedule", "tasks_q_kv", "tasks_q_counter", "tasks_q_dead"}
    emails.close()
    reports.close()


def _message_ids(path: Path) -> list[int]:
    conn = raw(path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM tasks_q_message ORDER BY id")]
    finally:
        conn.close()


@pytest.mark.parametrize("strict_fifo", [True, False])
def test_strict_fifo_never_reuses_ids(tmp_path: Path, strict_fifo: bool) -> None:
    path = tmp_path / "fifo.db"
    storage = SqliteStorage("fifo", filename=path, strict_fifo=strict_fifo)
    storage.enqueue(b"first")
    (first_id,) = _message_ids(path)
    assert storage.dequeue() == b"first"  # the newest row is deleted
    storage.enqueue(b"second")
    (second_id,) = _message_ids(path)
    if strict_fifo:
        assert second_id > first_id  # AUTOINCREMENT: ids only grow
    else:
        assert second_id == first_id  # plain rowid: the id of a deleted newest row comes back
    storage.close()


def test_strict_fifo_of_a_file_cannot_change(tmp_path: Path) -> None:
    path = tmp_path / "fixed.db"
    SqliteStorage("a", filename=path, strict_fifo=True).enqueue(b"m")
    other = SqliteStorage("b", filename=path, strict_fifo=False)
    with pytest.raises(ConfigurationError, match=r"strict_fifo=True.*strict_fifo=False") as info:
        other.queue_size()
    assert "filename=" in str(info.value)
    assert SqliteStorage("c", filename=path, strict_fifo=True).queue_size() == 0


def test_fifo_order_survives_reserve_release_and_reaping(tmp_path: Path) -> None:
    storage = SqliteStorage("order", filename=tmp_path / "o.db", strict_fifo=True)
    for i in range(5):
        storage.enqueue(f"m{i}".encode())
    held = [storage.reserve(30) for _ in range(3)]
    storage.enqueue(b"m5")
    assert held[1] is not None and storage.release(held[1])
    storage.requeue_expired(time.time() + 3600, None)
    assert storage.enqueued_items() == [f"m{i}".encode() for i in range(6)]
    storage.close()


# ---------------------------------------------------------------------------- result retention


def test_expired_values_are_gone_on_read_and_purged(tmp_path: Path) -> None:
    path = tmp_path / "ttl.db"
    storage = SqliteStorage("ttl", filename=path)
    storage.put_data("result", b"r", is_result=True, ttl=0.05)
    storage.put_data("keep", b"k", is_result=True)
    storage.incr("window", ttl=0.05)
    time.sleep(0.1)
    assert storage.peek_data("result") is EmptyData
    assert storage.result_items() == {"keep": b"k"}
    assert storage.incr("window", 0) == 0  # the expired counter counts as absent (and is replaced)
    conn = raw(path)
    count = "SELECT COUNT(*) FROM tasks_q_kv WHERE key = 'result'"
    assert conn.execute(count).fetchone()[0] == 1, "still on disk until purged"
    assert storage.purge_expired() >= 1
    assert conn.execute(count).fetchone()[0] == 0
    storage.put_data("again", b"x", ttl=0.05)
    time.sleep(0.1)
    storage.purge_interval = 0  # writes purge by themselves (normally at most every purge_interval s)
    storage.put_data("trigger", b"y")
    assert conn.execute("SELECT key FROM tasks_q_kv WHERE queue = 'ttl' ORDER BY key").fetchall() == [
        ("keep",),
        ("trigger",),
    ]
    conn.close()
    storage.close()


# ---------------------------------------------------------------------------- connections


def test_each_thread_has_its_own_connection_and_close_reaches_all(tmp_path: Path) -> None:
    storage = SqliteStorage("threads", filename=tmp_path / "th.db")
    seen: list[sqlite3.Connection] = []

    def work() -> None:
        seen.append(storage._connection())
        storage.enqueue(b"from a thread")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine = storage._connection()
    assert len({id(conn) for conn in [*seen, mine]}) == 4
    storage.close()
    storage.close()  # harmless twice
    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")
    assert storage.queue_size() == 3  # reopens on demand


def test_a_forked_child_opens_its_own_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = SqliteStorage("fork", filename=tmp_path / "f.db")
    storage.enqueue(b"m")
    parent_conn = storage._connection()
    monkeypatch.setattr("django_tasks_q.backends.sql.sqlite_connection.os.getpid", lambda: -12345)  # "we are a child now"
    child_conn = storage._connection()
    assert child_conn is not parent_conn
    assert storage.queue_size() == 1
    storage.close()
    parent_conn.execute("SELECT 1")  # the parent's connection was neither used nor closed by the child


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"filename": ":memory:"}, "filename"),
        ({"filename": ""}, "filename"),
        ({"filename": 42}, "filename"),
        ({"cache_mb": -1}, "cache_mb"),
        ({"cache_mb": "8"}, "cache_mb"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"fsync": "yes"}, "fsync"),
        ({"strict_fifo": 2}, "strict_fifo"),
        ({"strict_fifo": None}, "strict_fifo"),
        ({"create_tables": "no"}, "create_tables"),
    ],
)
def test_bad_parameters_are_refused_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        SqliteStorage("bad", **options)


def test_create_tables_false_leaves_the_file_alone_until_initialize_schema(tmp_path: Path) -> None:
    path = tmp_path / "no-tables.db"
    storage = SqliteStorage("q", filename=path, create_tables=False)
    try:
        with pytest.raises(SchemaMissing, match="initialize_schema") as info:
            storage.queue_size()
        assert isinstance(info.value, StorageError) and isinstance(info.value, sqlite3.OperationalError)
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone() == (0,)
        storage.initialize_schema()
        storage.initialize_schema()  # harmless when the tables exist
        storage.enqueue(b"m")
        assert storage.dequeue() == b"m"
    finally:
        storage.close()


def test_missing_folder_names_filename_and_what_to_do(tmp_path: Path) -> None:
    filename = tmp_path / "no-such-folder" / "huey.db"
    storage = SqliteStorage("missing", filename=filename)
    with pytest.raises(ConfigurationError) as info:
        storage.enqueue(b"m")
    message = str(info.value)
    assert f"filename={str(filename)!r}" in message
    assert "does not exist" in message and "create it" in message
    assert not filename.parent.exists()


def test_a_folder_as_filename_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"is a folder; set filename="):
        SqliteStorage("folder", filename=tmp_path).queue_size()


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database " * 100
    path.write_bytes(garbage)
    storage = SqliteStorage("corrupt", filename=path)
    with pytest.raises(StorageError) as info:
        storage.enqueue(b"m")
    message = str(info.value)
    assert "filename=" in message and "corrupt.db" in message
    assert "not a SQLite database or it is corrupt" in message and "Move it aside" in message
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.db"]


def test_a_database_locked_beyond_timeout_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    storage = SqliteStorage("locked", filename=path, timeout=0.2)
    storage.enqueue(b"before")
    holder = raw(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"timeout=0.2 s") as info:
            storage.enqueue(b"refused")
        assert time.monotonic() - started < 5
        assert "database is locked" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    storage.enqueue(b"after")
    assert storage.enqueued_items() == [b"before", b"after"]  # nothing half-written by the refused call
    storage.close()


def test_a_lock_held_for_less_than_timeout_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    storage = SqliteStorage("busy", filename=path, timeout=10)
    storage.enqueue(b"first")
    holder = raw(path)
    holder.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    timer.start()
    try:
        started = time.monotonic()
        storage.enqueue(b"second")  # waits for the lock instead of failing
        assert time.monotonic() - started >= 0.3
        reservation = storage.reserve(30)
        assert reservation is not None and storage.ack(reservation)
    finally:
        timer.join()
        holder.close()
    assert storage.enqueued_items() == [b"second"]
    storage.close()


def test_a_claim_that_fails_after_an_acknowledgement_keeps_the_acknowledgement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The claim in ack_and_reserve fails on the next row (a trigger aborts it): the finished task stays
    acknowledged, with its result, instead of running again."""
    path = tmp_path / "claim.db"
    storage = SqliteStorage("claim", filename=path)
    storage.enqueue(b"running")
    storage.enqueue(b"next")
    running = storage.reserve(30)
    assert running is not None and running.data == b"running"
    with contextlib.closing(raw(path)) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_claim BEFORE UPDATE ON tasks_q_message WHEN old.data = x'6e657874' "
            "BEGIN SELECT RAISE(ABORT, 'this row refuses to be claimed'); END"
        )
    assert storage.ack_and_reserve(running, ("result-key", b"done", None), 30) == (True, None)
    assert storage.peek_data("result-key") == b"done"
    assert storage.in_flight_size() == 0
    assert storage.enqueued_items() == [b"next"]
    assert any("the acknowledgement is kept" in record.getMessage() for record in caplog.records)
    with contextlib.closing(raw(path)) as conn:
        conn.execute("DROP TRIGGER refuse_claim")
    following = storage.reserve(30)
    assert following is not None and following.data == b"next"
    storage.close()


# ---------------------------------------------------------------------------- the seed's examples


def test_seed_basic_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    huey = SqliteHuey("my-app", filename="tasks.db")

    @huey.task()
    def add_numbers(a: int, b: int) -> int:
        return a + b

    result = add_numbers(2, 3)
    assert (tmp_path / "tasks.db").exists()
    assert isinstance(huey.storage, SqliteStorage)
    reservation = huey.reserve()
    assert reservation is not None
    huey.process(reservation)
    assert result() == 5
    assert huey.storage.in_flight_size() == 0
    huey.storage.close()


def test_seed_comparison_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dev_huey = SqliteHuey("dev-app", filename="dev.db")
    dev_huey.storage.enqueue(b"x")
    assert (tmp_path / "dev.db").exists()
    dev_huey.storage.close()


SEED_TUNED = {
    "filename": "/var/data/huey.db",
    "cache_mb": 64,
    "fsync": True,
    "timeout": 120,
    "strict_fifo": True,
}


def test_seed_tuned_example_is_accepted_lazily() -> None:
    """``/var/data/huey.db`` as written: building the queue and its storage touches nothing on disk."""
    existed = os.path.exists("/var/data")
    huey = SqliteHuey("my-app", **SEED_TUNED)
    storage = huey.storage
    assert isinstance(storage, SqliteStorage)
    assert (storage.filename, storage.cache_mb, storage.fsync, storage.timeout, storage.strict_fifo) == (
        "/var/data/huey.db",
        64,
        True,
        120,
        True,
    )
    assert os.path.exists("/var/data") is existed
    if not existed:  # the first operation says what is wrong and what to do, and creates nothing
        with pytest.raises(
            ConfigurationError, match=r"filename='/var/data/huey.db'.*'/var/data' does not exist"
        ):
            storage.queue_size()
        assert not os.path.exists("/var/data")


def test_seed_tuned_example_runs_under_a_temporary_root(tmp_path: Path) -> None:
    """The same parameters with ``/var/data`` re-rooted under a temporary folder (created, as an admin would)."""
    folder = tmp_path / "var" / "data"
    folder.mkdir(parents=True)
    huey = SqliteHuey("my-app", **{**SEED_TUNED, "filename": str(folder / "huey.db")})

    @huey.task(priority=10)
    def high_priority_task() -> str:
        return "High priority"

    @huey.task()
    def normal_task() -> str:
        return "Normal priority"

    normal = normal_task()
    high = high_priority_task()
    for _ in range(2):
        reservation = huey.reserve()
        assert reservation is not None
        huey.process(reservation)
    assert (high(), normal()) == ("High priority", "Normal priority")
    storage = huey.storage
    assert isinstance(storage, SqliteStorage)
    assert pragma(storage, "synchronous") == 2
    assert pragma(storage, "cache_size") == -64 * 1024
    assert pragma(storage, "busy_timeout") == 120_000
    storage.close()
