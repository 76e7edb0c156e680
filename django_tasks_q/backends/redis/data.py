"""Key/value data of the Redis storages: results, locks, revocations, counters, and waiting for a result."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django_tasks_q.backends.base import EmptyDataType, check_bytes, check_key
from django_tasks_q.backends.redis import wire
from django_tasks_q.backends.redis.delivery import CHUNK
from django_tasks_q.backends.redis.keyspace import QueueKeys
from django_tasks_q.backends.redis.transport import ClientTransport

__all__ = ["KeyValueData"]


class KeyValueData:
    """The key/value half of :class:`~django_tasks_q.backends.redis.RedisStorage` (huey's data methods and more)."""

    expire_time: float | None
    _keys: QueueKeys
    _transport: ClientTransport
    _flush_set: Callable[[str, str], None]

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (``SET``, with ``PX`` for a ttl) and wake ``wait_result`` callers.

        On the expiring storages a result written without a ttl lives ``expire_time`` seconds.
        """
        key = check_key(key)
        check_bytes(value, "value")
        if is_result and ttl is None:
            ttl = self.expire_time
        self._transport.script(
            "put_data",
            self._keys.value_keys(key),
            (self._keys.base, key, value, wire.ttl_ms(ttl), "1" if is_result else "0"),
        )

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """The value under ``key`` (one ``GET``), or ``EmptyData``."""
        return wire.optional(self._transport.command("get", "GET", self._keys.value(check_key(key))))

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """The values under ``keys`` (one ``MGET``), ``EmptyData`` where there is none."""
        if not keys:
            return []
        values = self._transport.command("mget", "MGET", *[self._keys.value(check_key(key)) for key in keys])
        return [wire.optional(value) for value in values]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Remove and return the value under ``key`` atomically, or ``EmptyData``."""
        key = check_key(key)
        kv, results, _, _ = self._keys.value_keys(key)
        return wire.optional(self._transport.script("pop_data", (kv, results), (self._keys.base, key)))

    def has_data_for_key(self, key: str) -> bool:
        """Whether ``key`` holds a value (one ``EXISTS``)."""
        return bool(self._transport.command("exists", "EXISTS", self._keys.value(check_key(key))))

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """``SET NX`` (with ``PX`` for a ttl): store ``value`` only if ``key`` is empty; return whether it did."""
        key = check_key(key)
        check_bytes(value, "value")
        args = (self._keys.base, key, value, wire.ttl_ms(ttl))
        return bool(self._transport.script("put_if_empty", self._keys.value_keys(key), args))

    def delete_data(self, key: str) -> bool:
        """Delete the value under ``key``; return whether there was one."""
        key = check_key(key)
        kv, results, _, _ = self._keys.value_keys(key)
        return bool(self._transport.script("delete_data", (kv, results), (self._keys.base, key)))

    def flush_all(self) -> None:
        """Delete every key of this queue (``SCAN MATCH <prefix>:{<name>}:*`` then ``UNLINK`` in batches)."""
        self._unlink_matching(self._keys.matching(), "flush_all")

    def _unlink_matching(self, pattern: str, operation: str) -> None:
        batch: list[Any] = []
        for key in self._transport.scan(pattern, operation):
            batch.append(key)
            if len(batch) >= CHUNK:
                self._transport.command(operation, "UNLINK", *batch)
                batch = []
        if batch:
            self._transport.command(operation, "UNLINK", *batch)

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Sorted keys of values starting with ``prefix`` (``SCAN MATCH``; expired keys are gone in Redis)."""
        start = len(self._keys.value(""))
        names = self._transport.scan(self._keys.matching("kv:" + check_key(prefix)), "data_keys")
        keys = sorted(wire.text(name)[start:] for name in names)
        return keys if limit is None else keys[:limit]

    # ------------------------------------------------------------------ huey's extras

    def _value_names(self) -> list[Any]:
        """The Redis names of every value of this queue (``SCAN MATCH <prefix>:{<name>}:kv:*``)."""
        return list(self._transport.scan(self._keys.matching("kv:"), "scan values"))

    def result_items(self) -> dict[str, bytes]:
        """Every live value, results or not, as ``{key: value}`` (``SCAN``, then ``MGET`` page by page)."""
        names = self._value_names()
        start = len(self._keys.value(""))
        items: dict[str, bytes] = {}
        for first in range(0, len(names), CHUNK):
            page = names[first : first + CHUNK]
            for name, value in zip(page, self._transport.command("mget", "MGET", *page), strict=True):
                if value is not None:  # expired between the scan and the read
                    items[wire.text(name)[start:]] = bytes(value)
        return items

    def result_store_size(self) -> int:
        """How many values there are, results or not (``SCAN``)."""
        return len(self._value_names())

    def flush_results(self) -> None:
        """Delete every value, results or not (``SCAN`` then ``UNLINK`` in batches); counters stay."""
        self._unlink_matching(self._keys.matching("kv:"), "flush_results")
        self._transport.command("unlink", "UNLINK", self._keys.results)

    def task_results(self) -> dict[str, bytes]:
        """Every live task result as ``{key: value}`` (the results index, read page by page with ``ZSCAN``)."""
        items: dict[str, bytes] = {}
        cursor: Any = 0
        while True:
            cursor, *flat = self._transport.script(
                "results_scan", (self._keys.results,), (self._keys.base, cursor, CHUNK)
            )
            for i in range(0, len(flat), 2):
                items[wire.text(flat[i])] = bytes(flat[i + 1])
            if int(cursor) == 0:
                return items

    def task_result_count(self) -> int:
        """How many live task results there are (expired entries are dropped from the index first)."""
        return int(self._transport.script("result_count", (self._keys.results,), (self._keys.base,)))

    def flush_task_results(self) -> None:
        """Delete every task result; locks, revocations and counters stay."""
        self._flush_set(self._keys.results, "kv:")

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` to counter ``key`` (``INCRBY``; ``PEXPIRE`` when this call creates it)."""
        key = check_key(key)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"amount must be an int, not {type(amount).__name__}")
        args = (self._keys.base, amount, wire.ttl_ms(ttl))
        return int(self._transport.script("incr", (self._keys.counter(key),), args))

    def delete_counter(self, key: str) -> None:
        """Delete the counter ``key`` (one ``UNLINK``)."""
        self._transport.command("unlink", "UNLINK", self._keys.counter(check_key(key)))

    def flush_counters(self) -> None:
        """Delete every counter of this queue (``SCAN MATCH <prefix>:{<name>}:ctr:*`` then ``UNLINK`` in batches)."""
        self._unlink_matching(self._keys.matching("ctr:"), "flush_counters")

    def wait_result(self, key: str, timeout: float | None = None) -> bytes | EmptyDataType:
        """Wait until ``key`` holds a value and return it; ``EmptyData`` after ``timeout`` seconds.

        No polling: the caller registers under ``wait:<key>`` and blocks on ``wake:<key>``, which every write of
        ``key`` fills while someone is registered.
        """
        key = check_key(key)
        kv, _, wait_key, wake_key = self._keys.value_keys(key)
        if timeout is not None and timeout <= 0:
            return self.peek_data(key)
        cap = self._transport.wait_cap
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = cap if end is None else min(cap, end - time.monotonic())
            if chunk < 0.001:
                return self.peek_data(key)
            marker_ms = int((chunk + 1.0) * 1000)
            found = self._transport.script("wait_get", (kv, wait_key), (self._keys.base, marker_ms))
            if found:
                return bytes(found[0])
            self._transport.command("blpop", "BLPOP", wake_key, chunk)
