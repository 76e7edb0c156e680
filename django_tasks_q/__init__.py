"""django-tasks-q: a complete, huey-class task queue for Django that never loses a task.

The public API: the hub (:class:`TaskQueue`, also ``Huey``) and the huey-style
queue classes, tasks and results, ``crontab``, locks, signals and exceptions.
"""

from .conf import queues
from .crontab import crontab
from .decorators import lock_task, periodic_task, rate_limit, task
from .exceptions import (
    CancelExecution,
    ConfigurationError,
    EnqueueError,
    HueyException,
    InvalidEta,
    InvalidMessage,
    InvalidOption,
    InvalidPriority,
    MessageTooLarge,
    RateLimitExceeded,
    ResultTimeout,
    RetryTask,
    SerializationError,
    StorageError,
    TaskException,
    TaskLockedException,
    TaskNotRegistered,
    TasksQError,
    TaskTimeout,
)
from .hub.huey import (
    BlackHoleHuey,
    FileHuey,
    MemoryHuey,
    PostgresHuey,
    PriorityRedisExpireHuey,
    PriorityRedisHuey,
    RedisExpireHuey,
    RedisHuey,
    SqliteHuey,
)
from .hub.queue import Huey, TaskQueue
from .result import ChordResult, Result, ResultGroup
from .task import PeriodicTask, Task, TaskWrapper
from .task_groups import chord, group

__version__ = "0.1.0"

__all__ = [
    "BlackHoleHuey",
    "CancelExecution",
    "ChordResult",
    "ConfigurationError",
    "EnqueueError",
    "FileHuey",
    "Huey",
    "HueyException",
    "InvalidEta",
    "InvalidMessage",
    "InvalidOption",
    "InvalidPriority",
    "MemoryHuey",
    "MessageTooLarge",
    "PeriodicTask",
    "PostgresHuey",
    "PriorityRedisExpireHuey",
    "PriorityRedisHuey",
    "RateLimitExceeded",
    "RedisExpireHuey",
    "RedisHuey",
    "Result",
    "ResultGroup",
    "ResultTimeout",
    "RetryTask",
    "SerializationError",
    "SqliteHuey",
    "StorageError",
    "Task",
    "TaskException",
    "TaskLockedException",
    "TaskNotRegistered",
    "TaskQueue",
    "TaskTimeout",
    "TaskWrapper",
    "TasksQError",
    "__version__",
    "chord",
    "crontab",
    "group",
    "lock_task",
    "periodic_task",
    "queues",
    "rate_limit",
    "task",
]
