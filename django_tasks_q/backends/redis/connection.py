"""Building the redis-py client of a Redis storage from huey's connection parameters, and checking the server.

Nothing here connects: a client is built at construction, and the first command opens its first connection.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from django_tasks_q.backends.errors import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SOCKET_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "check_url",
    "client_parameters",
    "default_retry",
    "durability_warnings",
    "make_client",
]

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_SOCKET_CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connection when the storage builds its own client (redis-py's default is 5)."""
DEFAULT_SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a reply when the storage builds its own client (redis-py's default: for ever). A hung
server or a half-open connection then fails a call with StorageError instead of blocking producers and workers
for ever; blocking waits (``BLPOP``) stay below half of it."""

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
    within a bounded time. Timeouts are not retried: the server is up but slow, and the command may already
    have run. Pass ``retry=`` to choose another policy.
    """
    return Retry(
        ExponentialWithJitterBackoff(cap=0.25, base=0.05),
        retries=2,
        supported_errors=(redis.exceptions.ConnectionError,),
    )


@cache
def client_parameters() -> frozenset[str]:
    """The keyword arguments :class:`redis.Redis` accepts, minus those the storage sets itself."""
    return frozenset(inspect.signature(redis.Redis.__init__).parameters) - _RESERVED_PARAMETERS


def check_url(url: str) -> None:
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


def make_client(
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

    unknown = sorted(set(connection_params) - client_parameters())
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
            both = ", ".join(key for key in ("host", "port", "db", "password") if key in explicit)
            raise ConfigurationError(
                f"{where}: give either url or {both}, not both (the url already says where to connect)"
            )
        if not isinstance(url, str):
            raise ConfigurationError(f"{where}: url must be a str, not {type(url).__name__}")
        try:
            check_url(url)
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def durability_warnings(where: str, read_config: Callable[..., Mapping[Any, Any]]) -> list[str]:
    """The server's durability problems, as sentences: no append-only file, or keys evicted under memory pressure.

    ``read_config(*names)`` is ``CONFIG GET``. A server that refuses ``CONFIG`` (managed services often rename it)
    or cannot be reached yields one sentence saying the settings were not checked.
    """
    try:
        config = {
            _text(key): _text(value)
            for key, value in read_config("appendonly", "maxmemory", "maxmemory-policy").items()
        }
    except (RedisError, AttributeError, TypeError, ValueError) as exc:
        return [
            f"{where}: could not check the server's persistence settings ({type(exc).__name__}: {exc}); for "
            "at-least-once delivery it needs appendonly yes and maxmemory-policy noeviction"
        ]
    warnings = []
    if config.get("appendonly", "").lower() != "yes":
        warnings.append(
            f"{where}: the server runs without an append-only file (appendonly "
            f"{config.get('appendonly', '?')}); if Redis restarts, queued and in-flight messages written "
            "since its last snapshot are lost. Configure appendonly yes"
        )
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction" and config.get("maxmemory", "0") not in ("0", ""):
        warnings.append(
            f"{where}: the server evicts keys when it reaches maxmemory "
            f"{config.get('maxmemory')} (maxmemory-policy {policy}); evicted messages are lost without a "
            "trace. Configure maxmemory-policy noeviction"
        )
    return warnings
