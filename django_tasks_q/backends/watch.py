"""Waking idle consumers of storages that cannot block on a queue: one cheap watcher per storage and process.

A storage whose ``reserve`` cannot wait for a message (SQLite, files, SQL through the ORM) would leave its idle
workers to poll with a backoff, so a task enqueued into an idle queue waits up to the backoff's maximum. A
:class:`ChangeWatch` lets such a storage implement ``wait_for_messages`` instead: one of the waiting threads at a
time calls ``poll(timeout)`` — a cheap, bounded wait that returns ``True`` when the store may have changed (SQLite's
``PRAGMA data_version`` read every few milliseconds, a folder's modification time, a PostgreSQL ``NOTIFY``) — and
wakes the others; a write made in this process wakes them at once through :meth:`ChangeWatch.notify`. Wake-ups
may be spurious (an acknowledgement changes the store too): the woken worker just looks again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ChangeWatch", "probe_poller"]


class ChangeWatch:
    """Waiters of one storage in one process; ``poll(timeout) -> bool`` is called by one waiter at a time."""

    def __init__(self, poll: Callable[[float], bool]) -> None:
        self._poll = poll
        self._cond = threading.Condition()
        self._generation = 0
        self._polling = False

    def notify(self) -> None:
        """Something that may make a message ready happened in this process: wake every waiter now."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait until the store may have changed, ``wake`` is set, or ``timeout`` passes (then ``False``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._generation
            while True:
                if self._generation != seen or (wake is not None and wake.is_set()):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._polling:
                    self._polling = True
                    break
                # Another thread polls and wakes us; look at ``wake`` now and then.
                self._cond.wait(min(remaining, 0.05))
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                changed = self._poll(min(remaining, 0.05))
                with self._cond:
                    if changed:
                        self._generation += 1
                        self._cond.notify_all()
                        return True
                    if self._generation != seen:
                        return True
                if wake is not None and wake.is_set():
                    return True
        finally:
            with self._cond:
                self._polling = False
                self._cond.notify_all()  # a remaining waiter takes the polling over


def probe_poller(
    probe: Callable[[], Any], fast: float = 0.004, slow: float = 0.05, settle: float = 1.0
) -> Callable[[float], bool]:
    """A ``poll`` for :class:`ChangeWatch` from a cheap ``probe()`` whose value changes with the store.

    The probe is read every ``slow`` seconds; after a change, every ``fast`` seconds for a fifth of ``settle``,
    and for the whole of ``settle`` once two changes came less than ``settle`` seconds apart. A busy store is
    watched closely (the second task of a burst is seen within ``fast``), while a lone write now and then (a
    consumer's heartbeat in the same SQLite database) buys only a short spell of fast polling, so that an idle
    consumer costs next to nothing. The first value read is the baseline. A probe that raises counts as a change
    (the caller then looks at the store itself).
    """
    state: dict[str, Any] = {"value": None, "changed": -settle, "fast_until": 0.0, "primed": False}
    lock = threading.Lock()

    def poll(timeout: float) -> bool:
        end = time.monotonic() + timeout
        while True:
            with lock:
                try:
                    value = probe()
                except Exception:
                    return True
                now = time.monotonic()
                if not state["primed"]:
                    state.update(value=value, primed=True)
                elif value != state["value"]:
                    burst = now - state["changed"] < settle
                    state["fast_until"] = max(state["fast_until"], now + (settle if burst else settle / 5))
                    state.update(value=value, changed=now)
                    return True
                pause = fast if now < state["fast_until"] else slow
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))

    return poll
