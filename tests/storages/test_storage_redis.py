"""The Redis storages against the real redis-server on 127.0.0.1:6379: the storage contract, and what is
particular to Redis (key layout, round trips, blocking without polling, expiring results, bad input, lazy
connections, connection errors).

Every test uses the dedicated test database (the ``redis_url`` fixture) *and* a key prefix of its own, and
deletes its keys afterwards, so runs on a shared server do not see each other.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from django_tasks_q.backends.base import BaseStorage, EmptyData
from django_tasks_q.backends.redis import (
    PriorityRedisExpireStorage,
    PriorityRedisStorage,
    RedisExpireStorage,
    RedisStorage,
)
from django_tasks_q.exceptions import ConfigurationError, StorageError
from django_tasks_q.hub.queue import TaskQueue
from django_tasks_q.result import Result
from tests.support.storage_contract import StorageContract

pytestmark = pytest.mark.redis

ALL_CLASSES = [RedisStorage, RedisExpireStorage, PriorityRedisStorage, PriorityRedisExpireStorage]


def unique_prefix() -> str:
    return f"tqtest-{uuid.uuid4().hex[:12]}"


def keys_with_prefix(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return sorted(client.scan_iter(match=prefix + ":*", count=1000))
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + ":*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    value = unique_prefix()
    yield value
    delete_prefix(redis_url, value)


@pytest.fixture
def make(redis_url: str, prefix: str) -> Iterator[Callable[..., RedisStorage]]:
    """Build storages on the test database under the test's prefix; they are closed afterwards."""
    made: list[RedisStorage] = []

    def factory(cls: type[RedisStorage] = RedisStorage, name: str = "q", **kwargs: Any) -> RedisStorage:
        kwargs.setdefault("url", redis_url)
        kwargs.setdefault("prefix", prefix)
        kwargs.setdefault("block_timeout", 0.05)
        storage = cls(name, **kwargs)
        made.append(storage)
        return storage

    yield factory
    for storage in made:
        storage.close()


# ====================================================================== the contract, on all four classes


class _RedisContract(StorageContract):
    storage_class: type[RedisStorage] = RedisStorage
    is_blocking = True
    max_block = 1.0
    supports_named_isolation = True

    @pytest.fixture
    def storage(self, redis_url: str) -> Iterator[RedisStorage]:
        prefix = unique_prefix()
        storage = self.storage_class("contract", url=redis_url, prefix=prefix, block_timeout=0.05)
        yield storage
        storage.flush_all()
        leftovers = keys_with_prefix(redis_url, prefix)
        storage.close()
        delete_prefix(redis_url, prefix)
        assert leftovers == [], "flush_all() left keys behind"

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        assert isinstance(storage, RedisStorage)
        return self.storage_class(name, client=storage.client, prefix=storage.prefix, block_timeout=0.05)

    unreadable_kinds = ("priority_text", "claims_text", "claims_too_large", "ready_score_text")

    def corrupt_record(self, storage: BaseStorage, data: bytes, kind: str, in_flight: bool) -> None:
        assert isinstance(storage, RedisStorage)
        if kind == "ready_score_text" and not in_flight:
            pytest.skip("the ready score of a message hash is only read when an expired reservation goes back")
        field, value = {
            "priority_text": ("p", "high"),
            "claims_text": ("c", "many"),
            "claims_too_large": ("c", str(2**63 - 1)),
            "ready_score_text": ("s", "soon"),
        }[kind]
        client = storage.client
        (message_key,) = [
            key for key in client.scan_iter(match=storage._keys.message("*"), count=1000) if client.hget(key, "d") == data
        ]
        client.hset(message_key, field, value)


class TestRedisStorageContract(_RedisContract):
    __test__ = True
    storage_class = RedisStorage
    supports_priority = False


class TestRedisExpireStorageContract(_RedisContract):
    __test__ = True
    storage_class = RedisExpireStorage
    supports_priority = False
    destructive_reads = False


class TestPriorityRedisStorageContract(_RedisContract):
    __test__ = True
    storage_class = PriorityRedisStorage


class TestPriorityRedisExpireStorageContract(_RedisContract):
    __test__ = True
    storage_class = PriorityRedisExpireStorage
    destructive_reads = False


# ====================================================================== classes, flags, parameters


