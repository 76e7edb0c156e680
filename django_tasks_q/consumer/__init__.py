"""The consumer: runs the workers, the scheduler and the lease keeper of one or more queues.

``consumer``
    :class:`Consumer`: starts and supervises the workers and threads, handles stop and restart signals, shuts
    down gracefully.
``options``
    :class:`ConsumerOptions`, how one queue is consumed (the ``CONSUMER`` settings).
``workers``
    The worker loop (reserve, hand to the hub, acknowledge), the running tasks and the lease keeper.
``processes``
    Process workers: their entry point and how they stop with their consumer.
``scheduler``
    Due scheduled messages, periodic tasks, database schedules and expired leases, once per pass.
``outages``
    Storage failures: the start-up verification and the shared backoff of a queue's workers.
``heartbeats``
    What a running consumer records for the admin: heartbeats, queue depths, task history.
``reloading``
    ``run_tasks --reload``: a parent process that restarts the consumer when code changes.

The names below are the public import path ``django_tasks_q.consumer`` (huey's ``huey.consumer``).
"""

from .consumer import Consumer
from .options import WORKER_TYPES, ConsumerOptions
from .outages import StorageUnavailable
from .scheduler import Scheduler

__all__ = ["WORKER_TYPES", "Consumer", "ConsumerOptions", "Scheduler", "StorageUnavailable"]
