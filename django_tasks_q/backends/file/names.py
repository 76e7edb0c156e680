"""The names on disk of the file storage: folders, message ids and the patterns every file name follows.

A file's name carries what the storage orders and filters by (priority, enqueue time, claims, lease token,
due time), so that a sorted folder listing is the delivery order and no file has to be opened to sort it.
"""

from __future__ import annotations

import os
import re
import threading
import time

from django_tasks_q.backends.base import bounded_priority, new_token, schedule_time

SUBDIRS = ("tmp", "ready", "inflight", "schedule", "data", "counters", "dead", "locks")
"""The folders of a queue's folder (``quarantine/`` is created only when first needed)."""

_PRIORITY_BIAS = 2**63 - 1
_MAX_NS = 10**20 - 1

_MID = r"[0-9a-f]{16}-[0-9]{20}-[0-9a-f]{32}"
MESSAGE_ID_RE = re.compile(rf"^{_MID}$")
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
READY_RE = re.compile(rf"^({_MID})\.([0-9]+)$")
"""``ready/<message_id>.<claims>``."""
INFLIGHT_RE = re.compile(rf"^({_MID})\.([0-9]+)\.([0-9a-f]{{32}})\.([0-9]+)$")
"""``inflight/<message_id>.<claims>.<token>.<reserved_at, µs>``."""
SCHEDULE_RE = re.compile(r"^([0-9]{20})-([0-9]{20})-([0-9a-f]{32})\.(-?[0-9]+)$")
"""``schedule/<due time, ns>-<sequence>-<random>.<priority>``."""
DEAD_RE = re.compile(r"^(([0-9]{20})-([0-9a-f-]+))\.([0-9]+)\.(-?[0-9]+|n)\.msg$")
"""``dead/<order>-<id>.<attempts>.<priority or n>.msg``."""
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
"""A key/value entry or counter file: the SHA-256 of its key."""

# ---------------------------------------------------------------------------- a per-process sequence

_seq_lock = threading.Lock()
_last_seq = 0


def next_seq() -> int:
    """Return wall-clock nanoseconds, strictly increasing within this process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def _reset_seq_lock() -> None:
    global _seq_lock
    _seq_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_seq_lock)

# ---------------------------------------------------------------------------- names


def due_ns(timestamp: float) -> int:
    """A schedule timestamp as the nanoseconds written in a ``schedule/`` name (20 digits at most)."""
    return min(max(int(schedule_time(timestamp) * 1e9), 0), _MAX_NS)


def checked_priority(priority: int | None) -> int:
    """The priority as stored in a name: an int that fits in 64 bits (``None`` is 0)."""
    return bounded_priority(priority, 64, "in a 64-bit integer")


def new_message_id(priority: int) -> str:
    """A fresh message id; ids sort in delivery order (highest priority first, then first in, first out)."""
    return f"{_PRIORITY_BIAS - priority:016x}-{next_seq():020d}-{new_token()}"


def message_priority(message_id: str) -> int:
    """The priority written in a message id."""
    return _PRIORITY_BIAS - int(message_id[:16], 16)


def dir_name(name: str) -> str:
    """The queue name as one safe folder name (percent-encoding anything unusual, and a leading dot)."""
    out = []
    for char in name:
        if char.isascii() and (char.isalnum() or char in "-_."):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    encoded = "".join(out)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded
