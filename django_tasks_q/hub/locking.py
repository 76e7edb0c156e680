"""Named locks and rate limits of a hub: the storage side of :class:`~django_tasks_q.locks.TaskLock` and
:class:`~django_tasks_q.locks.RateLimit`, and what the admin shows of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backends.base import Feature
from ..locks import RateLimit, TaskLock
from ..timeutils import now_utc
from . import keyspace

if TYPE_CHECKING:
    from .queue import TaskQueue


class LockStore:
    """Takes, releases and lists a hub's locks, and counts its rate limits' windows."""

    def __init__(self, hub: TaskQueue) -> None:
        self.hub = hub

    def lock_task(self, lock_name: str, ttl: float | None = None) -> TaskLock:
        """A named lock, usable as decorator or context manager; a held lock raises TaskLockedException."""
        return TaskLock(self.hub, lock_name, ttl=ttl)

    def rate_limit(self, name: str, limit: int, per: float, retry: bool = True) -> RateLimit:
        """A rate limit of ``limit`` entries per ``per`` seconds, as decorator or context manager.

        A task that hits it is retried when the window reopens; with ``retry=False`` only if the call has
        retries left (using one up).
        """
        limiter = RateLimit(self.hub, name, limit, per, retry=retry)
        self.hub.rate_limit_specs[name] = (limiter.limit, limiter.per)  # for the admin's "rate limits" page
        return limiter

    def lock_key(self, lock_name: str) -> str:
        """The storage key of a named lock: ``<queue name>.lock.<lock name>``, huey's layout, so a lock written by
        huey-style code (``put_if_empty``) is the same lock."""
        return keyspace.lock_key(self.hub.name, lock_name)

    def take(self, key: str, ttl: float | None) -> bool:
        """Take the lock stored under ``key`` if it is free; True when taken."""
        return self.hub.storage.put_if_empty(key, b"1", ttl=ttl)

    def held(self, key: str) -> bool:
        """Whether the lock stored under ``key`` is held."""
        return self.hub.storage.has_data_for_key(key)

    def give_back(self, key: str) -> bool:
        """Release the lock stored under ``key``; True when it was held."""
        return self.hub.storage.delete_data(key)

    def count(self, key: str, amount: int, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter under ``key`` (0 reads it); its new value."""
        if ttl is None:
            return self.hub.storage.incr(key, amount)
        return self.hub.storage.incr(key, amount, ttl=ttl)

    def is_locked(self, lock_name: str) -> bool:
        """Whether the named lock is held."""
        return self.held(self.hub.lock_key(lock_name))

    def release_lock(self, lock_name: str) -> bool:
        """Release one named lock whoever holds it; True when it was held."""
        return self.give_back(self.hub.lock_key(lock_name))

    def flush_locks(self, *names: str) -> set[str]:
        """Release every lock this queue knows of (and ``names``); returns the names that were held."""
        return {lock_name for lock_name in self.hub.known_locks | set(names) if self.release_lock(lock_name)}

    def locks_held(self) -> dict[str, bool]:
        """Every lock this queue knows of, by name: whether it is held now."""
        return {lock_name: self.hub.is_locked(lock_name) for lock_name in sorted(self.hub.known_locks)}

    def rate_limit_usage(self) -> list[dict[str, Any]]:
        """Known rate limits: name, limit, window and entries used in the current window (None if unknown)."""
        hub = self.hub
        usage = []
        now = now_utc().timestamp()
        for limit_name in sorted(hub.known_rate_limits):
            spec = hub.rate_limit_specs.get(limit_name)
            used = None
            if spec is not None and Feature.COUNTERS in hub.storage.features:
                per = spec[1]
                used = self.count(keyspace.rate_limit_key(limit_name, int(now // per)), 0, ttl=per * 2)
            usage.append(
                {"name": limit_name, "limit": spec[0] if spec else None, "per": spec[1] if spec else None, "used": used}
            )
        return usage
