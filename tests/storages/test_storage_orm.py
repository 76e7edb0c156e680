"""OrmStorage: the storage contract on the test database, plus what only the ORM storage promises.

Runs on every database (``db_backends``): SQLite in the main run, PostgreSQL and MariaDB in the database runs of
``scripts/test``. The tests use real commits (``transaction=True``), because threads and other connections must
see what the storage writes.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connection, connections, reset_queries, transaction
from django.db.utils import load_backend
from django.test.utils import CaptureQueriesContext

from django_tasks_q import TaskQueue
from django_tasks_q.backends.base import BaseStorage, EmptyData
from django_tasks_q.backends.orm import OrmStorage, OrmTablesMissing
from django_tasks_q.backends.sql.dialects import dialect_for
from django_tasks_q.exceptions import ConfigurationError, StorageError
from django_tasks_q.orm_models import Counter, DeadLetterMessage, KeyValue, QueueMessage, ScheduledMessage
from tests.support import eventually
from tests.support.storage_contract import LONG_LEASE, StorageContract

pytestmark = [pytest.mark.db_backends, pytest.mark.django_db(transaction=True)]

VENDOR = connection.vendor


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Rollback(Exception):
    """Raised to leave a ``transaction.atomic()`` block by rolling it back."""


@contextmanager
def extra_alias(alias: str, **changes: Any) -> Iterator[str]:
    """A temporary database alias (this thread only): a copy of ``default`` (the test database) with ``changes``.

    The connection is registered directly, not through ``DATABASES``, which Django's test case would forbid.
    """
    settings_dict = {**connections["default"].settings_dict, **changes}
    connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    try:
        yield alias
    finally:
        conn = connections[alias]
        if conn.connection is not None:
            conn.connection.close()  # Django leaves in-memory SQLite connections open on close()
            conn.connection = None
        del connections[alias]


class TestOrmStorage(StorageContract):
    __test__ = True

    supports_named_isolation = True

    @pytest.fixture
    def storage(self) -> Iterator[OrmStorage]:
        storage = OrmStorage(unique_name("contract"), purge_interval=None)
        yield storage
        storage.flush_all()
        storage.close()

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        return OrmStorage(name, purge_interval=None)

    def close_thread_storage(self, storage: BaseStorage, peer: BaseStorage) -> None:
        connections.close_all()  # the worker thread's own connections

    # A column that keeps a value of any type is SQLite's alone; every database has a maximum for attempts.
    unreadable_kinds = ("attempts_at_maximum",) + (("priority_text",) if VENDOR == "sqlite" else ())

    def corrupt_record(self, storage: BaseStorage, data: bytes, kind: str, in_flight: bool) -> None:
        if kind == "attempts_at_maximum" and in_flight:
            pytest.skip("a reserved row at the maximum attempts is reaped like any other (to max_attempts)")
        state = "in_flight" if in_flight else "ready"
        (pk,) = [
            row.pk for row in QueueMessage.objects.filter(queue=storage.name, state=state) if bytes(row.data) == data
        ]
        column, value = {
            "attempts_at_maximum": ("attempts", 2**31 - 1),
            "priority_text": ("priority", "high"),
        }[kind]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {QueueMessage._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk]
            )


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def storage() -> Iterator[OrmStorage]:
    storage = OrmStorage(unique_name("orm"), purge_interval=None)
    yield storage
    storage.flush_all()


def rows(model: Any, storage: OrmStorage) -> list[Any]:
    return list(model.objects.filter(queue=storage.name).order_by("id"))


class TestConfiguration:
    def test_flags(self) -> None:
        assert (OrmStorage.blocking, OrmStorage.priority) == (False, True)
        assert OrmStorage.features == {
            "reliable", "dead_letters", "counters", "key_listing", "wait_for_messages", "peek_on_reserve",
            "reap_by_progress",
        }

    def test_defaults_and_repr(self) -> None:
        storage = OrmStorage()
        assert (storage.name, storage.using, storage.purge_interval) == ("huey", "default", 300.0)
        assert repr(storage) == "<OrmStorage name='huey' using='default'>"
        storage.close()
        storage.close()

    def test_orm_alias_and_url_build_this_storage(self) -> None:
        from django_tasks_q.backends.registry import load_storage_class
        from django_tasks_q.urls_config import parse_queue_url

        assert load_storage_class("orm", where="test") is OrmStorage
        assert parse_queue_url("orm://", where="test") == ("orm", {})
        assert parse_queue_url("orm://other", where="test") == ("orm", {"using": "other"})

    def test_unknown_alias_names_the_setting(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            OrmStorage("q", using="nope")
        message = str(info.value)
        assert "'nope'" in message and "DATABASES" in message and "using" in message

    @pytest.mark.parametrize("name", ["", "x" * 192, None])
    def test_bad_queue_names(self, name: Any) -> None:
        with pytest.raises(ConfigurationError):
            OrmStorage(name)

    def test_bad_purge_interval(self) -> None:
        with pytest.raises(ConfigurationError):
            OrmStorage("q", purge_interval=0)

    def test_bad_fsync(self) -> None:
        with pytest.raises(ConfigurationError, match="fsync must be True or False"):
            OrmStorage("q", fsync="yes")

    def test_autocommit_off_is_refused(self) -> None:
        with extra_alias("tasks_q_manual", AUTOCOMMIT=False), pytest.raises(ConfigurationError) as info:
            OrmStorage("q", using="tasks_q_manual")
        assert "AUTOCOMMIT" in str(info.value)

    def test_unknown_options_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="unknown option\\(s\\) some_option; it accepts fsync, purge_interval, using"):
            OrmStorage("q", some_option=1)

    def test_migrations_match_the_models(self) -> None:
        call_command("makemigrations", "django_tasks_q", "--check", "--dry-run", verbosity=0)


class TestTables:
    def test_rows_carry_state_lease_and_attempts(self, storage: OrmStorage) -> None:
        storage.enqueue(b"m", 7)
        (row,) = rows(QueueMessage, storage)
        assert (bytes(row.data), row.priority, row.state, row.token, row.attempts) == (
            b"m",
            7,
            "ready",
            "",
            0,
        )
        assert row.deadline is None and row.reserved_at is None
        held = storage.reserve(LONG_LEASE)
        assert held is not None and held.message_id == str(row.pk)
        row.refresh_from_db()
        assert (row.state, row.token, row.attempts) == ("in_flight", held.token, 1)
        assert row.deadline == pytest.approx(held.deadline) and row.reserved_at == pytest.approx(
            held.reserved_at
        )
        assert storage.release(held) is True
        row.refresh_from_db()
        assert (row.state, row.token, row.attempts, row.deadline) == ("ready", "", 0, None)

    def test_schedule_values_and_counters_have_their_tables(self, storage: OrmStorage) -> None:
        storage.add_to_schedule(b"s", 1234.5, 3)
        storage.put_data("k", b"v", is_result=True, ttl=60)
        storage.incr("hits", 2)
        (sched,) = rows(ScheduledMessage, storage)
        assert (bytes(sched.data), sched.eta, sched.priority) == (b"s", 1234.5, 3)
        (value,) = rows(KeyValue, storage)
        assert (value.key, bytes(value.value), value.is_result) == ("k", b"v", True)
        assert value.expires_at == pytest.approx(time.time() + 60, abs=5)
        (counter,) = rows(Counter, storage)
        assert (counter.key, counter.value) == ("hits", 2)

    def test_the_claim_reads_only_live_values_of_the_peeked_keys(self, storage: OrmStorage) -> None:
        storage.put_data("live", b"1")
        storage.put_data("expired", b"2", ttl=0.05)
        time.sleep(0.1)
        storage.enqueue(b"m")
        held = storage.reserve(LONG_LEASE, peek=("expired", "live", "expired", "missing"))
        assert held is not None and held.peeked == (EmptyData, b"1", EmptyData, EmptyData)

    def test_claim_statement_for_this_database(self, storage: OrmStorage) -> None:
        storage.enqueue(b"m")
        with CaptureQueriesContext(connection) as queries:
            assert storage.reserve(LONG_LEASE) is not None
        statements = " ".join(q["sql"] for q in queries.captured_queries).upper()
        if VENDOR == "postgresql":
            assert (
                "UPDATE" in statements
                and "FOR UPDATE SKIP LOCKED" in statements
                and "RETURNING" in statements
            )
        elif VENDOR == "mysql":
            assert "FOR UPDATE" in statements and "UPDATE" in statements
            if connection.features.has_select_for_update_skip_locked:
                assert "SKIP LOCKED" in statements
        else:
            assert "RETURNING" in statements and "FOR UPDATE" not in statements


class TestExactNames:
    """Queue names and keys compare exactly, whatever the database's collation (MariaDB: *_ci by default)."""

    @pytest.mark.parametrize("other", ["Mail", "mail ", "mäil", "MAIL"])
    def test_queue_names_differing_in_case_accents_or_spaces_are_separate(self, other: str) -> None:
        one, two = OrmStorage("mail"), OrmStorage(other)
        try:
            one.enqueue(b"mine")
            one.put_data("k", b"mine")
            assert two.queue_size() == 0
            assert two.peek_data("k") is EmptyData
            two.flush_all()
            assert one.queue_size() == 1
        finally:
            one.flush_all()
            two.flush_all()

    def test_keys_differing_in_case_accents_or_spaces_and_long_keys(self, storage: OrmStorage) -> None:
        keys = ["key", "KEY", "kéy", "key ", " key", "k" * 5000, "k" * 4999 + "K"]
        for i, key in enumerate(keys):
            storage.put_data(key, str(i).encode(), is_result=True)
            assert storage.incr("c:" + key, i + 1) == i + 1
        assert [storage.peek_data(key) for key in keys] == [str(i).encode() for i in range(len(keys))]
        assert storage.result_items() == {key: str(i).encode() for i, key in enumerate(keys)}
        assert [storage.incr("c:" + key, 0) for key in keys] == list(range(1, len(keys) + 1))


