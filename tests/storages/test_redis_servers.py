"""The Redis storages against private redis-server processes started here on free loopback ports: a server
with a password (and an ACL user), a server that is killed and restarted, and a three-node Redis Cluster.
Also the seed's Redis examples, run as written (hub classes, real server).

Servers are started in a temporary folder and stopped afterwards. Without a ``redis-server`` binary these
tests are skipped (failed when ``CI`` is set), like the other Redis tests.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from django_tasks_q import PriorityRedisExpireHuey, PriorityRedisHuey, RedisExpireHuey, RedisHuey
from django_tasks_q.backends.base import BaseStorage
from django_tasks_q.backends.redis import (
    PriorityRedisExpireStorage,
    PriorityRedisStorage,
    RedisExpireStorage,
    RedisStorage,
)
from django_tasks_q.exceptions import StorageError
from tests.support.redis_servers import RedisServer, free_ports
from tests.support.redis_servers import unavailable as _unavailable
from tests.support.storage_contract import StorageContract

pytestmark = pytest.mark.redis

PASSWORD = "secret123"


# ====================================================================== a server with a password


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server requiring ``secret123`` (default user) with an ACL user ``user``/``pass``."""
    (port,) = free_ports(1)
    server = RedisServer(port, tmp_path_factory.mktemp("redis-auth"), "--requirepass", PASSWORD).start(
        PASSWORD
    )
    admin = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
    admin.acl_setuser(
        "user", enabled=True, passwords=["+pass"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    admin.close()
    yield server
    server.stop()


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    return calls


def _drain(huey: Any) -> list[Any]:
    """Run every queued task through the hub (reserve → process); return the reservations' data order."""
    order = []
    while huey.pending_count():
        reservation = huey.reserve()
        assert reservation is not None
        order.append(reservation.data)
        huey.process(reservation)
    return order


def _cleanup(huey: Any) -> None:
    huey.flush()
    huey.storage.close()


class TestAuthentication:
    def test_seed_authentication_example_is_lazy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = _forbid_network(monkeypatch)
        # Redis with authentication (the seed's example, as written)
        huey = RedisHuey("my-app", host="redis.example.com", port=6379, password="secret123", db=1)
        storage = huey.storage  # the storage is built, nothing connects
        kwargs = storage.client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["password"], kwargs["db"]) == (
            "redis.example.com",
            6379,
            "secret123",
            1,
        )
        # and the "comparison" / "guidelines" examples, which name hosts we cannot reach either
        RedisHuey("prod-app", host="redis-cluster.example.com", port=6379, db=0).storage.close()
        PriorityRedisHuey("app", host="redis-cluster").storage.close()
        storage.close()
        assert calls == []

    def test_password_authentication_for_real(self, auth_server: RedisServer) -> None:
        name = f"my-app-{uuid.uuid4().hex[:8]}"
        huey = RedisHuey(name, host="127.0.0.1", port=auth_server.port, password=PASSWORD, db=1)

        @huey.task()
        def add(a: int, b: int) -> int:
            return a + b

        try:
            result = add(2, 3)
            assert _drain(huey)
            assert result.get() == 5
        finally:
            _cleanup(huey)

    def test_url_with_user_and_password(self, auth_server: RedisServer) -> None:
        # the seed's URL example, pointed at this server (the shared one on 6379 has no user "user")
        huey = RedisHuey(
            f"my-app-{uuid.uuid4().hex[:8]}", url=f"redis://user:pass@localhost:{auth_server.port}/0"
        )

        @huey.task()
        def echo(value: str) -> str:
            return value

        try:
            result = echo("hello")
            _drain(huey)
            assert result.get() == "hello"
        finally:
            _cleanup(huey)

    @pytest.mark.parametrize(
        "params",
        [{"password": "wrong"}, {}, {"url": "redis://user:wrong@127.0.0.1:{port}/0"}],
        ids=["wrong-password", "no-password", "wrong-user-password"],
    )
    def test_bad_credentials_are_a_storage_error(
        self, auth_server: RedisServer, params: dict[str, str]
    ) -> None:
        if "url" in params:
            params = {"url": params["url"].format(port=auth_server.port)}
        else:
            params = {"host": "127.0.0.1", "port": auth_server.port, **params}  # type: ignore[dict-item]
        storage = RedisStorage("auth", **params)  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            storage.enqueue(b"m")
        assert isinstance(info.value.__cause__, redis.exceptions.RedisError)
        assert "auth" in str(info.value).lower() or "NOAUTH" in str(info.value)
        assert time.monotonic() - started < 3
        storage.close()

    def test_seed_url_against_the_shared_server_fails_cleanly(self) -> None:
        # 'redis://user:pass@localhost:6379/0' as written: the shared test server has no such user
        huey = RedisHuey(f"my-app-{uuid.uuid4().hex[:8]}", url="redis://user:pass@localhost:6379/0")
        with pytest.raises(StorageError) as info:
            huey.storage.queue_size()
        assert isinstance(info.value.__cause__, redis.exceptions.AuthenticationError)
        huey.storage.close()


# ====================================================================== the seed's other examples


@pytest.fixture
def app_name(redis_url: str) -> Iterator[str]:
    """A queue name for the seed examples (``my-app`` plus a suffix, so parallel runs never collide)."""
    yield f"my-app-{uuid.uuid4().hex[:8]}"


class TestSeedExamples:
    def test_basic(self, app_name: str) -> None:
        # Basic Redis connection
        huey = RedisHuey(app_name, host="localhost", port=6379, db=0)

        @huey.task()
        def add(a: int, b: int) -> int:
            return a + b

        try:
            result = add(1, 2)
            assert huey.pending_count() == 1
            _drain(huey)
            assert result.get() == 3
        finally:
            _cleanup(huey)

    def test_connection_pool(self, app_name: str) -> None:
        # Redis with connection pool
        pool = redis.ConnectionPool(host="localhost", port=6379, db=0, max_connections=20)
        huey = RedisHuey(app_name, connection_pool=pool)

        @huey.task()
        def mul(a: int, b: int) -> int:
            return a * b

        try:
            results = [mul(i, i) for i in range(5)]
            _drain(huey)
            assert [r.get() for r in results] == [0, 1, 4, 9, 16]
            assert huey.storage.client.connection_pool is pool
        finally:
            _cleanup(huey)
            pool.disconnect()

    def test_priority_tasks(self, app_name: str) -> None:
        # Redis with priority support
        huey = PriorityRedisHuey(app_name, host="localhost")
        ran: list[str] = []

        @huey.task()
        def normal_task() -> str:
            ran.append("normal")
            return "Normal priority"

        @huey.task(priority=10)
        def high_priority_task() -> str:
            ran.append("high")
            return "High priority"

        try:
            # High priority tasks execute first
            normal_result = normal_task()
            high_result = high_priority_task()
            _drain(huey)
            assert ran == ["high", "normal"]
            assert high_result.get() == "High priority"
            assert normal_result.get() == "Normal priority"
        finally:
            _cleanup(huey)

    def test_expire_hub(self, app_name: str) -> None:
        huey = RedisExpireHuey(app_name, host="localhost", expire_time=0.3)

        @huey.task()
        def answer() -> int:
            return 42

        try:
            result = answer()
            _drain(huey)
            assert huey.result_count() == 1
            assert type(huey.storage) is RedisExpireStorage
            deadline = time.monotonic() + 5
            while huey.result_count() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert huey.result_count() == 0
            assert result.get() is None
        finally:
            _cleanup(huey)

    def test_settings_aliases_and_urls(self, redis_url: str) -> None:
        from django_tasks_q.conf import resolve_backend

        cls, options = resolve_backend(
            "q", {"URL": redis_url + "?priority=1&expire_time=60&block_timeout=0.5"}
        )
        assert cls.__name__ == "PriorityRedisExpireStorage"
        storage = cls("q", **options)
        assert (storage.expire_time, storage.block_timeout) == (60, 0.5)
        storage.close()
        for alias, name in [
            ("redis", "RedisStorage"),
            ("redis-expire", "RedisExpireStorage"),
            ("priority-redis", "PriorityRedisStorage"),
            ("priority-redis-expire", "PriorityRedisExpireStorage"),
        ]:
            cls, options = resolve_backend("q", {"BACKEND": alias, "OPTIONS": {"url": redis_url}})
            assert cls.__name__ == name
            cls("q", **options).close()
        assert PriorityRedisExpireHuey("x").get_storage().__class__ is PriorityRedisExpireStorage


# ====================================================================== a server that dies and comes back


class TestRestart:
    def test_storage_error_while_down_and_recovery_after_restart(self, tmp_path: Path) -> None:
        (port,) = free_ports(1)
        server = RedisServer(port, tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
        storage = PriorityRedisStorage("restart", host="127.0.0.1", port=port, block_timeout=5.0)
        try:
            for i in range(10):
                storage.enqueue(f"before-{i}".encode(), i % 2)
            held = storage.reserve(30)
            box: dict[str, Any] = {}

            def blocked_reserve() -> None:
                storage.flush_queue()
                try:
                    box["value"] = storage.reserve(30)
                except StorageError as exc:
                    box["error"] = exc

            # a consumer blocked in BLPOP when the server dies gets a StorageError, not a hang
            backup = storage.enqueued_items()
            thread = threading.Thread(target=blocked_reserve, daemon=True)
            thread.start()
            time.sleep(0.2)
            server.kill()
            thread.join(timeout=10)
            assert isinstance(box.get("error"), StorageError)
            assert isinstance(box["error"].__cause__, redis.exceptions.ConnectionError)
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                storage.enqueue(b"while-down")
            assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
            assert time.monotonic() - started < 3

            server.start()  # same port, same folder: the append-only file brings the data back
            assert storage.in_flight_items()[0].message_id == held.message_id
            assert storage.ack(held) is True
            for data in backup:
                storage.enqueue(data)
            storage.enqueue(b"after")
            assert storage.queue_size() == 10
        finally:
            storage.close()
            server.stop()


# ====================================================================== Redis Sentinel


class TestSentinel:
    def test_through_a_sentinel(self, tmp_path: Path) -> None:
        from redis.sentinel import Sentinel, SentinelConnectionPool

        master_port, sentinel_port = free_ports(2)
        master = RedisServer(master_port, tmp_path / "master").start()
        sentinel_server = RedisServer(
            sentinel_port,
            tmp_path / "sentinel",
            "--sentinel",
            config=f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n",
        )
        try:
            sentinel_server.start()
            sentinel = Sentinel([("127.0.0.1", sentinel_port)], socket_timeout=2)
            assert sentinel.discover_master("mymaster") == ("127.0.0.1", master_port)
            client = sentinel.master_for("mymaster", socket_timeout=5)
            storage = PriorityRedisStorage("sentinel", client=client, prefix="tqtest", block_timeout=0.05)
            pooled = PriorityRedisStorage(
                "sentinel",
                connection_pool=SentinelConnectionPool("mymaster", sentinel),
                prefix="tqtest",
                block_timeout=0.05,
            )
            storage.enqueue(b"low")
            pooled.enqueue(b"high", 3)
            held = pooled.reserve(30)
            assert held.data == b"high"
            assert storage.ack(held, ("r", b"v", None))
            assert pooled.result_items() == {"r": b"v"}
            assert storage.dequeue() == b"low"
            storage.flush_all()
            pooled.close()
            client.close()
        finally:
            sentinel_server.stop()
            master.stop()


# ====================================================================== Redis Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three cluster nodes on free loopback ports (plus free bus ports), slots spread by redis-cli."""
    if shutil.which("redis-cli") is None:
        _unavailable("redis-cli is not installed")
    ports = free_ports(6)
    folder = tmp_path_factory.mktemp("redis-cluster")
    nodes = [
        RedisServer(
            port,
            folder / str(port),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus_port),
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--appendonly",
            "no",
        )
        for port, bus_port in zip(ports[:3], ports[3:], strict=True)
    ]
    try:
        for node in nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        for node in nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port)
            while client.cluster("info").get("cluster_state") != "ok":
                assert time.monotonic() < deadline, "the cluster did not become ready"
                time.sleep(0.05)
            client.close()
        client = RedisCluster(host="127.0.0.1", port=nodes[0].port)
        yield client
        client.close()
    finally:
        for node in nodes:
            node.stop()


