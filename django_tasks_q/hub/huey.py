"""huey's named queue classes: a :class:`~django_tasks_q.hub.queue.TaskQueue` on one kind of storage each."""

from __future__ import annotations

from ..backends.blackhole import BlackHoleStorage
from ..backends.memory import MemoryStorage
from .queue import TaskQueue


class MemoryHuey(TaskQueue):
    """A queue on :class:`~django_tasks_q.backends.memory.MemoryStorage`: per process, not durable."""

    storage_class = MemoryStorage


class BlackHoleHuey(TaskQueue):
    """A queue on :class:`~django_tasks_q.backends.blackhole.BlackHoleStorage`: everything is discarded."""

    storage_class = BlackHoleStorage


class RedisHuey(TaskQueue):
    """A queue on Redis (huey's ``RedisHuey`` parameters: host, port, db, password, url, connection_pool, ...).

    The storage is built with the queue, so conflicting connection arguments raise ConfigurationError at once;
    no connection is opened until the first call.
    """

    storage_path = "django_tasks_q.backends.redis.RedisStorage"
    build_storage_at_init = True


class RedisExpireHuey(RedisHuey):
    """Redis with results that expire after ``expire_time`` seconds (default 86400)."""

    storage_path = "django_tasks_q.backends.redis.RedisExpireStorage"


class PriorityRedisHuey(RedisHuey):
    """Redis with priorities: higher first, first-in first-out within one priority."""

    storage_path = "django_tasks_q.backends.redis.PriorityRedisStorage"


class PriorityRedisExpireHuey(PriorityRedisHuey):
    """Redis with priorities and expiring results."""

    storage_path = "django_tasks_q.backends.redis.PriorityRedisExpireStorage"


class SqliteHuey(TaskQueue):
    """A queue in a SQLite file (filename, cache_mb, fsync, timeout, strict_fifo)."""

    storage_path = "django_tasks_q.backends.sqlite.SqliteStorage"


class FileHuey(TaskQueue):
    """A queue in a folder of files (path, levels, use_thread_lock)."""

    storage_path = "django_tasks_q.backends.file.FileStorage"


class PostgresHuey(TaskQueue):
    """huey's PostgreSQL queue (dsn or connection keywords, blocking, read_timeout) on the ORM storage of the
    PostgreSQL entry of ``DATABASES`` that names the same database (see ``backends/postgres.py``)."""

    storage_path = "django_tasks_q.backends.postgres.PostgresStorage"
