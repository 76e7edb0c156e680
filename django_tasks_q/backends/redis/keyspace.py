"""The names of a Redis queue's keys: the one place that spells them (the Lua scripts build the per-item ones).

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
    P:{N}:kv:<key>       string  key/value data (results, locks, revocations), PX for a ttl
    P:{N}:results        zset    result key → expiry in ms by the Redis clock (+inf: none)
    P:{N}:ctr:<key>      string  incr() counters
    P:{N}:wait:<key>     string  how many wait_result() callers wait for <key> (short-lived)
    P:{N}:wake:<key>     list    tokens that wake them (short-lived)

A message hash whose priority ``p`` or claim count ``c`` is not an integer is dead-lettered by the claim or the
reaper script that meets it (reason ``unreadable_record``), before anything else is changed, and logged once.
"""

from __future__ import annotations

__all__ = ["QueueKeys", "glob_escape"]


def glob_escape(text: str) -> str:
    """``text`` with Redis glob metacharacters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _tag(name: str) -> str:
    """The queue name as it appears inside the ``{...}`` hash tag (braces and ``%`` percent-encoded)."""
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


class QueueKeys:
    """The keys of one queue (``prefix``, ``name``): the fixed ones as attributes, the per-item ones by method."""

    __slots__ = ("base", "dead", "inflight", "notify", "ready", "results", "schedule", "seq")

    def __init__(self, prefix: str, name: str) -> None:
        self.base = base = f"{prefix}:{{{_tag(name)}}}:"
        """The beginning shared by every key of the queue: ``<prefix>:{<name>}:``."""
        self.seq = base + "seq"
        self.ready = base + "ready"
        self.notify = base + "notify"
        self.schedule = base + "schedule"
        self.inflight = base + "inflight"
        self.dead = base + "dead"
        self.results = base + "results"

    def value(self, key: str) -> str:
        """The string that holds the key/value entry ``key``."""
        return self.base + "kv:" + key

    def message(self, message_id: str) -> str:
        """The hash of message ``message_id``."""
        return self.base + "m:" + message_id

    def dead_letter(self, dead_letter_id: str) -> str:
        """The hash of dead letter ``dead_letter_id``."""
        return self.base + "dead:" + dead_letter_id

    def counter(self, key: str) -> str:
        """The string that holds the ``incr()`` counter ``key``."""
        return self.base + "ctr:" + key

    def value_keys(self, key: str) -> tuple[str, str, str, str]:
        """What a write of ``key`` touches: its string, the results index, its waiter count and its wake list."""
        base = self.base
        return base + "kv:" + key, self.results, base + "wait:" + key, base + "wake:" + key

    def matching(self, kind: str = "") -> str:
        """A ``SCAN MATCH`` pattern for every key of the queue, or of one ``kind`` (``"kv:"``, ``"ctr:"``)."""
        return glob_escape(self.base + kind) + "*"
