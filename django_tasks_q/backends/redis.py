"""Redis storages: the whole storage contract, with reliable (at-least-once) delivery, on a Redis server.

Four classes, as in huey, selected in settings by alias (``redis``, ``redis-expire``, ``priority-redis``,
``priority-redis-expire``) or used through the hub classes ``RedisHuey`` & co.:

=============================  =========  ===============================================================
class                          priority   results
=============================  =========  ===============================================================
``RedisStorage``               ignored    kept until read or flushed (or the ``ttl`` the hub gives)
``RedisExpireStorage``         ignored    expire ``expire_time`` seconds after they are written
``PriorityRedisStorage``       honoured   kept until read or flushed
``PriorityRedisExpireStorage`` honoured   expire ``expire_time`` seconds after they are written
=============================  =========  ===============================================================

Connection parameters are huey's: ``host='localhost'``, ``port=6379``, ``db=0``, ``password``,
``connection_pool``, ``url`` (overrides host/port/db/password), ``client_name``, ``health_check_interval=0``;
any other keyword that :class:`redis.Redis` accepts (``socket_timeout``, ``ssl``, ``username``, ``retry`` ...)
is passed on. ``client=`` takes a ready-made redis-py client instead (a :class:`redis.cluster.RedisCluster`, or
``Sentinel.master_for(...)``). Nothing connects until the first operation, so an unreachable server never
breaks an import or Django's start-up; when an operation cannot reach Redis it raises
:class:`~django_tasks_q.exceptions.StorageError` with the redis-py error chained, and redis-py reconnects on
the next call.

Key layout (``P`` is ``prefix``, default ``tq``; ``N`` the queue name, with ``%``, ``{`` and ``}``
percent-encoded). Every key carries the hash tag ``{N}``, so a queue lives in one Cluster slot::

    P:{N}:seq            string  message / dead-letter id sequence (ids are 14 hex digits)
    P:{N}:ready          zset    id → -priority (0 on non-priority storages); equal scores in id (FIFO) order
    P:{N}:notify         list    wake-up tokens for blocked reserve()/dequeue() calls (at most 256)
    P:{N}:schedule       zset    id → due time (epoch seconds)
    P:{N}:inflight       zset    id → lease deadline (epoch seconds)
    P:{N}:m:<id>         hash    d=bytes, p=priority, s=ready score, c=claims, t=token, r=reserved_at
    P:{N}:dead           zset    dead-letter id → failed_at
    P:{N}:dead:<id>      hash    d=bytes, r=reason, x=detail, a=attempts, f=failed_at, p, s

A message hash whose priority ``p`` or claim count ``c`` is not an integer is dead-lettered by the claim or the
reaper script that meets it (reason ``unreadable_record``), before anything else is changed, and logged once.
    P:{N}:kv:<key>       string  key/value data (results, locks, revocations), PX for a ttl
    P:{N}:results        zset    result key → expiry in ms by the Redis clock (+inf: none)
    P:{N}:ctr:<key>      string  incr() counters
    P:{N}:wait:<key>     string  how many wait_result() callers wait for <key> (short-lived)
    P:{N}:wake:<key>     list    tokens that wake them (short-lived)

The Lua scripts are in :mod:`django_tasks_q.backends.redis_scripts`.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from django_tasks_q.backends.base import (
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    check_key,
    log_unreadable_record,
    new_token,
    normalize_priority,
    schedule_time,
)
from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.options import constructor_options, refuse_unknown_options
from django_tasks_q.backends.redis_scripts import SCRIPTS

try:
    import hiredis
except ImportError:  # the redis extra installs it; redis-py works without it
    hiredis = None

__all__ = [
    "PriorityRedisExpireStorage",
    "PriorityRedisStorage",
    "RedisExpireStorage",
    "RedisStorage",
]


def _pack(conn: Any, args: Sequence[Any]) -> list[bytes]:
    """One command in Redis's wire format: hiredis's packer straight away when it is installed and takes the
    arguments (str, bytes, int, float), else the connection's own."""
    if hiredis is not None:
        try:
            return [hiredis.pack_command(tuple(args))]
        except TypeError:
            pass
    return conn.pack_command(*args)