class TestClasses:
    def test_flags(self) -> None:
        for cls in ALL_CLASSES:
            assert cls.blocking is True
            assert cls.features == {
                "reliable", "dead_letters", "counters", "key_listing", "peek_on_reserve", "reap_by_progress"
            }
        assert RedisStorage.priority is False
        assert RedisExpireStorage.priority is False
        assert PriorityRedisStorage.priority is True
        assert PriorityRedisExpireStorage.priority is True
        assert issubclass(PriorityRedisExpireStorage, RedisExpireStorage)
        assert issubclass(PriorityRedisExpireStorage, PriorityRedisStorage)

    def test_seed_defaults(self) -> None:
        storage = RedisStorage()
        kwargs = storage.client.connection_pool.connection_kwargs
        assert storage.name == "huey"
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
        assert kwargs["password"] is None
        assert kwargs["client_name"] is None
        assert kwargs["health_check_interval"] == 0
        assert storage.expire_time is None
        assert RedisExpireStorage().expire_time == 86400
        assert PriorityRedisExpireStorage().expire_time == 86400
        assert storage.block_timeout == 1.0
        assert storage.prefix == "tq"

    def test_parameters_reach_the_connections(self) -> None:
        storage = RedisStorage(
            "x", host="127.0.0.1", port=6380, db=3, password="pw", client_name="me", health_check_interval=7
        )
        kwargs = storage.client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
            "127.0.0.1",
            6380,
            3,
            "pw",
        )
        assert (kwargs["client_name"], kwargs["health_check_interval"]) == ("me", 7)

    def test_url_with_other_connection_parameters_is_refused(self) -> None:
        for given in ({"host": "localhost"}, {"port": 6379}, {"db": 0}, {"password": "no"}):
            with pytest.raises(ConfigurationError, match=f"give either url or {next(iter(given))}, not both"):
                RedisStorage("x", url="redis://127.0.0.1:6390/4", **given)
        # None means "not given", as in huey.
        storage = RedisStorage("x", host=None, port=None, db=None, url="redis://:pw@127.0.0.1:6390/4")
        kwargs = storage.client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("127.0.0.1", 6390, 4, "pw")
        assert storage.conn is storage.client

    def test_huey_result_notification_options_are_accepted_and_checked(self) -> None:
        RedisStorage("x", notify_result=True, notify_result_ttl=30).close()
        for bad in ({"notify_result": "yes"}, {"notify_result_ttl": 0}, {"notify_result_ttl": float("inf")}):
            with pytest.raises(ConfigurationError, match="notify_result"):
                RedisStorage("x", **bad)

    def test_extra_connection_parameters_are_passed_on(self) -> None:
        storage = RedisStorage("x", socket_timeout=3, username="bob", max_connections=7)
        pool = storage.client.connection_pool
        assert pool.connection_kwargs["socket_timeout"] == 3
        assert pool.connection_kwargs["username"] == "bob"
        assert pool.max_connections == 7

    def test_huey_blocking_options(self) -> None:
        assert RedisStorage("x", blocking=False).block_timeout == 0
        assert RedisStorage("x", read_timeout=0.5).block_timeout == 0.5
        assert RedisStorage("x", blocking=True).block_timeout == 1.0

    def test_expire_time(self) -> None:
        assert RedisExpireStorage("x", expire_time=60).expire_time == 60
        assert PriorityRedisExpireStorage("x", expire_time=0.5).expire_time == 0.5

    def test_check_options_accepts_the_storage_and_client_keywords(self) -> None:
        seed = {
            "host",
            "port",
            "db",
            "password",
            "connection_pool",
            "url",
            "client_name",
            "health_check_interval",
        }
        accepted = seed | {"client", "prefix", "block_timeout", "socket_timeout", "ssl", "username"}
        for cls in ALL_CLASSES:
            assert cls.check_options(dict.fromkeys(accepted), where="TASKS_Q['q']") == []
            refused = {"name", "self", "decode_responses"}
            if not issubclass(cls, RedisExpireStorage):
                refused.add("expire_time")
            [problem] = cls.check_options(dict.fromkeys(accepted | refused | {"expire_time"}), where="TASKS_Q['q']")
            assert problem.check_id == "django_tasks_q.E005"
            assert problem.unknown == sorted(refused)
            assert str(problem) == f"TASKS_Q['q']['OPTIONS']: {cls.__name__} does not accept {sorted(refused)}"

    def test_repr(self) -> None:
        assert (
            repr(PriorityRedisStorage("jobs", prefix="app"))
            == "<PriorityRedisStorage name='jobs' prefix='app'>"
        )


# ====================================================================== bad input: clear errors at once