class TestBadInput:
    @pytest.mark.parametrize("bad", ["text", bytearray(b"x"), None, 1])
    def test_non_bytes_are_refused_and_nothing_is_written(self, storage: OrmStorage, bad: Any) -> None:
        for call in (
            lambda: storage.enqueue(bad),
            lambda: storage.add_to_schedule(bad, time.time()),
            lambda: storage.put_data("k", bad),
            lambda: storage.put_if_empty("k", bad),
            lambda: storage.add_dead_letter(bad, "test"),
        ):
            with pytest.raises(TypeError):
                call()
        assert (storage.queue_size(), storage.schedule_size(), storage.dead_letter_count()) == (0, 0, 0)
        assert not storage.has_data_for_key("k")

    @pytest.mark.parametrize("bad", [float("nan"), "1", True])
    def test_non_int_priorities_are_refused(self, storage: OrmStorage, bad: Any) -> None:
        with pytest.raises(TypeError):
            storage.enqueue(b"m", bad)
        assert storage.queue_size() == 0

    def test_priorities_beyond_the_column_are_refused(self, storage: OrmStorage) -> None:
        with pytest.raises(ValueError):
            storage.enqueue(b"m", 2**31)
        storage.enqueue(b"low", -(2**31))
        storage.enqueue(b"high", 2**31 - 1)
        assert storage.enqueued_items() == [b"high", b"low"]

    @pytest.mark.parametrize("ttl", [0, -1])
    def test_non_positive_ttl_is_refused(self, storage: OrmStorage, ttl: float) -> None:
        with pytest.raises(ValueError):
            storage.put_data("k", b"v", ttl=ttl)
        with pytest.raises(ValueError):
            storage.incr("c", ttl=ttl)
        assert not storage.has_data_for_key("k")

    def test_keys_other_than_str_or_utf8_bytes_are_refused(self, storage: OrmStorage) -> None:
        with pytest.raises(TypeError):
            storage.put_data(b"\xff", b"v")
        with pytest.raises(TypeError):
            storage.put_data(1, b"v")  # type: ignore[arg-type]

    def test_forged_ids_are_ignored(self, storage: OrmStorage) -> None:
        storage.add_dead_letter(b"d", "test")
        assert storage.requeue_dead_letter("abc") is False
        assert storage.requeue_dead_letter("-1") is False
        assert storage.purge_dead_letters(ids=["x", "9" * 40]) == 0
        assert storage.dead_letter_count() == 1

    def test_a_reservation_of_another_queue_is_refused(self, storage: OrmStorage) -> None:
        other = OrmStorage(unique_name("other"))
        try:
            storage.enqueue(b"m")
            held = storage.reserve(LONG_LEASE)
            assert held is not None
            assert other.ack(held) is False
            assert other.renew(held, LONG_LEASE) is False
            assert other.release(held) is False
            assert other.bury(held, "test") is False
            assert storage.ack(held) is True
        finally:
            other.flush_all()


