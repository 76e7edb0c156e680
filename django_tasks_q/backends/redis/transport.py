"""How a Redis storage talks to the server: one interface, chosen once when the storage is built.

The storage calls a transport's methods — :meth:`~ClientTransport.command`, :meth:`~ClientTransport.script`,
:meth:`~ClientTransport.wait_then_script`, :meth:`~ClientTransport.scripts_in_one_round_trip`,
:meth:`~ClientTransport.scan` — and never asks which transport it has:

- :class:`HeldConnectionTransport` for a plain :class:`redis.Redis` client with a connection pool (one the storage
  built, or one given with a pool or by Sentinel's ``master_for``): each thread keeps one connection out of the
  pool and sends commands on it itself, with the connection's own retry policy and health checks but without the
  client's per-call work (pool checkout and release, observability hooks), which costs about as much as the
  round trip to a local server;
- :class:`ClientTransport` for every other client (Redis Cluster, a single-connection client), which routes each
  command through the client as usual.

Every failure to reach or use Redis comes out as :class:`~django_tasks_q.exceptions.StorageError` with the
redis-py error chained.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from django_tasks_q.backends.errors import StorageError
from django_tasks_q.backends.redis.scripts import SCRIPTS

hiredis: ModuleType | None
try:
    hiredis = importlib.import_module("hiredis")
except ImportError:  # the redis extra installs it; redis-py works without it
    hiredis = None

__all__ = ["ClientTransport", "HeldConnectionTransport", "transport_for"]


class ClientTransport:
    """Every command through the redis-py client: works with any client (Redis Cluster, a single connection ...)."""

    transactional_pipeline = False
    """Whether :meth:`scripts_in_one_round_trip` wraps its scripts in ``MULTI``/``EXEC`` (not on a Cluster)."""

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        """The redis-py client in use."""
        self._where = where
        self._scripts: dict[str, Script] = {name: client.register_script(source) for name, source in SCRIPTS.items()}
        self.wait_cap = _wait_cap(client)
        """Longest single ``BLPOP`` wait: below the connections' socket timeout, so a wait never trips it."""

    def error(self, exc: RedisError, what: str) -> StorageError:
        """The :class:`StorageError` that reports ``exc``, raised by the operation ``what``."""
        return StorageError(f"{self._where}: {what} failed: {type(exc).__name__}: {exc}")

    def command(self, what: str, *args: Any) -> Any:
        """Run one command (``"GET"``, key ...) and return its reply; ``what`` names the operation in errors."""
        try:
            return self.client.execute_command(*args)
        except RedisError as exc:
            raise self.error(exc, what) from exc

    def script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the Lua script ``name`` (``EVALSHA``, loaded first when the server does not know it)."""
        try:
            return self._scripts[name](keys, args)
        except RedisError as exc:
            raise self.error(exc, name) from exc

    def wait_then_script(
        self, wait_key: str, seconds: float, name: str, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """``BLPOP wait_key`` for up to ``seconds``, then run the script ``name``; return the script's reply."""
        self.command("blpop", "BLPOP", wait_key, seconds)
        return self.script(name, keys, args)

    def scripts_in_one_round_trip(self, name: str, keys: Sequence[Any], arg_lists: Sequence[Sequence[Any]]) -> None:
        """Run the script ``name`` once per argument list, all sent together (in order) in one pipeline."""
        script = self._scripts[name]
        try:
            with self.client.pipeline(transaction=self.transactional_pipeline) as pipe:
                for args in arg_lists:
                    script(keys=keys, args=args, client=pipe)
                pipe.execute()
        except RedisError as exc:
            raise self.error(exc, name) from exc

    def scan(self, pattern: str, what: str) -> Iterator[Any]:
        """The names of the keys that match ``pattern`` (``SCAN MATCH``, 1,000 a page), as they come."""
        try:
            yield from self.client.scan_iter(match=pattern, count=1000)
        except RedisError as exc:
            raise self.error(exc, what) from exc

    def server_config(self, *names: str) -> Mapping[Any, Any]:
        """``CONFIG GET`` of ``names``, as a mapping (redis-py's error raised as it is)."""
        return self.client.config_get(*names)

    def close(self) -> None:
        """Close the client and disconnect its pool (for a client the storage built)."""
        self.client.close()
        self.client.connection_pool.disconnect()


