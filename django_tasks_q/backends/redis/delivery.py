"""Reliable delivery and dead letters of the Redis storages: the claim, its lease, and where a message ends.

Every step is one Lua script (see :mod:`django_tasks_q.backends.redis.scripts.queue`), so a message is always in
exactly one place on the server — ready, in flight under a fencing token, or a dead letter — and never only in a
worker's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django_tasks_q.backends.base import (
    DeadLetter,
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    check_key,
    log_unreadable_record,
    new_token,
)
from django_tasks_q.backends.redis import wire
from django_tasks_q.backends.redis.keyspace import QueueKeys
from django_tasks_q.backends.redis.transport import ClientTransport

__all__ = ["CHUNK", "ReliableDelivery"]

CHUNK = 500
"""Entries handled by one script call in bulk operations (flushes, reaping, schedule moves, purges)."""


def _check_lease(lease: object) -> float:
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
        raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
    return float(lease)


class ReliableDelivery:
    """The reliable-delivery and dead-letter half of :class:`~django_tasks_q.backends.redis.RedisStorage`."""

    name: str
    expire_time: float | None
    _keys: QueueKeys
    _transport: ClientTransport
    _take: Callable[..., Any]
    _scores: Callable[[int | None], tuple[str, str]]

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds (one script), waiting up to ``block_timeout``.

        The values of the ``peek`` keys are read by the same script (the feature ``peek_on_reserve``). While the
        queue is empty, the wait for a wake-up token and the next claim are sent together; the lease is then
        counted from before the wait, which is therefore kept to a quarter of it at most.
        """
        lease = _check_lease(lease)
        return self._take(
            lambda: self._reserve_once(lease, peek),
            lambda seconds: self._reserve_once(lease, peek, min(seconds, lease / 4)),
        )

    def _reserve_once(self, lease: float, peek: Sequence[str] = (), wait: float = 0.0) -> Reservation | None:
        """One claim; after a ``BLPOP`` of up to ``wait`` seconds on the notify list when ``wait`` is not 0."""
        keys = self._keys
        token = new_token()
        now = time.time()
        deadline = now + lease
        script_keys = (keys.ready, keys.inflight, keys.notify, *[keys.value(check_key(key)) for key in peek])
        args = (keys.base, token, repr(now), repr(deadline))
        if wait:
            reply = self._transport.wait_then_script(keys.notify, wait, "reserve", script_keys, args)
        else:
            reply = self._transport.script("reserve", script_keys, args)
        row, buried = reply
        self._log_unreadable(buried)
        return wire.reservation(row, token, now, deadline, bool(peek))

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Delete a finished message and write its result, in one script, if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        keys: tuple[str, ...] = (self._keys.inflight, self._keys.message(reservation.message_id))
        args: tuple[Any, ...] = (self._keys.base, reservation.message_id, reservation.token)
        if result is not None:
            result_keys, result_args = self._result_write(result)
            keys += result_keys
            args += result_args
        return bool(self._transport.script("ack", keys, args))

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float, peek: Sequence[str] = ()
    ) -> tuple[bool, Reservation | None]:
        """``ack`` and a ``reserve`` that does not wait (reading the ``peek`` keys), in one script."""
        if not reservation.token or not reservation.message_id:
            return False, self._reserve_once(float(lease), peek)
        lease = _check_lease(lease)
        token = new_token()
        now = time.time()
        deadline = now + lease
        k = self._keys
        keys: tuple[str, ...] = (
            k.inflight, k.message(reservation.message_id), k.ready, k.notify,
            *[k.value(check_key(key)) for key in peek],
        )  # fmt: skip
        args: tuple[Any, ...] = (
            k.base, reservation.message_id, reservation.token, token, repr(now), repr(deadline), len(peek)
        )
        if result is not None:
            result_keys, result_args = self._result_write(result)
            keys += result_keys
            args += result_args
        acked, row, buried = self._transport.script("ack_and_reserve", keys, args)
        self._log_unreadable(buried)
        return bool(acked), wire.reservation(row, token, now, deadline, bool(peek))

    def _log_unreadable(self, buried: Sequence[Any]) -> None:
        """Log each message a script dead-lettered unread (``buried``: id, problem, id, problem ...)."""
        for i in range(0, len(buried), 2):
            where = f"message hash {self._keys.message(wire.text(buried[i]))!r}"
            log_unreadable_record(self.name, where, wire.text(buried[i + 1]))

    def _result_write(self, result: ResultWrite) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The keys and arguments that make an ``ack`` script also store ``result``."""
        key, value, ttl = result
        check_key(key)
        check_bytes(value, "result value")
        ttl = self.expire_time if ttl is None else ttl
        return self._keys.value_keys(key), (key, value, wire.ttl_ms(ttl))

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Set the lease deadline to ``now + lease`` if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        deadline = repr(time.time() + float(lease))
        keys = (self._keys.inflight, self._keys.message(reservation.message_id))
        args = (self._keys.base, reservation.message_id, reservation.token, deadline)
        return bool(self._transport.script("renew", keys, args))

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Put a reserved message back in its original place (claim taken back unless ``count_attempt``)."""
        if not reservation.token or not reservation.message_id:
            return False
        k = self._keys
        keys = (k.inflight, k.ready, k.notify, k.message(reservation.message_id))
        args = (k.base, reservation.message_id, reservation.token, "1" if count_attempt else "0")
        return bool(self._transport.script("release", keys, args))

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Move a reserved message to the dead letters if the token still matches."""
        if not reservation.token or not reservation.message_id:
            return False
        message_id = reservation.message_id
        k = self._keys
        keys = (k.inflight, k.message(message_id), k.dead, k.dead_letter(message_id))
        args = (k.base, message_id, reservation.token, str(reason), str(detail), repr(time.time()))
        return bool(self._transport.script("bury", keys, args))

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim every reservation whose deadline is ``<= now`` (in chunks, each one atomic)."""
        when = wire.timestamp(now, "now")
        cap = "" if max_attempts is None else str(int(max_attempts))
        reclaim_cap = "" if max_reclaims is None else str(int(max_reclaims))
        span = "" if progress_span is None else repr(float(progress_span))
        k = self._keys
        keys = (k.inflight, k.ready, k.notify, k.dead)
        reclaimed: list[Reclaimed] = []
        while True:
            examined, buried, *flat = self._transport.script(
                "requeue_expired_chunk", keys, (k.base, when, cap, CHUNK, repr(time.time()), reclaim_cap, span)
            )
            self._log_unreadable(buried)
            for reservation, (dead,) in wire.reservations(flat, 8):
                reason = wire.text(dead)
                reclaimed.append(Reclaimed(reservation, bool(reason), reason or "max_attempts"))
            if examined < CHUNK:
                return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Up to ``limit`` current reservations, earliest deadline first."""
        stop = wire.stop_index(limit)
        if stop is None:
            return []
        flat = self._transport.script("in_flight", (self._keys.inflight,), (self._keys.base, stop))
        return [reservation for reservation, _ in wire.reservations(flat, 7)]

    def in_flight_size(self) -> int:
        """How many messages are reserved (one ``ZCARD``)."""
        return int(self._transport.command("zcard", "ZCARD", self._keys.inflight))

    # ------------------------------------------------------------------ dead letters

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Store ``data`` as a dead letter; return its id."""
        check_bytes(data, "data")
        prio, score = self._scores(priority)
        args = (self._keys.base, data, str(reason), str(detail), int(attempts), repr(time.time()), prio, score)
        return wire.text(self._transport.script("add_dead_letter", (self._keys.seq, self._keys.dead), args))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first."""
        stop = wire.stop_index(limit)
        if stop is None:
            return []
        return wire.dead_letters(self._transport.script("dead_letters", (self._keys.dead,), (self._keys.base, stop)))

    def dead_letter_count(self) -> int:
        """How many dead letters there are (one ``ZCARD``)."""
        return int(self._transport.command("zcard", "ZCARD", self._keys.dead))

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter to the back of its priority in the queue, claims reset; ``False`` if unknown."""
        k = self._keys
        keys = (k.dead, k.seq, k.ready, k.notify)
        return bool(self._transport.script("requeue_dead_letter", keys, (k.base, str(dead_letter_id))))

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters (by ids, by age, both, or all); return how many."""
        limit = "" if older_than is None else wire.timestamp(older_than, "older_than")
        keys, base = (self._keys.dead,), self._keys.base
        deleted = 0
        if ids is None:
            while True:
                count = int(self._transport.script("purge_dead_chunk", keys, (base, limit, CHUNK)))
                deleted += count
                if count < CHUNK:
                    return deleted
        wanted = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            deleted += int(self._transport.script("purge_dead_ids", keys, (base, limit, *chunk)))
        return deleted
