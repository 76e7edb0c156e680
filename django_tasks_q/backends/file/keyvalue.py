"""Key/value entries (``data/``), counters (``counters/``) and the sweep of expired values, in files.

An entry's file is named by the SHA-256 of its key, under ``levels`` of hashed sub-folders, and holds one JSON
header line (key, result flag, expiry) and the value's bytes; a counter's file holds JSON (key, value, expiry).
Writers of one key hold its stripe lock (``locks/kv-<xx>.lock``, 256 stripes by key hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator

from django_tasks_q.backends.base import (
    EmptyData,
    EmptyDataType,
    check_bytes,
    check_key,
    expiry_time,
    is_live,
    new_token,
)
from django_tasks_q.backends.file.fileops import read_file, unlink
from django_tasks_q.backends.file.folder import FileFolder, operation
from django_tasks_q.backends.file.names import HASH_RE

_HEADER_LIMIT = 64 * 1024

Entry = tuple[str, bool, float | None, bytes]
"""A decoded entry: ``(key, is_result, expires_at, value)``."""


def encode_entry(key: str, value: bytes, is_result: bool, expires_at: float | None) -> bytes:
    """An entry file's content: the JSON header line, then the value."""
    header = json.dumps({"key": key, "result": is_result, "expires": expires_at}, ensure_ascii=True)
    if len(header) >= _HEADER_LIMIT:
        raise ValueError(f"key is too long for the file storage ({len(key)} characters)")
    return header.encode("ascii") + b"\n" + value


def decode_entry(raw: bytes | None) -> Entry | None:
    """Return ``(key, is_result, expires_at, value)``, or ``None`` for no bytes or bytes that are not an entry."""
    if raw is None:
        return None
    newline = raw.find(b"\n", 0, _HEADER_LIMIT)
    if newline < 0:
        return None
    try:
        header = json.loads(raw[:newline])
        return str(header["key"]), bool(header["result"]), header["expires"], raw[newline + 1 :]
    except (ValueError, KeyError, TypeError):
        return None


def _live_value(raw: bytes | None, key: str, now: float) -> Entry | None:
    """The entry in ``raw`` if it is ``key``'s and has not expired."""
    entry = decode_entry(raw)
    if entry is None or entry[0] != key or not is_live(entry[2], now):
        return None
    return entry


