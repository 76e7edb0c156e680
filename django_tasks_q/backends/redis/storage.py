"""The Redis storages: the whole storage contract, with reliable (at-least-once) delivery, on a Redis server.

The class is built from the parts of this package: :mod:`.delivery` (reserve, ack, leases, dead letters),
:mod:`.data` (key/value data and results), :mod:`.keyspace` (every key's name), :mod:`.scripts` (the Lua
scripts), :mod:`.connection` (the redis-py client) and :mod:`.transport` (how commands reach the server).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis

from django_tasks_q.backends.base import (
    BaseStorage,
    EmptyDataType,
    Feature,
    check_bytes,
    normalize_priority,
    schedule_time,
)
from django_tasks_q.backends.errors import ConfigurationError
from django_tasks_q.backends.options import constructor_options, refuse_unknown_options
from django_tasks_q.backends.redis import wire
from django_tasks_q.backends.redis.connection import client_parameters, durability_warnings, make_client
from django_tasks_q.backends.redis.data import KeyValueData
from django_tasks_q.backends.redis.delivery import CHUNK, ReliableDelivery
from django_tasks_q.backends.redis.keyspace import QueueKeys
from django_tasks_q.backends.redis.transport import transport_for

__all__ = [
    "PriorityRedisExpireStorage",
    "PriorityRedisStorage",
    "RedisExpireStorage",
    "RedisStorage",
]

_T = TypeVar("_T")

_BULK = 1000  # messages written by one script call of enqueue_many


class RedisStorage(ReliableDelivery, KeyValueData, BaseStorage):
    """Storage on a Redis server (or Cluster / Sentinel via ``client=``); FIFO, priorities ignored.

    Parameters (huey's names and defaults; all but ``name`` are keyword-only):

    ``host``, ``port``, ``db``, ``password``
        Where to connect (``localhost``, ``6379``, ``0``, none).
    ``connection_pool``
        A :class:`redis.ConnectionPool` to use as it is (its own settings apply; the storage never closes it).
        Conflicts with ``url``, ``client`` and explicit connection parameters.
    ``url``
        ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or ``unix://...``; overrides ``host``,
        ``port``, ``db`` and ``password``, which are then an error (as in huey), as is a ``connection_pool``.
        Validated at once (:class:`ConfigurationError` when it is not a Redis URL).
    ``client_name``, ``health_check_interval``
        Passed to every connection (``CLIENT SETNAME``; seconds between ``PING`` checks of idle connections).
    ``client``
        A redis-py client to use as it is (``redis.Redis``, ``redis.cluster.RedisCluster``, a Sentinel
        ``master_for`` client). Conflicts with every connection parameter.
    ``prefix``
        First part of every key (default ``tq``); lets several applications share a database.
    ``block_timeout``
        Seconds an empty ``reserve()`` / ``dequeue()`` waits for a message (default 1.0; 0: never waits).
        huey's ``blocking=False`` is the same as ``block_timeout=0`` and ``read_timeout`` is an alias.
    ``notify_result``, ``notify_result_ttl``
        huey's switch for waking ``wait_result`` callers by a push rather than by polling, and how long its
        notification list lived. Accepted (and checked) so huey configurations work unchanged; they change
        nothing here, as ``wait_result`` is always woken by a push (and leaves no list behind when nobody waits).
    other keywords
        Passed to :class:`redis.Redis` (``socket_timeout`` (default here 5 s), ``socket_connect_timeout`` (2 s),
        ``retry`` (default :func:`default_retry`), ``ssl``, ``username``, ``max_connections`` ...); unknown
        ones are a :class:`ConfigurationError` at once.

    Thread-safe and fork-safe (redis-py's pool reconnects in a child process).
    """

    blocking = True
    priority = False
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.PEEK_ON_RESERVE, Feature.REAP_BY_PROGRESS})

    expire_time: float | None = None
    """Seconds results live when written without a ttl (``None``: until read or flushed)."""

    def __init__(
        self,
        name: str = "huey",
        *,
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        password: str | None = None,
        connection_pool: redis.ConnectionPool | None = None,
        url: str | None = None,
        client_name: str | None = None,
        health_check_interval: int = 0,
        client: Any = None,
        prefix: str = "tq",
        block_timeout: float = 1.0,
        blocking: bool | None = None,
        read_timeout: float | None = None,
        notify_result: bool = False,
        notify_result_ttl: float = 86400,
        **connection_params: Any,
    ) -> None:
        super().__init__(name)
        if not isinstance(notify_result, bool):
            raise ConfigurationError(f"Redis storage {name!r}: notify_result must be a bool, not {notify_result!r}")
        if (
            isinstance(notify_result_ttl, bool)
            or not isinstance(notify_result_ttl, int | float)
            or not math.isfinite(notify_result_ttl)
            or notify_result_ttl <= 0
        ):
            raise ConfigurationError(
                f"Redis storage {name!r}: notify_result_ttl must be a positive number of seconds, "
                f"not {notify_result_ttl!r}"
            )
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"Redis storage: the queue name must be a non-empty str, not {name!r}")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"Redis storage {name!r}: prefix must be a non-empty str without braces, not {prefix!r}"
            )
        if read_timeout is not None:
            block_timeout = read_timeout
        if blocking is False:
            block_timeout = 0.0
        if isinstance(block_timeout, bool) or not isinstance(block_timeout, int | float) or block_timeout < 0:
            raise ConfigurationError(
                f"Redis storage {name!r}: block_timeout must be >= 0, not {block_timeout!r}"
            )
        self.block_timeout = float(block_timeout)
        self.prefix = prefix

        client, self._owns_client = make_client(
            name,
            host=host,
            port=port,
            db=db,
            password=password,
            connection_pool=connection_pool,
            url=url,
            client_name=client_name,
            health_check_interval=health_check_interval,
            client=client,
            connection_params=connection_params,
        )
        self._keys = QueueKeys(prefix, name)
        self._transport = transport_for(client, f"Redis storage {name!r}")

    @classmethod
    def check_options(cls, options: Mapping[str, Any], *, where: str) -> list[ConfigurationError]:
        """The base check, accepting as well every keyword :class:`redis.Redis` takes (handed on to the client)."""
        accepted = (constructor_options(cls, root=BaseStorage) or frozenset()) | client_parameters()
        return list(refuse_unknown_options(cls, options, accepted, where=f"{where}['OPTIONS']"))

    @property
    def key_base(self) -> str:
        """The beginning shared by every key of this queue: ``<prefix>:{<name>}:``."""
        return self._keys.base

    @property
    def client(self) -> Any:
        """The redis-py client in use (built from the parameters, or the one given)."""
        return self._transport.client

    @property
    def conn(self) -> Any:
        """huey's name for :attr:`client`: the redis-py client in use."""
        return self._transport.client

    def close(self) -> None:
        """Disconnect the connection pool if this storage created it (a given pool or client is left alone)."""
        if self._owns_client:
            self._transport.close()

    def startup_warnings(self) -> list[str]:
        """The server's durability problems: no append-only file, or keys evicted under memory pressure.

        Reads ``CONFIG GET appendonly maxmemory maxmemory-policy``. A server that refuses ``CONFIG`` (managed
        services often rename it) or cannot be reached yields one sentence saying the settings were not checked.
        """
        return durability_warnings(f"Redis storage {self.name!r}", self._transport.server_config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} prefix={self.prefix!r}>"

    # ------------------------------------------------------------------ plumbing

    def _scores(self, priority: int | None) -> tuple[str, str]:
        """``(p, s)``: the priority and the ready-set score as stored (``""`` for 0)."""
        prio = normalize_priority(priority)
        if not prio:
            return "", ""
        return str(prio), (str(-prio) if self.priority else "")

    def _take(self, attempt: Callable[[], _T | None], wait_then_attempt: Callable[[float], _T | None]) -> _T | None:
        """Run ``attempt`` (a dequeue or reserve script); while it finds nothing, block until woken.

        ``wait_then_attempt(seconds)`` waits on the notify list for up to ``seconds`` (never more than the
        transport's ``wait_cap``; an enqueue ends the wait at once), then makes the next attempt.
        """
        found = attempt()
        if found is not None or self.block_timeout <= 0:
            return found
        end = time.monotonic() + self.block_timeout
        cap = self._transport.wait_cap
        while True:
            remaining = end - time.monotonic()
            if remaining < 0.001:
                return None
            found = wait_then_attempt(min(remaining, cap))
            if found is not None:
                return found

    # ------------------------------------------------------------------ the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Add ``data`` to the ready queue (one script, one round trip) and wake one blocked consumer."""
        check_bytes(data, "data")
        prio, score = self._scores(priority)
        k = self._keys
        self._transport.script("enqueue", (k.seq, k.ready, k.notify), (k.base, data, prio, score))

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Add messages in order: one script per 1,000, all sent in one round trip (``MULTI``/``EXEC`` where the
        server allows it)."""
        args: list[Any] = []
        for data, priority in items:
            check_bytes(data, "data")
            args.extend((data, *self._scores(priority)))
        if not args:
            return
        k = self._keys
        keys = (k.seq, k.ready, k.notify)
        step = 3 * _BULK
        if len(args) <= step:
            self._transport.script("enqueue_many", keys, (k.base, *args))
            return
        chunks = [(k.base, *args[start : start + step]) for start in range(0, len(args), step)]
        self._transport.scripts_in_one_round_trip("enqueue_many", keys, chunks)

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message (at most once), waiting up to ``block_timeout``."""
        k = self._keys
        keys, args = (k.ready, k.notify), (k.base,)
        data = self._take(
            lambda: self._transport.script("dequeue", keys, args),
            lambda seconds: self._transport.wait_then_script(k.notify, seconds, "dequeue", keys, args),
        )
        return None if data is None else bytes(data)

    def queue_size(self) -> int:
        """How many messages are ready."""
        return int(self._transport.command("zcard", "ZCARD", self._keys.ready))

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Up to ``limit`` ready messages in delivery order, without removing them."""
        return self._list_bodies(self._keys.ready, limit)

    def _list_bodies(self, key: str, limit: int | None) -> list[bytes]:
        stop = wire.stop_index(limit)
        if stop is None:
            return []
        return [bytes(item) for item in self._transport.script("list_bodies", (key,), (self._keys.base, stop))]

    def _flush_set(self, key: str, members: str = "m:") -> None:
        """Empty the zset ``key`` and delete what its members name (message hashes, or values for ``"kv:"``)."""
        while self._transport.script("flush_chunk", (key,), (self._keys.base, CHUNK, members)) >= CHUNK:
            pass

    def flush_queue(self) -> None:
        """Remove every ready message (in-flight reservations, the schedule and data stay)."""
        self._flush_set(self._keys.ready)

    # ------------------------------------------------------------------ the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Add ``data`` to the schedule, due at ``timestamp``; ``priority`` is kept for ``enqueue_due``."""
        check_bytes(data, "data")
        when = repr(schedule_time(timestamp))
        prio, score = self._scores(priority)
        k = self._keys
        self._transport.script("add_to_schedule", (k.seq, k.schedule), (k.base, data, when, prio, score))

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Remove and return every item due at ``timestamp`` or earlier, earliest first."""
        when = repr(schedule_time(timestamp))
        items: list[bytes] = []
        while True:
            examined, *found = self._transport.script(
                "read_schedule_chunk", (self._keys.schedule,), (self._keys.base, when, CHUNK)
            )
            items.extend(bytes(item) for item in found)
            if examined < CHUNK:
                return items

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Up to ``limit`` scheduled items, earliest first, without removing them."""
        return self._list_bodies(self._keys.schedule, limit)

    def schedule_size(self) -> int:
        """How many items are in the schedule, due or not."""
        return int(self._transport.command("zcard", "ZCARD", self._keys.schedule))

    def flush_schedule(self) -> None:
        """Remove every scheduled item."""
        self._flush_set(self._keys.schedule)

    def enqueue_due(self, timestamp: float) -> int:
        """Move every item due at ``timestamp`` or earlier to the queue (with its priority); return how many."""
        when = repr(schedule_time(timestamp))
        k = self._keys
        keys = (k.seq, k.schedule, k.ready, k.notify)
        moved = 0
        while True:
            examined, count = self._transport.script("enqueue_due_chunk", keys, (k.base, when, CHUNK))
            moved += int(count)
            if examined < CHUNK:
                return moved


def _check_expire_time(name: str, expire_time: object) -> float:
    if isinstance(expire_time, bool) or not isinstance(expire_time, int | float) or not expire_time > 0:
        raise ConfigurationError(
            f"Redis storage {name!r}: expire_time must be a positive number of seconds, not {expire_time!r}"
        )
    return float(expire_time)


class RedisExpireStorage(RedisStorage):
    """:class:`RedisStorage` whose results expire ``expire_time`` seconds (default 86400) after being written.

    Only results expire this way; the queue, the schedule, locks, revocations and counters are unaffected. A
    ttl given by the caller (the hub's ``result_ttl``) takes precedence. Reading a value does not remove it
    (``pop_data`` reads like ``peek_data``), as in huey: results stay readable until they expire.
    """

    def __init__(self, name: str = "huey", *, expire_time: float = 86400, **kwargs: Any) -> None:
        self.expire_time = _check_expire_time(name, expire_time)
        super().__init__(name, **kwargs)

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Return the value under ``key`` *without* removing it, or ``EmptyData``: on this storage values leave by
        expiring, so a result can be read again (by another handle, or after ``Result.reset()``) until its
        ``expire_time`` is up, as with huey's ``RedisExpireStorage``. ``delete_data`` removes a value."""
        return self.peek_data(key)


class PriorityRedisStorage(RedisStorage):
    """:class:`RedisStorage` with priorities: higher first, first-in first-out within one priority."""

    priority = True


class PriorityRedisExpireStorage(RedisExpireStorage, PriorityRedisStorage):
    """Priorities (as :class:`PriorityRedisStorage`) and expiring results (as :class:`RedisExpireStorage`)."""

