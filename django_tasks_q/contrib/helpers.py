"""huey's ``huey.contrib.helpers``: a counting semaphore on Redis, and a task decorator built on it.

``RedisSemaphore(queue, name, value=1, timeout=None)`` lets at most ``value`` holders in at once;
``lock_task_semaphore(queue, name, value=1, timeout=None)`` wraps a task function so that at most ``value``
calls of it run at the same time (a call that finds the semaphore full raises
:class:`~django_tasks_q.exceptions.TaskLockedException`, which retries handle like any error).

The holders are a sorted set under the queue's Redis keys (so ``flush_all()`` clears it), scored by the time they
acquired; a holder older than ``timeout`` seconds (a day by default) no longer counts, so a worker that died
holding the semaphore blocks nobody for ever. Acquiring is one Lua script: the check and the entry are atomic.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django_tasks_q.backends.redis import RedisStorage
from django_tasks_q.exceptions import ConfigurationError, TaskLockedException

__all__ = ["RedisSemaphore", "lock_task_semaphore"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = 86400.0

# KEYS[1] the holders; ARGV: now, timeout (s), holder, value. 1 when the holder is (still) in, else 0.
_ACQUIRE = """
local now, timeout = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - timeout)
local held = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(timeout * 1000))
return 1
"""


class RedisSemaphore:
    """A semaphore that ``value`` holders may hold at once, kept in the Redis storage of ``queue``.

    ``queue`` is a hub (``RedisHuey`` & co., or any queue on a Redis storage); anything else is a
    :class:`ConfigurationError`. ``timeout``: seconds after which a holder that never released stops counting.
    """

    def __init__(self, queue: Any, name: str, value: int = 1, timeout: float | None = None) -> None:
        """Check the arguments and prepare the script; nothing is written until :meth:`acquire`."""
        storage = getattr(queue, "storage", None)
        if not isinstance(storage, RedisStorage):
            raise ConfigurationError(
                f"RedisSemaphore {name!r}: the queue's storage must be a Redis storage, not {type(storage).__name__}"
            )
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"RedisSemaphore: name must be a non-empty str, not {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"RedisSemaphore {name!r}: value must be an int >= 1, not {value!r}")
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
            raise ConfigurationError(f"RedisSemaphore {name!r}: timeout must be a positive number of seconds")
        self.queue = queue
        self.name = name
        self.value = value
        self.timeout = float(timeout)
        self.key = f"{storage.key_base}semaphore:{name}"
        """The Redis key of the holders (a sorted set)."""
        self._client = storage.client
        self._acquire = self._client.register_script(_ACQUIRE)

    def acquire(self, name: str | None = None) -> str | None:
        """Take a place as holder ``name`` (a fresh one when ``None``); return the holder's name, or ``None``
        when ``value`` others hold it. Acquiring again as a current holder succeeds and refreshes its time."""
        holder = name or uuid.uuid4().hex
        taken = self._acquire(keys=[self.key], args=[repr(time.time()), repr(self.timeout), holder, self.value])
        return holder if taken else None

    def release(self, name: str) -> int:
        """Give holder ``name``'s place back; 1 when it held one, 0 when it did not."""
        return int(self._client.zrem(self.key, name))


def lock_task_semaphore(queue: Any, lock_name: str, value: int = 1, timeout: float | None = None) -> Callable[[F], F]:
    """Decorate a task function so that at most ``value`` calls run at once (put it under ``@task``).

    A call that cannot take a place raises :class:`TaskLockedException` naming the semaphore; the place is
    given back when the call ends, however it ends.
    """
    semaphore = RedisSemaphore(queue, lock_name, value, timeout)

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            holder = semaphore.acquire()
            if holder is None:
                raise TaskLockedException(f"semaphore {lock_name!r} is held by {value} call(s) already")
            try:
                return fn(*args, **kwargs)
            finally:
                semaphore.release(holder)

        return cast(F, inner)

    return decorator