class TestBadInput:
    @pytest.mark.parametrize(
        "url",
        [
            "http://localhost:6379/0",
            "localhost:6379",
            "redis://localhost:notaport/0",
            "redis://localhost/x",
            42,
        ],
    )
    def test_invalid_url(self, url: Any) -> None:
        with pytest.raises(ConfigurationError, match=r"url|URL"):
            RedisStorage("x", url=url)

    def test_url_and_pool_conflict(self) -> None:
        pool = redis.ConnectionPool()
        with pytest.raises(ConfigurationError, match="url or connection_pool"):
            RedisStorage("x", url="redis://localhost/0", connection_pool=pool)

    @pytest.mark.parametrize(
        "extra",
        [
            {"host": "other"},
            {"port": 1},
            {"db": 2},
            {"password": "pw"},
            {"client_name": "n"},
            {"socket_timeout": 1},
        ],
    )
    def test_pool_and_connection_parameters_conflict(self, extra: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError, match="connection_pool carries its own"):
            RedisStorage("x", connection_pool=redis.ConnectionPool(), **extra)

    @pytest.mark.parametrize(
        "extra",
        [{"url": "redis://localhost/0"}, {"connection_pool": redis.ConnectionPool()}, {"host": "other"}],
    )
    def test_client_conflicts(self, extra: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError, match="client="):
            RedisStorage("x", client=redis.Redis(), **extra)

    def test_not_a_client_or_pool(self) -> None:
        with pytest.raises(ConfigurationError, match="redis-py client"):
            RedisStorage("x", client=object())
        with pytest.raises(ConfigurationError, match=r"redis\.ConnectionPool"):
            RedisStorage("x", connection_pool=object())

    def test_unknown_parameter(self) -> None:
        with pytest.raises(ConfigurationError, match=r"unknown connection parameter.*colour"):
            RedisStorage("x", colour="blue")
        with pytest.raises(ConfigurationError, match="unknown connection parameter"):
            RedisStorage("x", url="redis://localhost/0", colour="blue")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"port": "6379"},
            {"port": -1},
            {"db": -1},
            {"host": ""},
            {"block_timeout": -1},
            {"prefix": ""},
            {"prefix": "a{b"},
        ],
    )
    def test_bad_parameters(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            RedisStorage("x", **kwargs)

    @pytest.mark.parametrize("name", ["", None, 5])
    def test_bad_name(self, name: Any) -> None:
        with pytest.raises(ConfigurationError, match="name"):
            RedisStorage(name)

    @pytest.mark.parametrize("expire_time", [0, -5, None, "60", True])
    def test_bad_expire_time(self, expire_time: Any) -> None:
        with pytest.raises(ConfigurationError, match="expire_time"):
            RedisExpireStorage("x", expire_time=expire_time)

    @pytest.mark.parametrize("bad", ["text", bytearray(b"x"), memoryview(b"x"), None, 1])
    def test_non_bytes_payloads_are_refused_before_any_write(self, make: Any, bad: Any) -> None:
        storage = make()
        with pytest.raises(TypeError, match="bytes"):
            storage.enqueue(bad)
        with pytest.raises(TypeError, match="bytes"):
            storage.add_to_schedule(bad, time.time())
        with pytest.raises(TypeError, match="bytes"):
            storage.put_data("k", bad)
        with pytest.raises(TypeError, match="bytes"):
            storage.put_if_empty("k", bad)
        with pytest.raises(TypeError, match="bytes"):
            storage.add_dead_letter(bad, "test")
        assert storage.queue_size() == storage.schedule_size() == storage.dead_letter_count() == 0
        assert not storage.has_data_for_key("k")

    def test_other_bad_arguments(self, make: Any) -> None:
        storage = make(PriorityRedisStorage)
        for bad_priority in (float("nan"), "1", True):
            with pytest.raises(TypeError):
                storage.enqueue(b"m", bad_priority)
        for bad_ttl in (0, -1, float("inf"), float("nan"), "1"):
            with pytest.raises(ValueError):
                storage.put_data("k", b"v", ttl=bad_ttl)
        with pytest.raises(TypeError):
            storage.put_data(b"\xff", b"v")
        with pytest.raises(TypeError):
            storage.add_to_schedule(b"m", "tomorrow")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            storage.add_to_schedule(b"m", float("nan"))
        for bad_lease in (0, -1, "30"):
            with pytest.raises(ValueError):
                storage.reserve(bad_lease)
        with pytest.raises(TypeError):
            storage.incr("c", 1.5)  # type: ignore[arg-type]
        assert storage.queue_size() == storage.schedule_size() == 0
        assert not storage.has_data_for_key("k")


# ====================================================================== lazy connections and errors


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestConnections:
    def test_construction_never_touches_the_network(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import socket

        calls: list[Any] = []

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            raise AssertionError("the network was touched")

        monkeypatch.setattr(socket, "getaddrinfo", forbidden)
        monkeypatch.setattr(socket, "create_connection", forbidden)
        monkeypatch.setattr(socket.socket, "connect", forbidden)
        for cls in ALL_CLASSES:
            storage = cls("my-app", host="redis.example.com", port=6379, password="secret123", db=1)
            assert storage.client.connection_pool.connection_kwargs["host"] == "redis.example.com"
            storage.close()
            cls("my-app", url="redis://user:pass@redis.example.com:6379/0").close()
        assert calls == []

    def test_unreachable_server_raises_storage_error_quickly(self) -> None:
        port = _closed_port()
        storage = PriorityRedisStorage("down", host="127.0.0.1", port=port)
        operations: list[Callable[[], Any]] = [
            lambda: storage.enqueue(b"m"),
            lambda: storage.reserve(30),
            lambda: storage.dequeue(),
            storage.queue_size,
            lambda: storage.put_data("k", b"v", is_result=True),
            lambda: storage.peek_data("k"),
            lambda: storage.wait_result("k", 1),
            storage.flush_all,
            storage.result_items,
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(StorageError, match="'down'") as info:
                operation()
            assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
            assert time.monotonic() - started < 3.0
        storage.close()

    def test_lost_connections_are_reopened(self, make: Any, redis_url: str) -> None:
        storage = make(client_name=f"tq-reconnect-{uuid.uuid4().hex[:8]}")
        storage.enqueue(b"before")
        admin = redis.Redis.from_url(redis_url)
        try:
            killed = 0
            for entry in admin.client_list():
                if entry.get("name") == storage.client.connection_pool.connection_kwargs["client_name"]:
                    admin.client_kill_filter(_id=entry["id"])
                    killed += 1
        finally:
            admin.close()
        assert killed >= 1
        # redis-py notices the dead connection and reconnects (its retry), or the next call does
        for _ in range(3):
            try:
                storage.enqueue(b"after")
                break
            except StorageError:
                continue
        assert storage.enqueued_items()[-1] == b"after"

    def test_given_pool_and_client_are_not_closed(self, redis_url: str, prefix: str) -> None:
        pool = redis.ConnectionPool.from_url(redis_url)
        storage = RedisStorage("q", connection_pool=pool, prefix=prefix)
        storage.enqueue(b"m")
        storage.close()
        storage.close()
        again = RedisStorage("q", connection_pool=pool, prefix=prefix)
        assert again.dequeue() == b"m"
        client = redis.Redis.from_url(redis_url)
        shared = RedisStorage("q", client=client, prefix=prefix)
        shared.close()
        assert client.ping() is True
        client.close()
        pool.disconnect()

    def test_close_disconnects_an_own_pool(self, make: Any) -> None:
        storage = make()
        storage.queue_size()
        pool = storage.client.connection_pool
        assert pool._created_connections >= 1
        storage.close()
        storage.close()
        assert all(conn._sock is None for conn in pool._available_connections)


# ====================================================================== key layout


class TestKeyLayout:
    def test_every_key_of_a_queue_shares_one_hash_slot(self, make: Any, redis_url: str, prefix: str) -> None:
        storage = make(PriorityRedisExpireStorage, name="layout")
        storage.enqueue(b"a", 2)
        storage.add_to_schedule(b"b", time.time() + 60, 1)
        held = storage.reserve(30)
        storage.enqueue(b"c")
        storage.put_data("result:1", b"r", is_result=True)
        storage.put_data("lock", b"l")
        storage.incr("counter", ttl=60)
        storage.add_dead_letter(b"d", "test")
        assert held is not None
        keys = [key.decode() for key in keys_with_prefix(redis_url, prefix)]
        assert {
            f"{prefix}:{{layout}}:{suffix}"
            for suffix in ("seq", "ready", "notify", "schedule", "inflight", "dead", "results")
        } <= set(keys)
        assert f"{prefix}:{{layout}}:kv:result:1" in keys
        assert f"{prefix}:{{layout}}:kv:lock" in keys
        assert f"{prefix}:{{layout}}:ctr:counter" in keys
        assert f"{prefix}:{{layout}}:m:{held.message_id}" in keys
        assert len({key_slot(key.encode()) for key in keys}) == 1
        assert key_slot(keys[0].encode()) == key_slot(b"{layout}")

    def test_names_with_braces_and_glob_characters_stay_apart(self, make: Any) -> None:
        names = ["a", "a}:kv", "a{b}", "a*", "a?", "[a]", "a\\", "%7D", "}"]
        storages = [make(name=name) for name in names]
        for i, storage in enumerate(storages):
            storage.enqueue(f"m{i}".encode())
            storage.put_data("k", f"v{i}".encode())
        slots = {key_slot(s.key_base.encode()) for s in storages}
        assert len(slots) > 1
        storages[0].flush_all()
        for i, storage in enumerate(storages[1:], start=1):
            assert storage.enqueued_items() == [f"m{i}".encode()], names[i]
            assert storage.peek_data("k") == f"v{i}".encode()
        for i, storage in enumerate(storages):
            storage.flush_all()
            assert storage.queue_size() == 0
            for other in storages[i + 1 :]:
                assert other.queue_size() == 1

    def test_prefixes_keep_applications_apart(self, make: Any, prefix: str) -> None:
        one = make(name="same")
        two = make(name="same", prefix=prefix + "-two")
        one.enqueue(b"one")
        assert two.queue_size() == 0
        two.flush_all()
        assert one.queue_size() == 1
        two.flush_all()


# ====================================================================== round trips


@contextmanager
def count_commands(storage: RedisStorage) -> Iterator[list[str]]:
    """Record the name of every command the storage sends (one write of commands = one round trip)."""
    client = storage.client
    transport = storage._transport
    original = client.execute_command
    original_send = getattr(transport, "send", None)  # a held-connection transport writes past the client
    sent: list[str] = []

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **options)

    def counting_send(what: str, *commands: Any) -> Any:
        sent.extend(str(command[0]) for command in commands)
        return original_send(what, *commands)

    client.execute_command = counting
    if original_send is not None:
        transport.send = counting_send
    try:
        yield sent
    finally:
        del client.execute_command
        if original_send is not None:
            del transport.send


class TestRoundTrips:
    def test_hot_path_operations_are_one_round_trip_each(self, make: Any) -> None:
        storage = make(PriorityRedisExpireStorage)
        storage.enqueue(b"warm-up")  # scripts get loaded once per server (EVALSHA falls back to SCRIPT LOAD)
        warm = storage.reserve(30)
        storage.ack(warm, ("warm", b"r", None))
        storage.renew(warm, 30)
        storage.release(warm)
        storage.put_data("warm", b"x")
        storage.flush_all()

        with count_commands(storage) as sent:
            storage.enqueue(b"m", 3)
        assert sent == ["EVALSHA"]
        with count_commands(storage) as sent:
            held = storage.reserve(30)
        assert sent == ["EVALSHA"] and held is not None
        with count_commands(storage) as sent:
            assert storage.renew(held, 30)
        assert sent == ["EVALSHA"]
        with count_commands(storage) as sent:
            assert storage.ack(held, (f"result:{held.message_id}", b"value", None))
        assert sent == ["EVALSHA"]
        storage.enqueue(b"n")
        with count_commands(storage) as sent:
            assert storage.dequeue() == b"n"
            assert storage.peek_data(f"result:{held.message_id}") == b"value"
            storage.put_data("lock", b"l")
            assert storage.put_if_empty("lock2", b"l")
            storage.incr("c")
        assert sent == ["EVALSHA", "GET", "EVALSHA", "EVALSHA", "EVALSHA"]

    def test_idle_reserve_blocks_instead_of_polling(self, make: Any) -> None:
        storage = make(block_timeout=1.0)
        with count_commands(storage) as sent:
            started = time.monotonic()
            assert storage.reserve(30) is None
            waited = time.monotonic() - started
        assert 0.9 <= waited < 1.5
        assert sent.count("EVALSHA") <= 2
        assert len(sent) <= 4, sent  # a reserve script and a BLPOP; polling would be hundreds


# ====================================================================== blocking


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        box["value"] = fn()
        box["returned"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


class TestBlocking:
    def test_an_idle_consumer_wakes_within_milliseconds(self, make: Any) -> None:
        producer = make(block_timeout=5.0)
        consumer = make(block_timeout=5.0)
        delays = []
        for i in range(5):
            thread, box = _in_thread(lambda: consumer.reserve(30))
            time.sleep(0.15)  # the consumer is blocked in BLPOP by now
            assert thread.is_alive()
            enqueued_at = time.monotonic()
            producer.enqueue(f"wake-{i}".encode())
            thread.join(timeout=5)
            assert box["value"].data == f"wake-{i}".encode()
            delays.append(box["returned"] - enqueued_at)
        assert statistics.median(delays) < 0.05, delays  # typically ~1 ms

    def test_blocking_dequeue_wakes_on_enqueue(self, make: Any) -> None:
        storage = make(block_timeout=5.0)
        thread, box = _in_thread(storage.dequeue)
        time.sleep(0.15)
        enqueued_at = time.monotonic()
        storage.enqueue(b"wake")
        thread.join(timeout=5)
        assert box["value"] == b"wake"
        assert box["returned"] - enqueued_at < 0.1

    @pytest.mark.parametrize("method", ["enqueue_due", "release", "requeue_expired", "requeue_dead_letter"])
    def test_every_way_into_the_queue_wakes_a_waiter(self, make: Any, method: str) -> None:
        storage = make(block_timeout=5.0)
        now = time.time()
        if method == "enqueue_due":
            storage.add_to_schedule(b"m", now - 1)
            trigger: Callable[[], Any] = lambda: storage.enqueue_due(now)  # noqa: E731
        elif method in ("release", "requeue_expired"):
            storage.enqueue(b"m")
            held = storage.reserve(30)
            assert held is not None
            if method == "release":
                trigger = lambda: storage.release(held)  # noqa: E731
            else:
                trigger = lambda: storage.requeue_expired(now + 3600, 5)  # noqa: E731
        else:
            dead_id = storage.add_dead_letter(b"m", "test")
            trigger = lambda: storage.requeue_dead_letter(dead_id)  # noqa: E731
        waiter = make(block_timeout=5.0)
        thread, box = _in_thread(lambda: waiter.reserve(30))
        time.sleep(0.15)
        assert thread.is_alive()
        triggered_at = time.monotonic()
        trigger()
        thread.join(timeout=5)
        assert box["value"].data == b"m"
        assert box["returned"] - triggered_at < 0.1

    def test_many_waiters_all_get_woken(self, make: Any) -> None:
        storage = make(block_timeout=3.0)
        waiters = [_in_thread(lambda: make(block_timeout=3.0).reserve(30)) for _ in range(6)]
        time.sleep(0.2)
        started = time.monotonic()
        for i in range(6):
            storage.enqueue(msg := f"m{i}".encode())
            assert msg
        got = []
        for thread, box in waiters:
            thread.join(timeout=5)
            got.append(box["value"].data)
            assert box["returned"] - started < 0.5
        assert sorted(got) == sorted(f"m{i}".encode() for i in range(6))

    def test_stale_wake_up_tokens_do_not_cause_spinning(self, make: Any) -> None:
        storage = make(block_timeout=0.5)
        for i in range(300):  # tokens pile up while nobody waits (at most 256 are kept)
            storage.enqueue(f"m{i}".encode())
        while storage.dequeue() is not None:
            pass
        with count_commands(storage) as sent:
            assert storage.reserve(30) is None
        assert len(sent) <= 4, sent

    def test_wait_result_wakes_promptly_without_polling(self, make: Any) -> None:
        reader = make()
        writer = make()
        with count_commands(reader) as sent:
            thread, box = _in_thread(lambda: reader.wait_result("r", timeout=5.0))
            time.sleep(0.3)
            writer.enqueue(b"task")
            held = writer.reserve(30)
            writer.ack(held, ("r", b"done", None))
            written_at = time.monotonic()  # after the writer's round trips, which a loaded machine slows
            thread.join(timeout=5)
        assert box["value"] == b"done"
        assert box["returned"] - written_at < 0.1
        assert len(sent) <= 5, sent

    def test_several_result_waiters_wake_together(self, make: Any) -> None:
        writer = make()
        waiters = [_in_thread(lambda: make().wait_result("shared", timeout=5.0)) for _ in range(4)]
        time.sleep(0.3)
        written_at = time.monotonic()
        writer.put_data("shared", b"v", is_result=True)
        for thread, box in waiters:
            thread.join(timeout=5)
            assert box["value"] == b"v"
            assert box["returned"] - written_at < 0.2

    def test_zero_block_timeout_returns_at_once(self, make: Any) -> None:
        storage = make(block_timeout=0)
        with count_commands(storage) as sent:
            started = time.monotonic()
            assert storage.reserve(30) is None
            assert storage.dequeue() is None
        assert time.monotonic() - started < 0.1
        assert sent == ["EVALSHA", "EVALSHA"]


# ====================================================================== priorities and FIFO


class TestOrdering:
    def test_plain_storages_ignore_priority(self, make: Any) -> None:
        for cls in (RedisStorage, RedisExpireStorage):
            storage = make(cls, name=cls.__name__)
            for i, priority in enumerate([0, 10, -3, None, 99, 1]):
                storage.enqueue(f"m{i}".encode(), priority)
            held = storage.reserve(30)
            assert held.data == b"m0"
            assert storage.release(held)
            assert storage.enqueued_items() == [f"m{i}".encode() for i in range(6)]
            reserved = [storage.reserve(30) for _ in range(6)]
            assert [r.data for r in reserved] == [f"m{i}".encode() for i in range(6)]
            assert [r.priority for r in reserved] == [0, 10, -3, 0, 99, 1]  # remembered, not used

    def test_priority_storages_with_large_and_negative_priorities(self, make: Any) -> None:
        storage = make(PriorityRedisStorage)
        plan = [(b"min", -(2**40)), (b"zero", 0), (b"max", 2**40), (b"minus-one", -1), (b"max-2", 2**40)]
        for data, priority in plan:
            storage.enqueue(data, priority)
        reserved = [storage.reserve(30) for _ in plan]
        assert [r.data for r in reserved] == [b"max", b"max-2", b"zero", b"minus-one", b"min"]
        assert [r.priority for r in reserved] == [2**40, 2**40, 0, -1, -(2**40)]

    def test_fifo_and_priority_with_many_concurrent_producers(self, make: Any) -> None:
        storage = make(PriorityRedisStorage)
        producers, per_producer = 8, 150
        barrier = threading.Barrier(producers)

        def produce(index: int) -> None:
            peer = make(PriorityRedisStorage)
            barrier.wait(timeout=10)
            for seq in range(per_producer):
                peer.enqueue(f"{index}:{seq}:{seq % 4}".encode(), seq % 4)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert storage.queue_size() == producers * per_producer
        order = [tuple(map(int, data.split(b":"))) for data in storage.enqueued_items()]
        delivered = []
        while (held := storage.reserve(30)) is not None:
            delivered.append(tuple(map(int, held.data.split(b":"))))
            assert storage.ack(held)
        assert delivered == order
        priorities = [p for _, _, p in delivered]
        assert priorities == sorted(priorities, reverse=True)
        for producer in range(producers):  # FIFO within one priority, for each producer
            for priority in range(4):
                seqs = [s for i, s, p in delivered if i == producer and p == priority]
                assert seqs == sorted(seqs) and len(seqs) == per_producer // 4 + (priority < per_producer % 4)

    def test_plain_fifo_with_concurrent_producers(self, make: Any) -> None:
        storage = make(RedisStorage)

        def produce(index: int) -> None:
            peer = make(RedisStorage)
            for seq in range(100):
                peer.enqueue(f"{index}:{seq}".encode(), seq % 7)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        delivered = []
        while (data := storage.dequeue()) is not None:
            delivered.append(tuple(map(int, data.split(b":"))))
        assert len(delivered) == 600
        for producer in range(6):
            assert [s for i, s in delivered if i == producer] == list(range(100))


# ====================================================================== expiring results


class TestExpire:
    @pytest.mark.parametrize("cls", [RedisExpireStorage, PriorityRedisExpireStorage])
    def test_results_disappear_after_expire_time(self, make: Any, cls: type[RedisStorage]) -> None:
        storage = make(cls, expire_time=0.3)
        now = time.time()
        storage.put_data("result:put", b"r1", is_result=True)
        storage.enqueue(b"task")
        held = storage.reserve(30)
        assert storage.ack(held, ("result:ack", b"r2", None))
        storage.put_data("result:own-ttl", b"r3", is_result=True, ttl=30)
        storage.put_data("lock:held", b"lock")
        assert storage.put_if_empty("lock:nx", b"lock")
        storage.put_data("revoke:task", b"revoked")
        storage.incr("counter", 5)
        storage.enqueue(b"in-flight")
        in_flight = storage.reserve(30)
        storage.enqueue(b"queued", 2)
        storage.add_to_schedule(b"scheduled", now + 3600)
        storage.add_dead_letter(b"dead", "test")
        assert storage.task_result_count() == 3

        def expired() -> bool:
            return (
                storage.peek_data("result:put") is EmptyData and storage.peek_data("result:ack") is EmptyData
            )

        deadline = time.monotonic() + 5
        while not expired() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert expired()
        assert storage.task_results() == {"result:own-ttl": b"r3"}
        assert storage.task_result_count() == 1
        assert storage.result_store_size() == 4  # and the three values that are not results
        assert storage.peek_data("lock:held") == b"lock"
        assert storage.peek_data("lock:nx") == b"lock"
        assert storage.peek_data("revoke:task") == b"revoked"
        assert storage.incr("counter", 0) == 5
        assert storage.enqueued_items() == [b"queued"]
        assert storage.scheduled_items() == [b"scheduled"]
        assert [r.message_id for r in storage.in_flight_items()] == [in_flight.message_id]
        assert storage.dead_letter_count() == 1

    def test_results_stay_on_the_plain_storages(self, make: Any, redis_url: str) -> None:
        for cls in (RedisStorage, PriorityRedisStorage):
            storage = make(cls, name=cls.__name__)
            storage.put_data("result", b"r", is_result=True)
            ttl = redis.Redis.from_url(redis_url).pttl(storage.key_base + "kv:result")
            assert ttl == -1

    def test_expire_time_is_applied_in_redis(self, make: Any, redis_url: str) -> None:
        storage = make(RedisExpireStorage)
        storage.put_data("result", b"r", is_result=True)
        storage.put_data("lock", b"l")
        client = redis.Redis.from_url(redis_url)
        try:
            assert 86_000_000 < client.pttl(storage.key_base + "kv:result") <= 86_400_000
            assert client.pttl(storage.key_base + "kv:lock") == -1
        finally:
            client.close()

    def test_a_result_stays_readable_until_it_expires_and_revoke_once_still_skips_once(
        self, redis_url: str, prefix: str
    ) -> None:
        hub = TaskQueue("expiring-reads", storage_class=RedisExpireStorage, url=redis_url, prefix=prefix)

        @hub.task(name="tests.expiring.add_one")
        def add_one(n: int) -> int:
            return n + 1

        try:
            first = add_one(1)
            assert hub.execute(hub.dequeue()) == 2
            assert [first.get(), Result(hub, first.task).get(), hub.result(first.id)] == [2, 2, 2]
            first.reset()
            assert first.get() == 2
            skipped = add_one(5)
            skipped.revoke(revoke_once=True)
            assert hub.execute(hub.dequeue()) is None  # the one skip removes the revocation
            assert skipped.is_revoked() is False
            hub.enqueue(skipped.task)
            assert hub.execute(hub.dequeue()) == 6
        finally:
            hub.flush()
            hub.storage.close()

    def test_the_results_index_does_not_grow_with_expired_results(self, make: Any, redis_url: str) -> None:
        storage = make(RedisExpireStorage, expire_time=0.05)
        for i in range(200):
            storage.put_data(f"r{i}", b"x", is_result=True)
        time.sleep(0.1)
        storage.put_data("last", b"x", is_result=True)  # each result write trims expired index entries
        client = redis.Redis.from_url(redis_url)
        try:
            assert client.zcard(storage.key_base + "results") == 1
        finally:
            client.close()


# ====================================================================== odds and ends


class TestSpecifics:
    def test_result_listings_page_through_many_values(self, make: Any) -> None:
        storage = make()
        expected = {f"result:{i}": f"value-{i}".encode() for i in range(1200)}
        for key, value in expected.items():
            storage.put_data(key, value, is_result=True)
        storage.put_data("lock", b"l")
        assert storage.task_results() == expected
        assert storage.task_result_count() == 1200
        assert storage.result_items() == {**expected, "lock": b"l"}
        assert storage.result_store_size() == 1201
        storage.flush_task_results()
        assert storage.task_results() == {}
        assert storage.result_items() == {"lock": b"l"}
        storage.flush_results()
        assert storage.result_items() == {}

    def test_bulk_operations_work_in_chunks(self, make: Any) -> None:
        storage = make(PriorityRedisStorage)
        now = time.time()
        for i in range(1100):
            storage.add_to_schedule(f"s{i}".encode(), now - 2000 + i, i % 3)
        assert storage.enqueue_due(now) == 1100
        assert storage.queue_size() == 1100
        held = [storage.reserve(30) for _ in range(1100)]
        assert len({r.message_id for r in held}) == 1100
        reclaimed = storage.requeue_expired(now + 3600, 5)
        assert len(reclaimed) == 1100
        assert storage.queue_size() == 1100
        for i in range(1050):
            storage.add_dead_letter(f"d{i}".encode(), "test")
        assert storage.purge_dead_letters() == 1050
        storage.flush_queue()
        assert storage.queue_size() == 0
        for _ in range(1001):
            storage.add_to_schedule(b"x", now - 1)
        assert len(storage.read_schedule(now)) == 1001
        for _ in range(600):
            storage.add_to_schedule(b"y", now + 100)
        storage.flush_schedule()
        assert storage.schedule_size() == 0

    def test_reservation_clock_is_the_callers(self, make: Any) -> None:
        storage = make()
        storage.enqueue(b"m")
        before = time.time()
        held = storage.reserve(12.5)
        assert before <= held.reserved_at <= time.time()
        assert held.deadline == held.reserved_at + 12.5
        (listed,) = storage.in_flight_items()
        assert (listed.deadline, listed.reserved_at) == (
            held.deadline,
            held.reserved_at,
        )  # exact, not rounded

    def test_message_ids_are_stable_and_unique(self, make: Any) -> None:
        storage = make()
        for i in range(3):
            storage.enqueue(f"m{i}".encode())
        first = storage.reserve(30)
        storage.requeue_expired(time.time() + 3600, None)
        again = storage.reserve(30)
        assert again.message_id == first.message_id
        others = [storage.reserve(30) for _ in range(2)]
        assert len({first.message_id, *(r.message_id for r in others)}) == 3

    def test_stale_tokens_after_flush_all_are_refused(self, make: Any) -> None:
        storage = make()
        storage.enqueue(b"old")
        stale = storage.reserve(30)
        storage.flush_all()
        storage.enqueue(b"new")
        fresh = storage.reserve(30)
        assert fresh.message_id == stale.message_id  # ids restart after flush_all; tokens do not
        assert storage.ack(stale) is False
        assert storage.renew(stale, 30) is False
        assert storage.ack(fresh) is True