class TestRetention:
    def test_expired_values_are_gone_on_read_and_their_rows_deleted(self, storage: OrmStorage) -> None:
        storage.put_data("short", b"x", is_result=True, ttl=0.2)
        storage.put_data("kept", b"y", is_result=True)
        assert eventually(lambda: storage.peek_data("short") is EmptyData)
        assert [row.key for row in rows(KeyValue, storage)] == ["kept"]

    def test_purge_expired_deletes_values_and_counters_nobody_reads(self, storage: OrmStorage) -> None:
        # A ttl long enough that nothing lapses while a loaded machine writes these rows; "later" is past it.
        for i in range(5):
            storage.put_data(f"r{i}", b"x", is_result=True, ttl=30)
            storage.incr(f"window{i}", ttl=30)
        storage.put_data("kept", b"y")
        storage.incr("kept-counter")
        assert storage.purge_expired() == 0
        assert storage.purge_expired(now=time.time() + 60) == 10
        assert [row.key for row in rows(KeyValue, storage)] == ["kept"]
        assert [row.key for row in rows(Counter, storage)] == ["kept-counter"]
        assert storage.purge_expired(now=time.time() + 60) == 0

    def test_purge_only_touches_its_own_queue(self, storage: OrmStorage) -> None:
        other = OrmStorage(unique_name("other"))
        try:
            other.put_data("k", b"v", ttl=0.05)
            assert storage.purge_expired(now=time.time() + 1) == 0
            assert KeyValue.objects.filter(queue=other.name).count() == 1
        finally:
            other.flush_all()

    def test_writes_sweep_expired_rows_every_purge_interval(self) -> None:
        storage = OrmStorage(unique_name("sweep"), purge_interval=0.2)
        try:
            for i in range(10):
                storage.put_data(f"lock{i}", b"x", ttl=0.05)
            assert eventually(lambda: storage.put_data("trigger", b"y") or len(rows(KeyValue, storage)) == 1)
            assert [row.key for row in rows(KeyValue, storage)] == ["trigger"]
        finally:
            storage.flush_all()

    def test_hub_result_ttl_is_honoured(self) -> None:
        hub = TaskQueue(unique_name("ttl"), storage_class=OrmStorage, result_ttl=0.3, purge_interval=None)

        @hub.task()
        def add(a: int, b: int) -> int:
            return a + b

        try:
            result = add(2, 3)
            reservation = hub.reserve()
            assert reservation is not None
            hub.process(reservation)
            assert hub.storage.in_flight_size() == 0
            assert result.get(preserve=True) == 5
            (row,) = rows(KeyValue, hub.storage)
            assert row.is_result and row.expires_at is not None
            assert eventually(lambda: not hub.result_exists(result.id))
            assert hub.storage.purge_expired() == 0
            assert rows(KeyValue, hub.storage) == []
        finally:
            hub.storage.flush_all()


