"""Reliable delivery in files: reservations in ``inflight/`` whose modification time is the lease deadline.

A reserved message is renamed from ``ready/`` into ``inflight/<message_id>.<claims>.<token>.<reserved_at, µs>``.
The fencing token is part of the name, so once a message is reclaimed or acknowledged the old holder's rename
or unlink finds no file and fails. ``renew`` and ``requeue_expired`` hold ``locks/inflight.lock``, so a lease
cannot be renewed between the reaper's check of its deadline and its reclaim.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time

from django_tasks_q.backends.base import (
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    expired_verdict,
    expiry_time,
    made_progress,
    new_token,
)
from django_tasks_q.backends.file.dead_letters import DeadLetterFiles
from django_tasks_q.backends.file.fileops import unlink
from django_tasks_q.backends.file.folder import operation
from django_tasks_q.backends.file.keyvalue import KeyValueFiles
from django_tasks_q.backends.file.names import (
    INFLIGHT_RE,
    MESSAGE_ID_RE,
    READY_RE,
    TOKEN_RE,
    message_priority,
)
from django_tasks_q.backends.file.queue import ReadyQueue

logger = logging.getLogger("django_tasks_q.backends.file")

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

InFlightEntry = tuple[int, str, re.Match[str]]
"""An in-flight file: ``(deadline as mtime, ns; name; the name's match)``."""


def _in_flight_reservation(entry: InFlightEntry, data: bytes) -> Reservation:
    """The reservation an in-flight file stands for."""
    mtime_ns, _name, match = entry
    message_id = match.group(1)
    return Reservation(
        message_id=message_id,
        data=data,
        token=match.group(3),
        attempt=int(match.group(2)),
        deadline=mtime_ns / 1e9,
        reserved_at=int(match.group(4)) / 1e6,
        priority=message_priority(message_id),
    )


class ReliableDelivery(ReadyQueue, KeyValueFiles, DeadLetterFiles):
    """Reserve, acknowledge (with a result), renew, release, bury and reclaim messages with leases.

    Built on the ready queue (a reservation takes a ready message), the key/value files (an acknowledgement
    writes the result) and dead letters (a burial, or a reclaim past the delivery limits, makes one).
    """

    def _inflight_path(self, name: str) -> str:
        return os.path.join(self._dirs["inflight"], name)

    def _find_inflight(self, reservation: Reservation) -> tuple[str, re.Match[str]] | None:
        """The in-flight file of ``reservation`` if it still holds the lease under that token."""
        if not MESSAGE_ID_RE.match(reservation.message_id) or not TOKEN_RE.match(reservation.token or ""):
            return None
        prefix = f"{reservation.message_id}."
        for name in os.listdir(self._dirs["inflight"]):
            if name.startswith(prefix):
                match = INFLIGHT_RE.match(name)
                if match and match.group(3) == reservation.token:
                    return self._inflight_path(name), match
        return None

    def _in_flight(self) -> list[InFlightEntry]:
        """Every in-flight file, earliest deadline first."""
        entries = []
        for name in os.listdir(self._dirs["inflight"]):
            match = INFLIGHT_RE.match(name)
            if match is None:
                continue
            try:
                entries.append((os.lstat(self._inflight_path(name)).st_mtime_ns, name, match))
            except FileNotFoundError:
                continue
        entries.sort(key=lambda item: (item[0], item[1]))
        return entries

    @operation
    def reserve(self, lease: float) -> Reservation | None:
        """Set the next ready file's mtime to the deadline and rename it into ``inflight/`` with a new token."""
        now = time.time()
        deadline_ns = int((now + lease) * 1e9)
        reserved_us = int(now * 1e6)
        for name in self._ready_in_order():
            match = READY_RE.match(name)
            assert match is not None
            message_id, claims = match.group(1), int(match.group(2)) + 1
            source = self._ready_path(name)
            data = self._load("ready", name, message_id, claims - 1, message_priority(message_id))
            if data is None:
                continue
            token = new_token()
            target = self._inflight_path(f"{message_id}.{claims}.{token}.{reserved_us}")
            try:
                os.utime(source, ns=(deadline_ns, deadline_ns))
                os.rename(source, target)
            except FileNotFoundError:
                continue  # another worker claimed it first
            with contextlib.suppress(FileNotFoundError):  # a racing claimer may have touched it: ours wins
                os.utime(target, ns=(deadline_ns, deadline_ns))
            return Reservation(
                message_id=message_id,
                data=data,
                token=token,
                attempt=claims,
                deadline=deadline_ns / 1e9,
                reserved_at=reserved_us / 1e6,
                priority=message_priority(message_id),
            )
        return None

    @operation
    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Unlink the token-named file; with a result, check, write and unlink under ``inflight.lock``.

        A crash between writing the result and the unlink leaves the result written and the message in
        flight, to be redelivered (at least once); a stale holder never writes a result.
        """
        if result is None:
            found = self._find_inflight(reservation)
            return found is not None and unlink(found[0])
        key, value, ttl = result
        value = check_bytes(value, "result value")
        expires_at = expiry_time(ttl, time.time())
        with self._flock("inflight.lock"):
            found = self._find_inflight(reservation)
            if found is None:
                return False
            self._put(key, value, True, expires_at)
            unlink(found[0])
        self._maybe_purge()
        return True

    @operation
    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Under ``inflight.lock``: set the token-named file's mtime to the new deadline."""
        with self._flock("inflight.lock"):
            found = self._find_inflight(reservation)
            if found is None:
                return False
            deadline_ns = int((time.time() + lease) * 1e9)
            try:
                os.utime(found[0], ns=(deadline_ns, deadline_ns))
            except FileNotFoundError:
                return False
            return True

    @operation
    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Rename the token-named file back to ``ready/<message_id>.<claims>``: its original place."""
        found = self._find_inflight(reservation)
        if found is None:
            return False
        path, match = found
        claims = int(match.group(2))
        if not count_attempt:
            claims = max(claims - 1, 0)
        try:
            os.rename(path, self._ready_path(f"{match.group(1)}.{claims}"))
        except FileNotFoundError:
            return False
        return True

    @operation
    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Rename the token-named file into ``dead/`` and write the reason beside it."""
        found = self._find_inflight(reservation)
        if found is None:
            return False
        return self._dead_letter_from(found[0], found[1], reason, detail)

    @operation
    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Under ``inflight.lock``: rename every file whose mtime is past ``now`` back to ready or to dead."""
        reclaimed = []
        with self._flock("inflight.lock"):
            for entry in self._in_flight():
                mtime_ns, name, match = entry
                if mtime_ns / 1e9 > now:
                    break  # earliest deadline first: the rest have not expired either
                path = self._inflight_path(name)
                message_id, claims = match.group(1), int(match.group(2))
                data = self._load("inflight", name, message_id, claims, message_priority(message_id))
                if data is None:
                    continue
                progressed = made_progress(mtime_ns / 1e9, int(match.group(4)) / 1e6, progress_span)
                verdict = expired_verdict(claims, progressed, max_attempts, max_reclaims)
                if verdict is None:
                    try:
                        os.rename(path, self._ready_path(f"{message_id}.{claims}"))
                    except FileNotFoundError:
                        continue
                elif not self._bury_expired(path, match, *verdict):
                    continue
                reservation = _in_flight_reservation(entry, data)
                reclaimed.append(
                    Reclaimed(reservation, verdict is not None, verdict[0] if verdict else "max_attempts")
                )
        return reclaimed

    def _bury_expired(self, path: str, match: re.Match[str], reason: str, detail: str) -> bool:
        """Dead-letter a reservation past its delivery limits; ``False`` if it is gone or must wait for space."""
        try:
            return self._dead_letter_from(path, match, reason, detail)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            # Its reason cannot be written: it stays in flight, for a pass after space returns; the
            # reservations behind it are still reclaimed now.
            logger.warning(
                "FileStorage(%r): message %s reached its delivery limit but cannot be dead-lettered "
                "(%s); it stays in flight until there is space",
                self.name,
                match.group(1),
                exc,
            )
            return False

    @operation
    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """List ``inflight/``: deadline from each file's mtime, token and attempt from its name."""
        entries = {entry[1]: entry for entry in self._in_flight()}
        return [
            _in_flight_reservation(entries[name], data)
            for name, data in self._readable("inflight", entries, limit)
        ]

    @operation
    def in_flight_size(self) -> int:
        """Count the files in ``inflight/``."""
        return sum(1 for name in os.listdir(self._dirs["inflight"]) if INFLIGHT_RE.match(name))