_T = TypeVar("_T")

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_SOCKET_CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connection when the storage builds its own client (redis-py's default is 5)."""
DEFAULT_SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a reply when the storage builds its own client (redis-py's default: for ever). A hung
server or a half-open connection then fails a call with StorageError instead of blocking producers and workers
for ever (RELIABILITY R9, R11); blocking waits (``BLPOP``) stay below half of it."""

_CHUNK = 500  # entries handled by one script call in bulk operations (flushes, reaping, schedule moves)
_BULK = 1000  # messages written by one script call of enqueue_many
_RESERVED_PARAMETERS = frozenset(
    {
        "self",
        "connection_pool",
        "host",
        "port",
        "db",
        "password",
        "client_name",
        "health_check_interval",
        "decode_responses",
        "encoding",
        "encoding_errors",
    }
)


def default_retry() -> Retry:
    """The retry policy of clients the storage builds: 2 quick retries (≤ 0.1 s, ≤ 0.2 s) on connection errors.

    Short on purpose: the consumer has its own capped backoff, and a producer should hear about an outage
    within a bounded time (RELIABILITY R11). Timeouts are not retried: the server is up but slow, and the
    command may already have run. Pass ``retry=`` to choose another policy.
    """
    return Retry(
        ExponentialWithJitterBackoff(cap=0.25, base=0.05),
        retries=2,
        supported_errors=(redis.exceptions.ConnectionError,),
    )


@cache
def _client_parameters() -> frozenset[str]:
    """The keyword arguments :class:`redis.Redis` accepts, minus those the storage sets itself."""
    return frozenset(inspect.signature(redis.Redis.__init__).parameters) - _RESERVED_PARAMETERS


def _tag(name: str) -> str:
    """The queue name as it appears inside the ``{...}`` hash tag (braces and ``%`` percent-encoded)."""
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob metacharacters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _check_url(url: str) -> None:
    """Refuse what redis-py would silently misread: a database path that is not a number, a bad port."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("the scheme must be redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        return
    _ = parts.port  # raises ValueError for a port that is not a number in range
    path = unquote(parts.path).strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number, not {path!r}")


def _ttl_ms(ttl: float | None) -> str:
    """A ttl in seconds as whole milliseconds (rounded up) for ``PX``, or ``""`` for none."""
    if ttl is None:
        return ""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return str(max(1, math.ceil(ttl * 1000)))


def _timestamp(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds since the epoch, not {value!r}")
    return repr(float(value))


def _stop(limit: int | None) -> int | None:
    """The inclusive ``ZRANGE`` stop index for ``limit`` items, or ``None`` when nothing is wanted."""
    if limit is None:
        return -1
    if limit <= 0:
        return None
    return limit - 1


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _priority(value: bytes | str | None) -> int:
    return int(value) if value not in (None, b"", "") else 0


_INHERITED: list[Any] = []
"""Connections a forked child inherited from its parent's threads: never used, released or closed there."""


class _HeldConnection:
    """One thread's connection, taken from the pool and given back when the thread ends (see ``_direct``)."""

    __slots__ = ("__weakref__", "conn", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.conn = None
        self.conn = pool.get_connection()

    def __del__(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None and self.pid == os.getpid():
            try:
                self.pool.release(conn)
            except Exception:
                pass


class RedisStorage(BaseStorage):
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
    reliable = True
    peeks_on_reserve = True

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
        self._client, self._owns_client = self._make_client(
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
        self._blpop_cap = self._blocking_cap()

        base = f"{prefix}:{{{_tag(name)}}}:"
        self._base = base
        self._k_seq = base + "seq"
        self._k_ready = base + "ready"
        self._k_notify = base + "notify"
        self._k_schedule = base + "schedule"
        self._k_inflight = base + "inflight"
        self._k_dead = base + "dead"
        self._k_results = base + "results"
        self._scripts: dict[str, Script] = {
            script_name: self._client.register_script(source) for script_name, source in SCRIPTS.items()
        }
        self._direct = (
            isinstance(self._client, redis.Redis)
            and getattr(self._client, "connection", None) is None  # not a single-connection client
            and callable(getattr(getattr(self._client, "connection_pool", None), "get_connection", None))
        )
        """Whether the hot path talks to a held connection directly (a plain ``redis.Redis`` client with a pool;
        Cluster and single-connection clients go through the client as usual)."""
        self._local = threading.local()

    # ------------------------------------------------------------------ connection

    @staticmethod
    def _make_client(
        name: str,
        *,
        host: str | None,
        port: int | None,
        db: int | None,
        password: str | None,
        connection_pool: Any,
        url: str | None,
        client_name: str | None,
        health_check_interval: int,
        client: Any,
        connection_params: dict[str, Any],
    ) -> tuple[Any, bool]:
        """Build (or check) the redis-py client; return it and whether this storage owns it. Never connects."""
        where = f"Redis storage {name!r}"
        explicit = {
            key: value
            for key, value, default in (
                ("host", host, None),
                ("port", port, None),
                ("db", db, None),
                ("password", password, None),
                ("client_name", client_name, None),
                ("health_check_interval", health_check_interval, 0),
            )
            if value != default
        }
        explicit.update(connection_params)
        if client is not None:
            given = [
                *explicit,
                *(["url"] if url is not None else []),
                *(["connection_pool"] if connection_pool is not None else []),
            ]
            if given:
                raise ConfigurationError(
                    f"{where}: client= is a ready-made redis-py client; do not also give {', '.join(given)}"
                )
            if not callable(getattr(client, "register_script", None)):
                raise ConfigurationError(f"{where}: client= must be a redis-py client, not {client!r}")
            return client, False
        if connection_pool is not None:
            if url is not None:
                raise ConfigurationError(f"{where}: give either url or connection_pool, not both")
            if explicit:
                raise ConfigurationError(
                    f"{where}: a connection_pool carries its own connection settings; do not also give "
                    f"{', '.join(sorted(explicit))}"
                )
            if not isinstance(connection_pool, redis.ConnectionPool):
                raise ConfigurationError(
                    f"{where}: connection_pool must be a redis.ConnectionPool, not {type(connection_pool).__name__}"
                )
            return redis.Redis(connection_pool=connection_pool), False

        unknown = sorted(set(connection_params) - _client_parameters())
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown connection parameter(s) {', '.join(unknown)} (neither a storage option nor "
                "a redis.Redis argument)"
            )
        options: dict[str, Any] = {
            "socket_connect_timeout": DEFAULT_SOCKET_CONNECT_TIMEOUT,
            "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
            "retry": default_retry(),
            **connection_params,
            "client_name": client_name,
            "health_check_interval": health_check_interval,
        }
        if url is not None:
            if explicit.keys() & {"host", "port", "db", "password"}:
                given = ", ".join(key for key in ("host", "port", "db", "password") if key in explicit)
                raise ConfigurationError(
                    f"{where}: give either url or {given}, not both (the url already says where to connect)"
                )
            if not isinstance(url, str):
                raise ConfigurationError(f"{where}: url must be a str, not {type(url).__name__}")
            try:
                _check_url(url)
                return redis.Redis.from_url(url, **options), True
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"{where}: invalid Redis URL {url!r}: {exc}") from exc
        host = DEFAULT_HOST if host is None else host
        port = DEFAULT_PORT if port is None else port
        db = 0 if db is None else db
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"{where}: host must be a non-empty str, not {host!r}")
        for label, number in (("port", port), ("db", db)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ConfigurationError(f"{where}: {label} must be an int >= 0, not {number!r}")
        try:
            return redis.Redis(host=host, port=port, db=db, password=password, **options), True
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where}: {exc}") from exc

    def _blocking_cap(self) -> float:
        """Longest single ``BLPOP`` wait: below the connection's socket timeout, so it never trips it."""
        holder = getattr(self._client, "connection_pool", None) or getattr(
            self._client, "nodes_manager", None
        )
        kwargs = getattr(holder, "connection_kwargs", None) or {}
        socket_timeout = kwargs.get("socket_timeout")
        if isinstance(socket_timeout, int | float) and socket_timeout > 0:
            return max(0.01, min(1.0, socket_timeout / 2))
        return 1.0

    @classmethod
    def check_options(cls, options: Mapping[str, Any], *, where: str) -> list[ConfigurationError]:
        """The base check, accepting as well every keyword :class:`redis.Redis` takes (handed on to the client)."""
        accepted = (constructor_options(cls) or frozenset()) | _client_parameters()
        return list(refuse_unknown_options(cls, options, accepted, where=f"{where}['OPTIONS']"))

    @property
    def key_base(self) -> str:
        """The beginning shared by every key of this queue: ``<prefix>:{<name>}:``."""
        return self._base

    @property
    def client(self) -> Any:
        """The redis-py client in use (built from the parameters, or the one given)."""
        return self._client

    @property
    def conn(self) -> Any:
        """huey's name for :attr:`client`: the redis-py client in use."""
        return self._client

    def close(self) -> None:
        """Disconnect the connection pool if this storage created it (a given pool or client is left alone)."""
        if self._owns_client:
            self._client.close()
            self._client.connection_pool.disconnect()

    def startup_warnings(self) -> list[str]:
        """The server's durability problems: no append-only file, or keys evicted under memory pressure.

        Reads ``CONFIG GET appendonly maxmemory maxmemory-policy``. A server that refuses ``CONFIG`` (managed
        services often rename it) or cannot be reached yields one sentence saying the settings were not checked.
        """
        try:
            config = {_text(key): _text(value) for key, value in self._client.config_get(
                "appendonly", "maxmemory", "maxmemory-policy").items()}
        except (RedisError, AttributeError, TypeError, ValueError) as exc:
            return [
                f"Redis storage {self.name!r}: could not check the server's persistence settings "
                f"({type(exc).__name__}: {exc}); for at-least-once delivery it needs appendonly yes and "
                "maxmemory-policy noeviction"
            ]
        warnings = []
        if config.get("appendonly", "").lower() != "yes":
            warnings.append(
                f"Redis storage {self.name!r}: the server runs without an append-only file (appendonly "
                f"{config.get('appendonly', '?')}); if Redis restarts, queued and in-flight messages written "
                "since its last snapshot are lost. Configure appendonly yes"
            )
        policy = config.get("maxmemory-policy", "noeviction")
        if policy != "noeviction" and config.get("maxmemory", "0") not in ("0", ""):
            warnings.append(
                f"Redis storage {self.name!r}: the server evicts keys when it reaches maxmemory "
                f"{config.get('maxmemory')} (maxmemory-policy {policy}); evicted messages are lost without a "
                "trace. Configure maxmemory-policy noeviction"
            )
        return warnings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} prefix={self.prefix!r}>"

    # ------------------------------------------------------------------ plumbing

    def _error(self, exc: RedisError, what: str) -> StorageError:
        return StorageError(f"Redis storage {self.name!r}: {what} failed: {type(exc).__name__}: {exc}")

    def _run(self, script: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if self._direct:
            return self._direct_script(script, keys, args)
        try:
            return self._scripts[script](keys, args)
        except RedisError as exc:
            raise self._error(exc, script) from exc

    # The hot path (every script, GET and MGET): each thread keeps one connection out of the pool and sends
    # commands on it itself, with the connection's own retry policy and health checks, but without the client's
    # per-call work (pool checkout and release, observability hooks), which costs about as much as the round
    # trip to a local server. The connection goes back to the pool when its thread ends; a forked child takes
    # its own. Anything that fails disconnects the connection, so no half-read reply is ever reused.

    def _held(self) -> Any:
        held = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            if held is not None:
                _INHERITED.append(held)
            held = self._local.held = _HeldConnection(self._client.connection_pool)
        return held.conn

    def _direct_command(self, what: str, *args: Any) -> Any:
        return self._direct_commands(what, args)

    def _direct_commands(self, what: str, *commands: Sequence[Any]) -> Any:
        """Send ``commands`` in one write on the thread's connection, read every reply, return the last."""
        try:
            conn = self._held()
        except RedisError as exc:  # the pool connects a new connection at once
            raise self._error(exc, what) from exc

        def send() -> Any:
            if len(commands) == 1:
                conn.send_packed_command(_pack(conn, commands[0]))
            else:
                conn.send_packed_command(conn.pack_commands(commands))
            replies, error = [], None
            for _command in commands:  # every reply is read, an error reply too, so none is left on the wire
                try:
                    replies.append(conn.read_response())
                except redis.exceptions.ResponseError as exc:
                    error = error or exc
            if error is not None:
                raise error
            return replies[-1]

        try:
            return conn.retry.call_with_retry(send, lambda error: conn.disconnect())
        except RedisError as exc:
            if not isinstance(exc, redis.exceptions.ResponseError):
                conn.disconnect()
            raise self._error(exc, what) from exc
        except BaseException:
            conn.disconnect()  # interrupted mid-reply: never reuse the connection
            raise

    def _direct_script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        try:
            return self._direct_command(name, "EVALSHA", script.sha, len(keys), *keys, *args)
        except StorageError as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
        self._direct_command(name, "SCRIPT", "LOAD", script.script)  # a restarted or flushed server
        return self._direct_command(name, "EVALSHA", script.sha, len(keys), *keys, *args)

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            raise self._error(exc, what) from exc

    def _kv(self, key: str) -> str:
        return self._base + "kv:" + key

    def _msg(self, message_id: str) -> str:
        return self._base + "m:" + message_id

    def _scores(self, priority: int | None) -> tuple[str, str]:
        """``(p, s)``: the priority and the ready-set score as stored (``""`` for 0)."""
        prio = normalize_priority(priority)
        if not prio:
            return "", ""
        return str(prio), (str(-prio) if self.priority else "")

    def _wait_for_notify(self, remaining: float) -> None:
        """Block on the notify list for up to ``remaining`` seconds (an enqueue wakes us at once)."""
        self._call("blpop", self._client.blpop, [self._k_notify], timeout=min(remaining, self._blpop_cap))

    def _take(
        self, attempt: Callable[[], _T | None], wait_then_attempt: Callable[[float], _T | None] | None = None
    ) -> _T | None:
        """Run ``attempt`` (a dequeue or reserve script); while it finds nothing, block until woken.

        ``wait_then_attempt(seconds)``, when given, does the wait and the next attempt in one round trip.
        """
        found = attempt()
        if found is not None or self.block_timeout <= 0:
            return found
        end = time.monotonic() + self.block_timeout
        while True:
            remaining = end - time.monotonic()
            if remaining < 0.001:
                return None
            if wait_then_attempt is not None:
                found = wait_then_attempt(remaining)
            else:
                self._wait_for_notify(remaining)
                found = attempt()
            if found is not None:
                return found

    # ------------------------------------------------------------------ the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Add ``data`` to the ready queue (one script, one round trip) and wake one blocked consumer."""
        check_bytes(data, "data")
        prio, score = self._scores(priority)
        self._run("enqueue", (self._k_seq, self._k_ready, self._k_notify), (self._base, data, prio, score))

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Add messages in order: one script per 1,000, all sent in one ``MULTI``/``EXEC`` round trip."""
        args: list[Any] = []
        for data, priority in items:
            check_bytes(data, "data")
            args.extend((data, *self._scores(priority)))
        if not args:
            return
        keys = (self._k_seq, self._k_ready, self._k_notify)
        step = 3 * _BULK
        if len(args) <= step:
            self._run("enqueue_many", keys, (self._base, *args))
            return
        script = self._scripts["enqueue_many"]
        try:
            with self._client.pipeline(transaction=self._direct) as pipe:  # MULTI/EXEC on a plain server
                for start in range(0, len(args), step):
                    script(keys=keys, args=(self._base, *args[start : start + step]), client=pipe)
                pipe.execute()
        except RedisError as exc:
            raise self._error(exc, "enqueue_many") from exc

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message (at most once), waiting up to ``block_timeout``."""
        return self._take(self._dequeue_once)

    def _dequeue_once(self) -> bytes | None:
        data = self._run("dequeue", (self._k_ready, self._k_notify), (self._base,))
        return None if data is None else bytes(data)

    def queue_size(self) -> int:
        """How many messages are ready."""
        return int(self._call("zcard", self._client.zcard, self._k_ready))

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Up to ``limit`` ready messages in delivery order, without removing them."""
        return self._list_bodies(self._k_ready, limit)

    def _list_bodies(self, key: str, limit: int | None) -> list[bytes]:
        stop = _stop(limit)
        if stop is None:
            return []
        return [bytes(item) for item in self._run("list_bodies", (key,), (self._base, stop))]

    def _flush_set(self, key: str) -> None:
        while self._run("flush_chunk", (key,), (self._base, _CHUNK)) >= _CHUNK:
            pass

    def flush_queue(self) -> None:
        """Remove every ready message (in-flight reservations, the schedule and data stay)."""
        self._flush_set(self._k_ready)

    # ------------------------------------------------------------------ the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Add ``data`` to the schedule, due at ``timestamp``; ``priority`` is kept for ``enqueue_due``."""
        check_bytes(data, "data")
        when = repr(schedule_time(timestamp))
        prio, score = self._scores(priority)
        self._run("add_to_schedule", (self._k_seq, self._k_schedule), (self._base, data, when, prio, score))

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Remove and return every item due at ``timestamp`` or earlier, earliest first."""
        when = repr(schedule_time(timestamp))
        items: list[bytes] = []
        while True:
            examined, *found = self._run(
                "read_schedule_chunk", (self._k_schedule,), (self._base, when, _CHUNK)
            )
            items.extend(bytes(item) for item in found)
            if examined < _CHUNK:
                return items

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Up to ``limit`` scheduled items, earliest first, without removing them."""
        return self._list_bodies(self._k_schedule, limit)

    def schedule_size(self) -> int:
        """How many items are in the schedule, due or not."""
        return int(self._call("zcard", self._client.zcard, self._k_schedule))

    def flush_schedule(self) -> None:
        """Remove every scheduled item."""
        self._flush_set(self._k_schedule)

    def enqueue_due(self, timestamp: float) -> int:
        """Move every item due at ``timestamp`` or earlier to the queue (with its priority); return how many."""
        when = repr(schedule_time(timestamp))
        keys = (self._k_seq, self._k_schedule, self._k_ready, self._k_notify)
        moved = 0
        while True:
            examined, count = self._run("enqueue_due_chunk", keys, (self._base, when, _CHUNK))
            moved += int(count)
            if examined < _CHUNK:
                return moved

    # ------------------------------------------------------------------ key/value data

    def _data_keys(self, key: str) -> tuple[str, str, str, str]:
        base = self._base
        return base + "kv:" + key, self._k_results, base + "wait:" + key, base + "wake:" + key

    def _result_ttl(self, ttl: float | None) -> float | None:
        return self.expire_time if ttl is None else ttl

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (``SET``, with ``PX`` for a ttl) and wake ``wait_result`` callers.

        On the expiring storages a result written without a ttl lives ``expire_time`` seconds.
        """
        key = check_key(key)
        check_bytes(value, "value")
        if is_result:
            ttl = self._result_ttl(ttl)
        self._run(
            "put_data",
            self._data_keys(key),
            (self._base, key, value, _ttl_ms(ttl), "1" if is_result else "0"),
        )

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """The value under ``key`` (one ``GET``), or ``EmptyData``."""
        key = check_key(key)
        if self._direct:
            value = self._direct_command("get", "GET", self._kv(check_key(key)))
        else:
            value = self._call("get", self._client.get, self._kv(check_key(key)))
        return EmptyData if value is None else bytes(value)

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """The values under ``keys`` (one ``MGET``), ``EmptyData`` where there is none."""
        if not keys:
            return []
        names = [self._kv(check_key(key)) for key in keys]
        if self._direct:
            values = self._direct_command("mget", "MGET", *names)
        else:
            values = self._call("mget", self._client.mget, names)
        return [EmptyData if value is None else bytes(value) for value in values]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Remove and return the value under ``key`` atomically, or ``EmptyData``."""
        key = check_key(key)
        kv, results, _, _ = self._data_keys(check_key(key))
        value = self._run("pop_data", (kv, results), (self._base, key))
        return EmptyData if value is None else bytes(value)

    def has_data_for_key(self, key: str) -> bool:
        """Whether ``key`` holds a value (one ``EXISTS``)."""
        key = check_key(key)
        return bool(self._call("exists", self._client.exists, self._kv(check_key(key))))

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """``SET NX`` (with ``PX`` for a ttl): store ``value`` only if ``key`` is empty; return whether it did."""
        key = check_key(key)
        check_bytes(value, "value")
        written = self._run("put_if_empty", self._data_keys(key), (self._base, key, value, _ttl_ms(ttl)))
        return bool(written)

    def delete_data(self, key: str) -> bool:
        """Delete the value under ``key``; return whether there was one."""
        key = check_key(key)
        kv, results, _, _ = self._data_keys(check_key(key))
        return bool(self._run("delete_data", (kv, results), (self._base, key)))

    def flush_all(self) -> None:
        """Delete every key of this queue (``SCAN MATCH <prefix>:{<name>}:*`` then ``UNLINK`` in batches)."""
        self._unlink_matching(_glob_escape(self._base) + "*", "flush_all")

    def _unlink_matching(self, pattern: str, operation: str) -> None:
        try:
            batch: list[Any] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= _CHUNK:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
        except RedisError as exc:
            raise self._error(exc, operation) from exc

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Sorted keys of values starting with ``prefix`` (``SCAN MATCH``; expired keys are gone in Redis)."""
        kv_base = self._kv("")
        pattern = _glob_escape(kv_base + check_key(prefix)) + "*"
        try:
            keys = sorted(_text(name)[len(kv_base):] for name in self._client.scan_iter(match=pattern, count=1000))
        except RedisError as exc:
            raise self._error(exc, "data_keys") from exc
        return keys if limit is None else keys[:limit]

    # ------------------------------------------------------------------ huey's extras

    def _kv_names(self) -> list[Any]:
        """The Redis names of every value of this queue (``SCAN MATCH <prefix>:{<name>}:kv:*``)."""
        try:
            return list(self._client.scan_iter(match=_glob_escape(self._kv("")) + "*", count=1000))
        except RedisError as exc:
            raise self._error(exc, "scan values") from exc

    def result_items(self) -> dict[str, bytes]:
        """Every live value, results or not, as ``{key: value}`` (``SCAN``, then ``MGET`` page by page)."""
        names = self._kv_names()
        start = len(self._kv(""))
        items: dict[str, bytes] = {}
        for first in range(0, len(names), _CHUNK):
            page = names[first : first + _CHUNK]
            for name, value in zip(page, self._call("mget", self._client.mget, page), strict=True):
                if value is not None:  # expired between the scan and the read
                    items[_text(name)[start:]] = bytes(value)
        return items

    def result_store_size(self) -> int:
        """How many values there are, results or not (``SCAN``)."""
        return len(self._kv_names())

    def flush_results(self) -> None:
        """Delete every value, results or not (``SCAN`` then ``UNLINK`` in batches); counters stay."""
        self._unlink_matching(_glob_escape(self._kv("")) + "*", "flush_results")
        self._call("unlink", self._client.unlink, self._k_results)

    def task_results(self) -> dict[str, bytes]:
        """Every live task result as ``{key: value}`` (the results index, read page by page with ``ZSCAN``)."""
        items: dict[str, bytes] = {}
        cursor: Any = 0
        while True:
            cursor, *flat = self._run("results_scan", (self._k_results,), (self._base, cursor, _CHUNK))
            for i in range(0, len(flat), 2):
                items[_text(flat[i])] = bytes(flat[i + 1])
            if int(cursor) == 0:
                return items

    def task_result_count(self) -> int:
        """How many live task results there are (expired entries are dropped from the index first)."""
        return int(self._run("result_count", (self._k_results,), (self._base,)))

    def flush_task_results(self) -> None:
        """Delete every task result; locks, revocations and counters stay."""
        while self._run("flush_results_chunk", (self._k_results,), (self._base, _CHUNK)) >= _CHUNK:
            pass

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` to counter ``key`` (``INCRBY``; ``PEXPIRE`` when this call creates it)."""
        key = check_key(key)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"amount must be an int, not {type(amount).__name__}")
        return int(self._run("incr", (self._base + "ctr:" + key,), (self._base, amount, _ttl_ms(ttl))))

    def delete_counter(self, key: str) -> None:
        """Delete the counter ``key`` (one ``UNLINK``)."""
        key = check_key(key)
        self._call("unlink", self._client.unlink, self._base + "ctr:" + key)

    def flush_counters(self) -> None:
        """Delete every counter of this queue (``SCAN MATCH <prefix>:{<name>}:ctr:*`` then ``UNLINK`` in batches)."""
        self._unlink_matching(_glob_escape(self._base + "ctr:") + "*", "flush_counters")

    def wait_result(self, key: str, timeout: float | None = None) -> bytes | EmptyDataType:
        """Wait until ``key`` holds a value and return it; ``EmptyData`` after ``timeout`` seconds.

        No polling: the caller registers under ``wait:<key>`` and blocks on ``wake:<key>``, which every write of
        ``key`` fills while someone is registered.
        """
        key = check_key(key)
        kv, _, wait_key, wake_key = self._data_keys(check_key(key))
        if timeout is not None and timeout <= 0:
            return self.peek_data(key)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = self._blpop_cap if end is None else min(self._blpop_cap, end - time.monotonic())
            if chunk < 0.001:
                return self.peek_data(key)
            marker_ms = int((chunk + 1.0) * 1000)
            found = self._run("wait_get", (kv, wait_key), (self._base, marker_ms))
            if found:
                return bytes(found[0])
            self._call("blpop", self._client.blpop, [wake_key], timeout=chunk)

    # ------------------------------------------------------------------ reliable delivery

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds (one script), waiting up to ``block_timeout``.

        The values of the ``peek`` keys are read by the same script (see ``peeks_on_reserve``).
        """
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        lease = float(lease)
        waiting = (lambda seconds: self._wait_then_reserve(seconds, lease, peek)) if self._direct else None
        return self._take(lambda: self._reserve_once(lease, peek), waiting)

    def _reserve_script(self, lease: float, peek: Sequence[str]) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
        """Keys, arguments and ``(token, now, deadline)`` of one run of the reserve script."""
        token = new_token()
        now = time.time()
        deadline = now + lease
        keys = (self._k_ready, self._k_inflight, self._k_notify, *[self._kv(check_key(key)) for key in peek])
        return keys, (self._base, token, repr(now), repr(deadline)), (token, now, deadline)

    def _reserve_once(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        keys, args, (token, now, deadline) = self._reserve_script(lease, peek)
        row, buried = self._run("reserve", keys, args)
        self._log_unreadable(buried)
        return self._reservation(row, token, now, deadline, bool(peek))

    def _wait_then_reserve(self, remaining: float, lease: float, peek: Sequence[str]) -> Reservation | None:
        """``BLPOP`` on the notify list and the reserve script, sent together on the thread's connection.

        Redis runs one client's commands in order, so the claim runs the moment an enqueue ends the wait, with
        no round trip in between (an idle worker starts a task sooner). The lease is counted from before the
        wait, which is therefore kept to a quarter of it at most.
        """
        wait = min(remaining, self._blpop_cap, lease / 4)
        keys, args, (token, now, deadline) = self._reserve_script(lease, peek)
        script = self._scripts["reserve"]
        try:
            row, buried = self._direct_commands(
                "reserve", ("BLPOP", self._k_notify, repr(wait)), ("EVALSHA", script.sha, len(keys), *keys, *args)
            )
        except StorageError as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
            self._direct_command("reserve", "SCRIPT", "LOAD", script.script)  # a restarted or flushed server
            return self._reserve_once(lease, peek)
        self._log_unreadable(buried)
        return self._reservation(row, token, now, deadline, bool(peek))

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Delete a finished message and write its result, in one script, if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        keys: tuple[str, ...] = (self._k_inflight, self._msg(reservation.message_id))
        args: tuple[Any, ...] = (self._base, reservation.message_id, reservation.token)
        if result is not None:
            result_keys, result_args = self._result_write(result)
            keys += result_keys
            args += result_args
        return bool(self._run("ack", keys, args))

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float, peek: Sequence[str] = ()
    ) -> tuple[bool, Reservation | None]:
        """``ack`` and a ``reserve`` that does not wait (reading the ``peek`` keys), in one script."""
        if not reservation.token or not reservation.message_id:
            return False, self._reserve_once(float(lease), peek)
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        token = new_token()
        now = time.time()
        deadline = now + lease
        keys: tuple[str, ...] = (
            self._k_inflight, self._msg(reservation.message_id), self._k_ready, self._k_notify,
            *[self._kv(check_key(key)) for key in peek],
        )  # fmt: skip
        args: tuple[Any, ...] = (
            self._base, reservation.message_id, reservation.token, token, repr(now), repr(deadline), len(peek)
        )
        if result is not None:
            result_keys, result_args = self._result_write(result)
            keys += result_keys
            args += result_args
        acked, row, buried = self._run("ack_and_reserve", keys, args)
        self._log_unreadable(buried)
        return bool(acked), self._reservation(row, token, now, deadline, bool(peek))

    def _log_unreadable(self, buried: Sequence[Any]) -> None:
        """Log each message a script dead-lettered unread (``buried``: id, problem, id, problem ...)."""
        for i in range(0, len(buried), 2):
            where = f"message hash {self._msg(_text(buried[i]))!r}"
            log_unreadable_record(self.name, where, _text(buried[i + 1]))

    def _result_write(self, result: ResultWrite) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The keys and arguments that make an ``ack`` script also store ``result``."""
        key, value, ttl = result
        check_key(key)
        check_bytes(value, "result value")
        return self._data_keys(key), (key, value, _ttl_ms(self._result_ttl(ttl)))

    def _reservation(self, row: Any, token: str, now: float, deadline: float, peeked: bool) -> Reservation | None:
        if not row:
            return None
        message_id, data, claims, prio, values = row
        return Reservation(
            message_id=_text(message_id),
            data=bytes(data),
            token=token,
            attempt=int(claims),
            deadline=deadline,
            reserved_at=now,
            priority=_priority(prio),
            peeked=tuple(EmptyData if value is None else bytes(value) for value in values) if peeked else None,
        )

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Set the lease deadline to ``now + lease`` if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        deadline = repr(time.time() + float(lease))
        keys = (self._k_inflight, self._msg(reservation.message_id))
        return bool(
            self._run("renew", keys, (self._base, reservation.message_id, reservation.token, deadline))
        )

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Put a reserved message back in its original place (claim taken back unless ``count_attempt``)."""
        if not reservation.token or not reservation.message_id:
            return False
        keys = (self._k_inflight, self._k_ready, self._k_notify, self._msg(reservation.message_id))
        args = (self._base, reservation.message_id, reservation.token, "1" if count_attempt else "0")
        return bool(self._run("release", keys, args))

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Move a reserved message to the dead letters if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        message_id = reservation.message_id
        keys = (self._k_inflight, self._msg(message_id), self._k_dead, self._base + "dead:" + message_id)
        args = (self._base, message_id, reservation.token, str(reason), str(detail), repr(time.time()))
        return bool(self._run("bury", keys, args))

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim every reservation whose deadline is ``<= now`` (in chunks, each one atomic)."""
        when = _timestamp(now, "now")
        cap = "" if max_attempts is None else str(int(max_attempts))
        reclaim_cap = "" if max_reclaims is None else str(int(max_reclaims))
        span = "" if progress_span is None else repr(float(progress_span))
        keys = (self._k_inflight, self._k_ready, self._k_notify, self._k_dead)
        reclaimed: list[Reclaimed] = []
        while True:
            examined, buried, *flat = self._run(
                "requeue_expired_chunk",
                keys,
                (self._base, when, cap, _CHUNK, repr(time.time()), reclaim_cap, span),
            )
            self._log_unreadable(buried)
            for i in range(0, len(flat), 8):
                message_id, data, token, claims, deadline, reserved_at, prio, dead = flat[i : i + 8]
                reservation = Reservation(
                    message_id=_text(message_id),
                    data=bytes(data),
                    token=_text(token),
                    attempt=int(claims),
                    deadline=float(deadline),
                    reserved_at=float(reserved_at),
                    priority=_priority(prio),
                )
                reason = _text(dead)
                reclaimed.append(Reclaimed(reservation, bool(reason), reason or "max_attempts"))
            if examined < _CHUNK:
                return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Up to ``limit`` current reservations, earliest deadline first."""
        stop = _stop(limit)
        if stop is None:
            return []
        flat = self._run("in_flight", (self._k_inflight,), (self._base, stop))
        return [
            Reservation(
                message_id=_text(flat[i]),
                data=bytes(flat[i + 1]),
                token=_text(flat[i + 2]),
                attempt=int(flat[i + 3]),
                deadline=float(flat[i + 4]),
                reserved_at=float(flat[i + 5]),
                priority=_priority(flat[i + 6]),
            )
            for i in range(0, len(flat), 7)
        ]

    def in_flight_size(self) -> int:
        """How many messages are reserved (one ``ZCARD``)."""
        return int(self._call("zcard", self._client.zcard, self._k_inflight))

    # ------------------------------------------------------------------ dead letters

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Store ``data`` as a dead letter; return its id."""
        check_bytes(data, "data")
        prio, score = self._scores(priority)
        args = (self._base, data, str(reason), str(detail), int(attempts), repr(time.time()), prio, score)
        return _text(self._run("add_dead_letter", (self._k_seq, self._k_dead), args))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first."""
        stop = _stop(limit)
        if stop is None:
            return []
        flat = self._run("dead_letters", (self._k_dead,), (self._base, stop))
        return [
            DeadLetter(
                id=_text(flat[i]),
                data=bytes(flat[i + 1]),
                reason=_text(flat[i + 2]),
                detail=_text(flat[i + 3]),
                attempts=int(flat[i + 4]),
                failed_at=float(flat[i + 5]),
                priority=None if flat[i + 6] in (b"", "") else int(flat[i + 6]),
            )
            for i in range(0, len(flat), 7)
        ]

    def dead_letter_count(self) -> int:
        """How many dead letters there are (one ``ZCARD``)."""
        return int(self._call("zcard", self._client.zcard, self._k_dead))

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter to the back of its priority in the queue, claims reset; ``False`` if unknown."""
        keys = (self._k_dead, self._k_seq, self._k_ready, self._k_notify)
        return bool(self._run("requeue_dead_letter", keys, (self._base, str(dead_letter_id))))

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters (by ids, by age, both, or all); return how many."""
        limit = "" if older_than is None else _timestamp(older_than, "older_than")
        deleted = 0
        if ids is None:
            while True:
                count = int(self._run("purge_dead_chunk", (self._k_dead,), (self._base, limit, _CHUNK)))
                deleted += count
                if count < _CHUNK:
                    return deleted
        wanted = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            deleted += int(self._run("purge_dead_ids", (self._k_dead,), (self._base, limit, *chunk)))
        return deleted


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