class TestTransactions:
    """``enqueue`` (and every other method) takes part in the caller's transaction."""

    @pytest.fixture
    def hub(self) -> Iterator[TaskQueue]:
        hub = TaskQueue(unique_name("tx"), storage_class=OrmStorage)
        yield hub
        hub.storage.flush_all()

    def register(self, hub: TaskQueue) -> Any:
        @hub.task()
        def send_mail(to: str) -> str:
            return to

        return send_mail

    def test_rollback_enqueues_nothing(self, hub: TaskQueue) -> None:
        send_mail = self.register(hub)
        with pytest.raises(Rollback), transaction.atomic():
            send_mail("a@example.com")
            assert hub.pending_count() == 1  # visible inside the transaction
            raise Rollback
        assert hub.pending_count() == 0
        assert hub.storage.reserve(LONG_LEASE) is None

    def test_commit_makes_the_task_visible(self, hub: TaskQueue) -> None:
        send_mail = self.register(hub)
        seen_from_outside: list[int] = []

        def count_from_another_connection() -> None:
            try:
                seen_from_outside.append(OrmStorage(hub.name).queue_size())
            finally:
                connections.close_all()

        with transaction.atomic():
            result = send_mail("b@example.com")
            if VENDOR != "sqlite":  # SQLite's in-memory test database locks the table for other connections
                thread = threading.Thread(target=count_from_another_connection)
                thread.start()
                thread.join(10)
                assert seen_from_outside == [0]  # not committed yet
        (task,) = hub.pending()
        assert task.id == result.id and task.args == ("b@example.com",)
        reservation = hub.reserve()
        assert reservation is not None
        hub.process(reservation)
        assert result.get() == "b@example.com"

    def test_a_savepoint_rollback_removes_only_its_own_enqueue(self, hub: TaskQueue) -> None:
        send_mail = self.register(hub)
        with transaction.atomic():
            send_mail("kept")
            with pytest.raises(Rollback), transaction.atomic():
                send_mail("dropped")
                raise Rollback
        assert [task.args for task in hub.pending()] == [("kept",)]

    def test_every_step_of_a_worker_can_be_rolled_back(self, hub: TaskQueue) -> None:
        storage = hub.storage
        storage.enqueue(b"m")
        with pytest.raises(Rollback), transaction.atomic():
            held = storage.reserve(LONG_LEASE)
            assert held is not None
            assert storage.ack(held, ("r", b"v", None)) is True
            raise Rollback
        assert storage.enqueued_items() == [b"m"]
        assert storage.peek_data("r") is EmptyData

    def test_a_storage_error_leaves_the_callers_transaction_usable(
        self, hub: TaskQueue, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage = hub.storage
        real = storage._take_due

        def fail_after_delete(conn: Any, timestamp: float) -> Any:
            real(conn, timestamp)
            with conn.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table_tasks_q")  # a real error from the database

        with transaction.atomic():
            storage.enqueue(b"before")
            storage.add_to_schedule(b"due", time.time() - 1)
            monkeypatch.setattr(storage, "_take_due", fail_after_delete)
            with pytest.raises(StorageError):
                storage.enqueue_due(time.time())
            monkeypatch.undo()
            storage.enqueue(b"after")
        assert storage.enqueued_items() == [b"before", b"after"]
        assert storage.scheduled_items() == [b"due"]

    def test_using_another_alias_uses_that_connection(self) -> None:
        with extra_alias("tasks_q_other"):
            storage = OrmStorage(unique_name("using"), using="tasks_q_other")
            try:
                with pytest.raises(Rollback), transaction.atomic(using="tasks_q_other"):
                    storage.enqueue(b"rolled back")
                    raise Rollback
                with pytest.raises(Rollback), transaction.atomic():  # `default`: not the storage's connection
                    storage.enqueue(b"committed at once")
                    raise Rollback
                assert storage.enqueued_items() == [b"committed at once"]
                assert len(rows(QueueMessage, storage)) == 1  # read through `default`: the same database
            finally:
                storage.flush_all()


class TestFailures:
    """Bad set-up gives an error that says what to do; a failure half-way writes nothing."""

    @contextmanager
    def empty_database(self) -> Iterator[dict[str, Any]]:
        """Settings changes for an alias whose database exists but has no tables."""
        if VENDOR == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                yield {"NAME": str(Path(folder) / "empty.sqlite3")}
            return
        name = f"{connection.settings_dict['NAME']}_nomigrate"
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
            cursor.execute(f"CREATE DATABASE {quote(name)}")
        try:
            yield {"NAME": name}
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")

    def test_missing_tables_say_run_migrate(self) -> None:
        with self.empty_database() as changes, extra_alias("tasks_q_empty", **changes):
            storage = OrmStorage("q", using="tasks_q_empty")
            for call in (lambda: storage.enqueue(b"m"), storage.queue_size, lambda: storage.reserve(30)):
                with pytest.raises(OrmTablesMissing) as info:
                    call()
                message = str(info.value)
                assert "python manage.py migrate --database tasks_q_empty" in message
                assert "django_tasks_q_message" in message
                assert isinstance(info.value, StorageError) and isinstance(info.value, ConfigurationError)
                assert isinstance(info.value.__cause__, DatabaseError)

    def test_refused_connection_names_the_setting(self) -> None:
        if VENDOR == "sqlite":
            changes = {"NAME": os.path.join(tempfile.gettempdir(), "no-such-folder-tasks-q", "db.sqlite3")}
        else:
            changes = {"HOST": "127.0.0.1", "PORT": "1"}
        with extra_alias("tasks_q_down", **changes):
            storage = OrmStorage("q", using="tasks_q_down")
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                storage.enqueue(b"m")
            assert time.monotonic() - started < 10
            message = str(info.value)
            assert "cannot connect" in message and "DATABASES['tasks_q_down']" in message
            assert "running" in message
            assert not isinstance(info.value, OrmTablesMissing)
            assert isinstance(info.value.__cause__, DatabaseError)

    @pytest.mark.skipif(VENDOR == "sqlite", reason="SQLite has no server connection to lose")
    def test_a_lost_connection_fails_one_call_and_the_next_reconnects(self, storage: OrmStorage) -> None:
        storage.enqueue(b"m")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()" if VENDOR == "postgresql" else "SELECT CONNECTION_ID()")
            (backend,) = cursor.fetchone()
        with extra_alias("tasks_q_killer") as alias, connections[alias].cursor() as cursor:
            if VENDOR == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
            else:
                cursor.execute(f"KILL {int(backend)}")
        with pytest.raises(StorageError) as info:
            storage.queue_size()
        assert not isinstance(info.value, OrmTablesMissing)
        assert info.value.__cause__ is not None
        assert storage.queue_size() == 1  # a new connection
        held = storage.reserve(LONG_LEASE)
        assert held is not None and storage.ack(held) is True

    def fail(self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
        """Make ``storage.<method>`` run and then fail with a database error (a crash half-way)."""
        real = getattr(storage, method)

        def then_fail(*args: Any, **kwargs: Any) -> Any:
            real(*args, **kwargs)
            raise DatabaseError("injected failure")

        monkeypatch.setattr(storage, method, then_fail)

    def test_enqueue_due_is_all_or_nothing(
        self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage.add_to_schedule(b"due", time.time() - 1)
        self.fail(storage, monkeypatch, "_take_due")
        with pytest.raises(StorageError) as info:
            storage.enqueue_due(time.time())
        assert "injected failure" in str(info.value)
        monkeypatch.undo()
        assert storage.scheduled_items() == [b"due"]
        assert storage.queue_size() == 0

    def test_ack_with_result_is_all_or_nothing(
        self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage.enqueue(b"m")
        held = storage.reserve(LONG_LEASE)
        assert held is not None
        self.fail(storage, monkeypatch, "_upsert_value")
        with pytest.raises(StorageError):
            storage.ack(held, ("r", b"v", None))
        monkeypatch.undo()
        assert storage.peek_data("r") is EmptyData
        (still,) = storage.in_flight_items()
        assert still.token == held.token
        assert storage.ack(held, ("r", b"v", None)) is True

    @pytest.mark.parametrize("step", ["bury", "requeue_expired"])
    def test_dead_lettering_is_all_or_nothing(
        self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        storage.enqueue(b"m")
        held = storage.reserve(LONG_LEASE)
        assert held is not None
        self.fail(storage, monkeypatch, "_insert_dead")
        with pytest.raises(StorageError):
            if step == "bury":
                storage.bury(held, "bad_signature")
            else:
                storage.requeue_expired(time.time() + 3600, 1)
        monkeypatch.undo()
        assert storage.dead_letter_count() == 0
        (still,) = storage.in_flight_items()
        assert still.token == held.token

    def test_requeue_dead_letter_is_all_or_nothing(
        self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dead_id = storage.add_dead_letter(b"d", "test")
        self.fail(storage, monkeypatch, "_insert_message")
        with pytest.raises(StorageError):
            storage.requeue_dead_letter(dead_id)
        monkeypatch.undo()
        assert [d.id for d in storage.dead_letters()] == [dead_id]
        assert storage.queue_size() == 0

    @pytest.mark.skipif(VENDOR != "sqlite", reason="SQLite's busy timeout")
    def test_sqlite_busy_is_retried_then_reported(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "busy.sqlite3")
            with extra_alias("tasks_q_busy", NAME=path, OPTIONS={"timeout": 0.2}) as alias:
                with connections[alias].schema_editor() as editor:
                    for model in (QueueMessage, ScheduledMessage, DeadLetterMessage, KeyValue, Counter):
                        editor.create_model(model)
                storage = OrmStorage("q", using=alias)
                blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                try:
                    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
                    releaser = threading.Timer(0.3, blocker.execute, ["ROLLBACK"])
                    releaser.start()
                    storage.enqueue(b"waited")  # the first attempt times out after 0.2 s; a retry gets in
                    releaser.join()
                    assert storage.enqueued_items() == [b"waited"]
                    blocker.execute("BEGIN IMMEDIATE")
                    started = time.monotonic()
                    with pytest.raises(StorageError) as info:
                        storage.enqueue(b"refused")
                    assert 0.5 < time.monotonic() - started < 5
                    assert "locked" in str(info.value)
                    blocker.execute("ROLLBACK")
                    assert storage.enqueued_items() == [b"waited"]
                finally:
                    blocker.close()

    @pytest.mark.parametrize(
        ("vendor", "cause", "transient"),
        [
            ("postgresql", {"sqlstate": "40P01"}, True),  # deadlock_detected
            ("postgresql", {"sqlstate": "40001"}, True),  # serialization_failure
            ("postgresql", {"sqlstate": "42P01"}, False),  # undefined_table
            ("mysql", {"args": (1213, "Deadlock found")}, True),
            ("mysql", {"args": (1146, "Table doesn't exist")}, False),
            ("sqlite", {"sqlite_errorcode": 5}, True),  # SQLITE_BUSY
            ("sqlite", {"sqlite_errorcode": 6}, True),  # SQLITE_LOCKED
            ("sqlite", {"sqlite_errorcode": 1}, False),  # SQLITE_ERROR
        ],
    )
    def test_which_errors_are_retried(self, vendor: str, cause: dict[str, Any], transient: bool) -> None:
        storage = OrmStorage("q")
        storage._dialect = dialect_for(SimpleNamespace(vendor=vendor, features=None))
        cause = dict(cause)
        driver_error = Exception(*cause.pop("args", ()))
        for name, value in cause.items():
            setattr(driver_error, name, value)
        error = OperationalError("x")
        error.__cause__ = driver_error
        assert storage._is_transient(error) is transient

    def test_deadlocks_are_retried(self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[int] = []
        real = storage._insert_message

        def deadlock_once(*args: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise DatabaseError("deadlock detected")
            return real(*args)

        monkeypatch.setattr(storage, "_insert_message", deadlock_once)
        monkeypatch.setattr(storage, "_is_transient", lambda error: "deadlock" in str(error))
        storage.enqueue(b"m")
        assert len(calls) == 2
        assert storage.enqueued_items() == [b"m"]


@pytest.mark.skipif(VENDOR != "sqlite", reason="how the storage talks to SQLite")
class TestSqliteStatements:
    """On SQLite the storage runs its statements on the ``sqlite3`` connection under Django's, and opens its own
    transactions with ``BEGIN IMMEDIATE``: still logged where Django logs queries, still seen by execute wrappers,
    and never leaving the connection inside a transaction that Django does not know about."""

    def test_queries_are_logged_with_their_placeholders(self, storage: OrmStorage, settings: Any) -> None:
        settings.DEBUG = True
        storage.enqueue(b"m")
        reset_queries()
        held = storage.reserve(LONG_LEASE)
        assert held is not None
        assert storage.ack_and_reserve(held, ("r", b"v", None), LONG_LEASE) == (True, None)
        statements = [query["sql"] for query in connection.queries]
        assert any(sql.startswith("UPDATE") and "RETURNING" in sql for sql in statements)
        assert any(sql.startswith("DELETE") and "?" in sql and "%s" not in sql for sql in statements)
        assert any(sql.startswith("INSERT INTO") and "django_tasks_q_keyvalue" in sql for sql in statements)

    def test_an_execute_wrapper_sees_every_statement(self, storage: OrmStorage) -> None:
        seen: list[str] = []

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            seen.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            storage.enqueue(b"m")
            held = storage.reserve(LONG_LEASE)
            assert held is not None
            assert storage.ack(held, ("r", b"v", None)) is True
        assert storage.peek_data("r") == b"v"
        assert any(sql.startswith("INSERT INTO") and "django_tasks_q_message" in sql for sql in seen)
        assert any(sql.startswith("UPDATE") and "RETURNING" in sql for sql in seen)
        assert any(sql.startswith("DELETE") for sql in seen)
        assert any(sql.startswith("INSERT INTO") and "django_tasks_q_keyvalue" in sql for sql in seen)

    def test_a_failed_step_rolls_back_and_the_connection_goes_on(
        self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage.enqueue(b"first")
        held = storage.reserve(LONG_LEASE)
        assert held is not None
        storage.enqueue(b"second")
        real = storage._reserve

        def claim_then_fail(conn: Any, *args: Any) -> Any:
            real(conn, *args)
            raise DatabaseError("injected failure")

        monkeypatch.setattr(storage, "_reserve", claim_then_fail)
        with pytest.raises(StorageError):
            storage.ack_and_reserve(held, ("r", b"v", None), LONG_LEASE)
        monkeypatch.undo()
        assert not connection.connection.in_transaction and connection.get_autocommit()
        assert storage.enqueued_items() == [b"second"] and storage.peek_data("r") is EmptyData
        assert [item.token for item in storage.in_flight_items()] == [held.token]
        acked, following = storage.ack_and_reserve(held, ("r", b"v", None), LONG_LEASE)
        assert acked is True and following is not None and following.data == b"second"

    def test_a_commit_that_fails_is_rolled_back(self, storage: OrmStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        storage.enqueue(b"m")
        held = storage.reserve(LONG_LEASE)
        assert held is not None
        with connection.cursor() as cursor:  # a deferred foreign key fails only at COMMIT
            cursor.execute("CREATE TEMP TABLE tq_parent (id INTEGER PRIMARY KEY)")
            cursor.execute(
                "CREATE TEMP TABLE tq_child (parent INTEGER REFERENCES tq_parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        real = storage._upsert_value

        def write_a_dangling_row_too(conn: Any, *args: Any) -> Any:
            conn.connection.execute("INSERT INTO tq_child (parent) VALUES (42)")
            return real(conn, *args)

        try:
            monkeypatch.setattr(storage, "_upsert_value", write_a_dangling_row_too)
            with pytest.raises(StorageError) as info:
                storage.ack(held, ("r", b"v", None))
            assert "FOREIGN KEY" in str(info.value)
            monkeypatch.undo()
            assert not connection.connection.in_transaction and connection.get_autocommit()
            assert storage.peek_data("r") is EmptyData
            assert [item.token for item in storage.in_flight_items()] == [held.token]
            assert storage.ack(held, ("r", b"v", None)) is True
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE tq_child")
                cursor.execute("DROP TABLE tq_parent")

    def test_delivery_steps_commit_without_a_sync_and_give_the_setting_back(self) -> None:
        with (
            tempfile.TemporaryDirectory() as folder,
            extra_alias("tasks_q_sync", NAME=str(Path(folder) / "sync.sqlite3")) as alias,
        ):
            with connections[alias].schema_editor() as editor:
                for model in (QueueMessage, ScheduledMessage, DeadLetterMessage, KeyValue, Counter):
                    editor.create_model(model)
            for fsync, during_delivery in ((False, 1), (True, 2)):
                storage = OrmStorage(unique_name("sync"), using=alias, fsync=fsync)
                seen: list[tuple[str, int]] = []
                for step in ("_insert_message", "_reserve", "_ack", "_requeue_expired"):
                    setattr(storage, step, self.spy(step, getattr(storage, step), seen))
                storage.enqueue(b"m")
                held = storage.reserve(LONG_LEASE)
                assert held is not None and storage.ack(held) is True
                storage.requeue_expired(time.time(), None)
                assert seen == [
                    ("_insert_message", 2),  # an enqueue: the connection's own setting (FULL)
                    ("_reserve", during_delivery),
                    ("_ack", during_delivery),
                    ("_requeue_expired", during_delivery),
                ]
                raw = connections[alias].connection
                assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2
                assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    @staticmethod
    def spy(step: str, real: Any, seen: list[tuple[str, int]]) -> Any:
        """``real`` (a step of the storage), noting the connection's ``synchronous`` level when it runs."""

        def run(conn: Any, *args: Any) -> Any:
            seen.append((step, conn.connection.execute("PRAGMA synchronous").fetchone()[0]))
            return real(conn, *args)

        return run