class TestRedisClusterContract(StorageContract):
    """The whole contract on a three-node Redis Cluster, through redis-py's ``RedisCluster`` client."""

    __test__ = True
    is_blocking = True
    max_block = 1.0
    supports_named_isolation = True
    destructive_reads = False  # an expiring storage: reads leave the value until it expires

    @pytest.fixture
    def storage(self, cluster: RedisCluster) -> Iterator[PriorityRedisExpireStorage]:
        storage = PriorityRedisExpireStorage(
            f"contract-{uuid.uuid4().hex[:8]}", client=cluster, prefix="tqtest", block_timeout=0.05
        )
        yield storage
        storage.flush_all()
        assert list(cluster.scan_iter(match=storage.key_base.replace("[", "\\[") + "*")) == []

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        assert isinstance(storage, RedisStorage)
        return PriorityRedisExpireStorage(
            name, client=storage.client, prefix=storage.prefix, block_timeout=0.05
        )


class TestCluster:
    def test_queues_spread_over_the_nodes_and_each_works(self, cluster: RedisCluster) -> None:
        storages = [PriorityRedisStorage(f"spread-{i}", client=cluster, prefix="tqtest") for i in range(12)]
        owners = {cluster.get_node_from_key(s.key_base).name for s in storages}
        assert len(owners) >= 2, "twelve queue names should not all hash to one node"
        try:
            for i, storage in enumerate(storages):
                storage.enqueue(b"low", 0)
                storage.enqueue(f"high-{i}".encode(), 5)
                storage.put_data("result", b"r", is_result=True)
                held = storage.reserve(30)
                assert held.data == f"high-{i}".encode()
                assert storage.ack(held, ("done", b"ok", None))
                assert storage.result_items() == {"result": b"r", "done": b"ok"}
                assert storage.dequeue() == b"low"
            for storage in storages:
                node = cluster.get_node_from_key(storage.key_base)
                keys = cluster.keys(target_nodes=node)
                mine = [key for key in keys if key.startswith(storage.key_base.encode())]
                assert mine and len({key_slot(key) for key in mine}) == 1
        finally:
            for storage in storages:
                storage.flush_all()

    def test_blocking_reserve_wakes_on_cluster(self, cluster: RedisCluster) -> None:
        storage = PriorityRedisStorage("cluster-wake", client=cluster, prefix="tqtest", block_timeout=5.0)
        box: dict[str, Any] = {}

        def consume() -> None:
            box["value"] = storage.reserve(30)
            box["returned"] = time.monotonic()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        time.sleep(0.2)
        enqueued_at = time.monotonic()
        storage.enqueue(b"wake")
        thread.join(timeout=5)
        try:
            assert box["value"].data == b"wake"
            assert box["returned"] - enqueued_at < 0.1
        finally:
            storage.flush_all()
