"""The Lua scripts of the Redis storages, by name (each runs atomically, in one round trip).

:mod:`.parts` holds the functions several scripts share and the conventions they all follow; :mod:`.queue` the
scripts of the queue, the schedule and reliable delivery; :mod:`.data` those of key/value data, results and dead
letters. The key layout they work on is described in :mod:`django_tasks_q.backends.redis.keyspace`.
"""

from __future__ import annotations

from django_tasks_q.backends.redis.scripts.data import (
    ADD_DEAD_LETTER,
    DEAD_LETTERS,
    DELETE_DATA,
    INCR,
    POP_DATA,
    PURGE_DEAD_CHUNK,
    PURGE_DEAD_IDS,
    PUT_DATA,
    PUT_IF_EMPTY,
    REQUEUE_DEAD_LETTER,
    RESULT_COUNT,
    RESULTS_SCAN,
    WAIT_GET,
)
from django_tasks_q.backends.redis.scripts.queue import (
    ACK,
    ACK_AND_RESERVE,
    ADD_TO_SCHEDULE,
    BURY,
    DEQUEUE,
    ENQUEUE,
    ENQUEUE_DUE_CHUNK,
    ENQUEUE_MANY,
    FLUSH_CHUNK,
    IN_FLIGHT,
    LIST_BODIES,
    READ_SCHEDULE_CHUNK,
    RELEASE,
    RENEW,
    REQUEUE_EXPIRED_CHUNK,
    RESERVE,
)

__all__ = ["SCRIPTS"]

SCRIPTS: dict[str, str] = {
    "enqueue": ENQUEUE,
    "enqueue_many": ENQUEUE_MANY,
    "dequeue": DEQUEUE,
    "reserve": RESERVE,
    "list_bodies": LIST_BODIES,
    "flush_chunk": FLUSH_CHUNK,
    "add_to_schedule": ADD_TO_SCHEDULE,
    "read_schedule_chunk": READ_SCHEDULE_CHUNK,
    "enqueue_due_chunk": ENQUEUE_DUE_CHUNK,
    "put_data": PUT_DATA,
    "put_if_empty": PUT_IF_EMPTY,
    "pop_data": POP_DATA,
    "delete_data": DELETE_DATA,
    "wait_get": WAIT_GET,
    "incr": INCR,
    "results_scan": RESULTS_SCAN,
    "result_count": RESULT_COUNT,
    "ack": ACK,
    "ack_and_reserve": ACK_AND_RESERVE,
    "renew": RENEW,
    "release": RELEASE,
    "bury": BURY,
    "requeue_expired_chunk": REQUEUE_EXPIRED_CHUNK,
    "in_flight": IN_FLIGHT,
    "add_dead_letter": ADD_DEAD_LETTER,
    "dead_letters": DEAD_LETTERS,
    "requeue_dead_letter": REQUEUE_DEAD_LETTER,
    "purge_dead_chunk": PURGE_DEAD_CHUNK,
    "purge_dead_ids": PURGE_DEAD_IDS,
}
"""Script name → Lua source; the storage's transport registers each one with its client."""
