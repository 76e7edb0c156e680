"""Locks and rate limits kept in the queue's storage, usable as decorators and context managers."""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidOption, RateLimitExceeded, TaskLockedException
from .hub.keyspace import rate_limit_key

if TYPE_CHECKING:
    from .hub.queue import TaskQueue


class _DecoratorContext:
    """Shared decorator behaviour: wrap a sync or async function in ``with self:``.

    Subclasses are context managers (they define ``__enter__`` and ``__exit__``).
    """

    if TYPE_CHECKING:

        def __enter__(self) -> Any: ...
        def __exit__(self, *exc_info: Any) -> None: ...

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_inner

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return inner


class TaskLock(_DecoratorContext):
    """A named lock: only one holder at a time across every process using the storage.

    Entering raises :class:`TaskLockedException` when the lock is held. A
    ``ttl`` (seconds) lets a lock left by a killed process lapse by itself;
    without one, ``run_tasks --flush-locks`` or :meth:`TaskQueue.flush_locks`
    clears it.
    """

    def __init__(self, queue: TaskQueue, name: str, ttl: float | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidOption(f"lock name must be a non-empty string, got {name!r}", field="name")
        self.queue = queue
        self.name = name
        self.ttl = ttl
        self.key = queue.lock_key(name)
        queue.known_locks.add(name)

    def is_locked(self) -> bool:
        """Whether someone holds the lock now."""
        return self.queue.lock_store.held(self.key)

    def acquire(self) -> bool:
        """Take the lock if it is free; True when taken."""
        return self.queue.lock_store.take(self.key, self.ttl)

    def release(self) -> bool:
        """Give the lock back; True when it was held."""
        return self.queue.lock_store.give_back(self.key)

    def clear(self) -> bool:
        """Remove the lock whoever holds it (same as :meth:`release`)."""
        return self.release()

    def __enter__(self) -> TaskLock:
        if not self.acquire():
            raise TaskLockedException(f"unable to acquire lock {self.name!r}: it is held")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


class RateLimit(_DecoratorContext):
    """At most ``limit`` entries per ``per`` seconds, counted in fixed windows in the storage.

    :meth:`acquire` (and entering) past the limit raises :class:`RateLimitExceeded` with the seconds until
    the next window opens. A task that lets it propagate is retried then: with ``retry=True`` (the default)
    without using one of its retries, with ``retry=False`` only if it has retries left.
    """

    def __init__(self, queue: TaskQueue, name: str, limit: int, per: float, retry: bool = True) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidOption(f"rate limit name must be a non-empty string, got {name!r}", field="name")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidOption(f"rate limit {name!r}: limit must be an int >= 1, got {limit!r}", field="limit")
        if isinstance(per, bool) or not isinstance(per, (int, float)) or not math.isfinite(per) or per <= 0:
            raise InvalidOption(f"rate limit {name!r}: per must be seconds > 0, got {per!r}", field="per")
        self.queue = queue
        self.name = name
        self.limit = limit
        self.per = float(per)
        self.retry = bool(retry)
        queue.known_rate_limits.add(name)

    def _window(self, now: float) -> int:
        return int(now // self.per)

    def _key(self, now: float) -> str:
        return rate_limit_key(self.name, self._window(now))

    def acquire(self) -> None:
        """Count one entry in the current window; raise :class:`RateLimitExceeded` when that goes past the limit."""
        now = time.time()
        count = self.queue.lock_store.count(self._key(now), 1, ttl=self.per * 2)
        if count > self.limit:
            retry_at = (self._window(now) + 1) * self.per
            delay = retry_at - now
            raise RateLimitExceeded(
                self.name,
                delay,
                retry=self.retry,
                retry_at=retry_at,
                message=f"rate limit {self.name!r} of {self.limit} per {self.per:g} s reached; "
                f"next window in {delay:.2f} s",
            )

    def current_usage(self) -> int:
        """How many entries the current window has counted (including refused ones)."""
        return self.queue.lock_store.count(self._key(time.time()), 0, ttl=self.per * 2)

    def reset(self) -> None:
        """Start the current window afresh (its count goes back to zero)."""
        key = self._key(time.time())
        used = self.queue.lock_store.count(key, 0, ttl=self.per * 2)
        if used:
            # Counters are changed only through incr (they need not share the key/value area).
            self.queue.lock_store.count(key, -used)

    def __enter__(self) -> RateLimit:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None