class KeyValueFiles(FileFolder):
    """Values (results among them) and counters, each in its own file, with expiry."""

    def _kv_lock(self, digest: str) -> contextlib.AbstractContextManager[None]:
        return self._flock(f"kv-{digest[:2]}.lock")

    def _entry_path(self, area: str, key: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        parts = [digest[2 * level : 2 * level + 2] for level in range(self.levels)]
        return os.path.join(self._dirs[area], *parts, digest), digest

    def _entry_files(self, area: str) -> Iterator[tuple[str, str]]:
        for folder, _subfolders, files in os.walk(self._dirs[area]):
            for filename in files:
                if HASH_RE.match(filename):
                    yield os.path.join(folder, filename), filename

    def _live_entries(self) -> Iterator[Entry]:
        """Walk ``data/``: every entry that has not expired."""
        now = time.time()
        for path, _digest in self._entry_files("data"):
            entry = decode_entry(read_file(path))
            if entry is not None and is_live(entry[2], now):
                yield entry

    def _put(self, key: str, value: bytes, is_result: bool, expires_at: float | None) -> None:
        path, digest = self._entry_path("data", key)
        staged = self._stage(encode_entry(key, value, is_result, expires_at))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with self._kv_lock(digest):
                os.rename(staged, path)
        except BaseException:
            unlink(staged)
            raise
        self._sync_dir(os.path.dirname(path))

    def _take(self, key: str) -> Entry | None:
        """Atomically remove the key's file by renaming it into ``tmp/``; return its live entry, if any."""
        taken = os.path.join(self._dirs["tmp"], f"{new_token()}.taken")
        try:
            os.rename(self._entry_path("data", key)[0], taken)
        except FileNotFoundError:
            return None
        try:
            return _live_value(read_file(taken), key, time.time())
        finally:
            unlink(taken)

    def _remove_entry_if(self, path: str, digest: str, condition: Callable[[bytes], bool]) -> bool:
        """Under the stripe lock, unlink ``path`` if its current bytes satisfy ``condition``."""
        with self._kv_lock(digest):
            raw = read_file(path)
            if raw is None or not condition(raw):
                return False
            return unlink(path)

    def _unlink_entries(self, area: str) -> None:
        """Unlink every file of ``area``, each under its stripe lock."""
        for path, digest in list(self._entry_files(area)):
            with self._kv_lock(digest):
                unlink(path)

    # ------------------------------------------------------------------ values

    @operation
    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Stage the entry and rename it over the key's file (under the key's stripe lock)."""
        key = check_key(key)
        value = check_bytes(value, "value")
        expires_at = expiry_time(ttl, time.time())
        self._put(key, value, bool(is_result), expires_at)
        self._maybe_purge()

    @operation
    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """Read the key's file; an expired entry is no value."""
        key = check_key(key)
        entry = _live_value(read_file(self._entry_path("data", key)[0]), key, time.time())
        return EmptyData if entry is None else entry[3]

    @operation
    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Take the key's file by renaming it away, then read it: exactly one caller gets the value."""
        entry = self._take(check_key(key))
        return EmptyData if entry is None else entry[3]

    @operation
    def has_data_for_key(self, key: str) -> bool:
        """Whether the key's file holds a live entry."""
        key = check_key(key)
        return _live_value(read_file(self._entry_path("data", key)[0]), key, time.time()) is not None

    @operation
    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Under the key's stripe lock: drop an expired entry, then ``link()`` the staged file into place."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)
        path, digest = self._entry_path("data", key)
        staged = self._stage(encode_entry(key, value, False, expires_at))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with self._kv_lock(digest):
                if _live_value(read_file(path), key, now) is not None:
                    return False
                unlink(path)  # an expired entry (or nothing)
                try:
                    os.link(staged, path)
                except FileExistsError:
                    return False
        finally:
            unlink(staged)
        self._sync_dir(os.path.dirname(path))
        self._maybe_purge()
        return True

    @operation
    def delete_data(self, key: str) -> bool:
        """Take the key's file by renaming it away; ``True`` if it held a live entry."""
        return self._take(check_key(key)) is not None

    @operation
    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Walk ``data/`` and return the sorted keys of live entries starting with ``prefix``."""
        keys = sorted(entry[0] for entry in self._live_entries() if entry[0].startswith(prefix))
        return keys if limit is None else keys[:limit]

    @operation
    def result_items(self) -> dict[str, bytes]:
        """Walk ``data/`` and return every live value, results or not."""
        return {entry[0]: entry[3] for entry in self._live_entries()}

    @operation
    def task_results(self) -> dict[str, bytes]:
        """Walk ``data/`` and return the live task results."""
        return {entry[0]: entry[3] for entry in self._live_entries() if entry[1]}

    @operation
    def flush_results(self) -> None:
        """Unlink every value entry, results or not (each under its stripe lock); counters stay."""
        self._unlink_entries("data")

    @operation
    def flush_task_results(self) -> None:
        """Unlink every task result entry (each under its stripe lock, re-checked there)."""

        def is_result(raw: bytes) -> bool:
            entry = decode_entry(raw)
            return entry is not None and entry[1]

        for path, digest in list(self._entry_files("data")):
            self._remove_entry_if(path, digest, is_result)

    # ------------------------------------------------------------------ counters

    @operation
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Read, add and rewrite the counter file under the key's stripe lock."""
        key = check_key(key)
        now = time.time()
        path, digest = self._entry_path("counters", key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with self._kv_lock(digest):
            value, expires_at = 0, expiry_time(ttl, now)
            raw = read_file(path)
            if raw is not None:
                try:
                    counter = json.loads(raw)
                    if counter["key"] == key and is_live(counter["expires"], now):
                        value, expires_at = int(counter["value"]), counter["expires"]
                except (ValueError, KeyError, TypeError):
                    pass
            value += amount
            content = json.dumps({"key": key, "value": value, "expires": expires_at}).encode("ascii")
            self._rename_staged(self._stage(content), path)
        self._maybe_purge()
        return value

    @operation
    def delete_counter(self, key: str) -> None:
        """Unlink the counter's file under its stripe lock."""
        key = check_key(key)
        path, digest = self._entry_path("counters", key)
        with self._kv_lock(digest):
            unlink(path)

    @operation
    def flush_counters(self) -> None:
        """Unlink every counter file, each under its stripe lock."""
        self._unlink_entries("counters")

    # ------------------------------------------------------------------ expiry sweep

    def _maybe_purge(self) -> None:
        if time.monotonic() >= self._last_purge + self.purge_interval:
            self._last_purge = time.monotonic()
            self._purge(time.time())

    def _purge(self, now: float) -> int:
        def expired_entry(raw: bytes) -> bool:
            entry = decode_entry(raw)
            return entry is not None and not is_live(entry[2], now)

        def expired_counter(raw: bytes) -> bool:
            try:
                return not is_live(json.loads(raw)["expires"], now)
            except (ValueError, KeyError, TypeError):
                return False

        removed = 0
        for area, condition in (("data", expired_entry), ("counters", expired_counter)):
            for path, digest in list(self._entry_files(area)):
                raw = read_file(path)
                if raw is not None and condition(raw) and self._remove_entry_if(path, digest, condition):
                    removed += 1
        self._sweep_leftovers()
        return removed

    @operation
    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired entries and counters (and crash leftovers); return how many entries were deleted.

        Expired values are already invisible to every read; this reclaims their files. Writes call it by
        themselves at most every ``purge_interval`` seconds. It walks the ``data/`` and ``counters/`` trees.
        """
        return self._purge(time.time() if now is None else now)
