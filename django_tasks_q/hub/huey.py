"""huey's named queue classes (``RedisHuey``, ``SqliteHuey`` ...), one per row of the storage table that names one.

Each is a real subclass of :class:`~django_tasks_q.hub.queue.TaskQueue` named as in huey and living in this
module (so that it pickles and shows as ``django_tasks_q.hub.huey.RedisHuey``); it only fixes the storage, by the
dotted path of :data:`~django_tasks_q.backends.registry.STORAGES`, imported on first use. ``django_tasks_q``
exports them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backends.registry import STORAGES, StorageEntry
from .queue import TaskQueue

__all__ = [
    "QUEUE_CLASSES",
    "BlackHoleHuey",
    "FileHuey",
    "MemoryHuey",
    "PostgresHuey",
    "PriorityRedisExpireHuey",
    "PriorityRedisHuey",
    "RedisExpireHuey",
    "RedisHuey",
    "SqliteHuey",
    "queue_class",
]


def queue_class(entry: StorageEntry) -> type[TaskQueue]:
    """The huey-named queue class of a row of the storage table (one whose ``huey_class`` is set)."""
    name = entry.huey_class
    if name is None:
        raise ValueError(f"the storage {entry.class_path} has no huey queue class")
    setting = f" (``BACKEND: {entry.alias!r}`` in settings)" if entry.alias else ""
    doc = (
        f"huey's ``{name}``: a queue on :class:`{entry.class_path}`{setting}.\n\n"
        "Keyword arguments beyond the queue's own are that storage's options."
    )
    if entry.built_with_queue:
        doc += (
            " The storage is built with the queue, so bad storage arguments raise ConfigurationError at once; "
            "nothing connects until the first call."
        )
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": doc,
        "storage_path": entry.class_path,
        "build_storage_at_init": entry.built_with_queue,
    }
    return type(name, (TaskQueue,), namespace)


QUEUE_CLASSES: dict[str, type[TaskQueue]] = {
    entry.huey_class: queue_class(entry) for entry in STORAGES if entry.huey_class
}
"""Every huey-named queue class, by name, in table order."""

if TYPE_CHECKING:
    # A type checker sees each name as the hub class itself, so that subclassing one type-checks.
    BlackHoleHuey = FileHuey = MemoryHuey = PostgresHuey = PriorityRedisExpireHuey = TaskQueue
    PriorityRedisHuey = RedisExpireHuey = RedisHuey = SqliteHuey = TaskQueue
else:
    globals().update(QUEUE_CLASSES)