def _wait_cap(client: Any) -> float:
    holder = getattr(client, "connection_pool", None) or getattr(client, "nodes_manager", None)
    kwargs = getattr(holder, "connection_kwargs", None) or {}
    socket_timeout = kwargs.get("socket_timeout")
    if isinstance(socket_timeout, int | float) and socket_timeout > 0:
        return max(0.01, min(1.0, socket_timeout / 2))
    return 1.0


def _pack(conn: Any, args: Sequence[Any]) -> list[bytes]:
    """One command in Redis's wire format: hiredis's packer straight away when it is installed and takes the
    arguments (str, bytes, int, float), else the connection's own."""
    if hiredis is not None:
        try:
            return [hiredis.pack_command(tuple(args))]
        except TypeError:
            pass
    return conn.pack_command(*args)


_INHERITED: list[Any] = []
"""Connections a forked child inherited from its parent's threads: never used, released or closed there."""


class _HeldConnection:
    """One thread's connection, taken from the pool and given back when the thread ends."""

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


class HeldConnectionTransport(ClientTransport):
    """Commands sent by the storage itself on a connection each thread holds (a plain client with a pool).

    The connection goes back to the pool when its thread ends; a forked child takes its own. Anything that fails
    disconnects the connection, so no half-read reply is ever reused. Scans, pipelines and ``CONFIG`` still go
    through the client.
    """

    transactional_pipeline = True

    def __init__(self, client: Any, where: str) -> None:
        super().__init__(client, where)
        self._local = threading.local()

    def _held(self) -> Any:
        held = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            if held is not None:
                _INHERITED.append(held)
            held = self._local.held = _HeldConnection(self.client.connection_pool)
        return held.conn

    def send(self, what: str, *commands: Sequence[Any]) -> Any:
        """Send ``commands`` in one write on the thread's connection, read every reply, return the last."""
        try:
            conn = self._held()
        except RedisError as exc:  # the pool connects a new connection at once
            raise self.error(exc, what) from exc

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
            raise self.error(exc, what) from exc
        except BaseException:
            conn.disconnect()  # interrupted mid-reply: never reuse the connection
            raise

    def command(self, what: str, *args: Any) -> Any:
        """Run one command on the thread's connection and return its reply."""
        return self.send(what, args)

    def script(self, name: str, keys: Sequence[Any], args: Sequence[Any], *before: Sequence[Any]) -> Any:
        """``EVALSHA`` on the thread's connection, after the commands ``before`` in the same write; on ``NOSCRIPT``
        (a restarted or flushed server) the script is loaded and run again, alone."""
        run = ("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)
        try:
            return self.send(name, *before, run)
        except StorageError as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
        self.send(name, ("SCRIPT", "LOAD", self._scripts[name].script))
        return self.send(name, run)

    def wait_then_script(
        self, wait_key: str, seconds: float, name: str, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """``BLPOP`` and the script sent together: Redis runs one client's commands in order, so the script runs
        the moment the wait ends, with no round trip in between."""
        return self.script(name, keys, args, ("BLPOP", wait_key, repr(seconds)))


def transport_for(client: Any, where: str) -> ClientTransport:
    """The transport for ``client``: held connections for a plain ``redis.Redis`` with a pool, else the client."""
    if (
        isinstance(client, redis.Redis)
        and getattr(client, "connection", None) is None  # not a single-connection client
        and callable(getattr(getattr(client, "connection_pool", None), "get_connection", None))
    ):
        return HeldConnectionTransport(client, where)
    return ClientTransport(client, where)
