"""The keys of one queue's settings dict in ``TASKS_Q``.

Read by :mod:`django_tasks_q.conf` to parse ``TASKS_Q`` and by :mod:`django_tasks_q.huey_settings` to write a
djhuey ``HUEY`` setting as ``TASKS_Q``; it imports nothing, so neither of them imports the other for it.
"""

from __future__ import annotations

HUB_KEYS = {
    "RESULTS": "results",
    "STORE_NONE": "store_none",
    "UTC": "utc",
    "IMMEDIATE": "immediate",
    "SERIALIZER": "serializer",
    "SIGNING": "signing",
    "COMPRESSION": "compression",
    "RESULT_TTL": "result_ttl",
    "LEASE": "lease",
    "MAX_ATTEMPTS": "max_attempts",
    "MAX_RECLAIMS": "max_reclaims",
    "MAX_MESSAGE_SIZE": "max_message_size",
    "ENQUEUE_ON_COMMIT": "enqueue_on_commit",
    "ON_COMMIT_USING": "on_commit_using",
}
"""The queue keys that are the hub's options → the :class:`~django_tasks_q.hub.queue.TaskQueue` argument."""

QUEUE_KEYS = frozenset({"BACKEND", "OPTIONS", "URL", "CONSUMER", *HUB_KEYS})
"""Every key a queue's settings dict may hold."""
