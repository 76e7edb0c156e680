"""The idle watcher of SQLite, file and ORM storages: how often it probes the store (issue #10, idle CPU)."""

from __future__ import annotations

import threading
import time

from django_tasks_q.backends.watch import ChangeWatch, probe_poller


class Store:
    """A value that changes when written; counts how often it is read."""

    def __init__(self) -> None:
        self.version = 0
        self.reads = 0

    def probe(self) -> int:
        self.reads += 1
        return self.version


def reads_while_waiting(store: Store, poll: object, seconds: float) -> int:
    before = store.reads
    poll(seconds)  # type: ignore[operator]
    return store.reads - before


def test_an_unchanging_store_is_probed_at_the_slow_rate() -> None:
    store = Store()
    poll = probe_poller(store.probe, fast=0.002, slow=0.05, settle=1.0)
    assert poll(0.01) is False  # primes the baseline
    assert reads_while_waiting(store, poll, 0.5) <= 12


def test_a_lone_change_buys_only_a_short_spell_of_fast_polling() -> None:
    store = Store()
    poll = probe_poller(store.probe, fast=0.002, slow=0.05, settle=1.0)
    poll(0.01)
    store.version += 1  # a heartbeat written to the same database
    assert poll(0.5) is True
    assert reads_while_waiting(store, poll, 0.1) >= 10  # a fifth of settle at the fast rate; at most 3 slow
    time.sleep(0.15)
    assert reads_while_waiting(store, poll, 0.5) <= 12  # back to the slow rate


def test_changes_in_quick_succession_keep_fast_polling_for_the_settle_time() -> None:
    store = Store()
    poll = probe_poller(store.probe, fast=0.002, slow=0.05, settle=1.0)
    poll(0.01)
    store.version += 1
    assert poll(0.5) is True
    store.version += 1  # tasks arriving one after the other
    assert poll(0.5) is True
    time.sleep(0.3)  # past the short spell a lone change buys
    assert reads_while_waiting(store, poll, 0.3) >= 20  # at most 7 at the slow rate


def test_a_change_reaches_every_waiter_of_the_watch() -> None:
    store = Store()
    watch = ChangeWatch(probe_poller(store.probe, fast=0.002, slow=0.02, settle=1.0))
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(watch.wait(5.0))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.1)
    store.version += 1
    for waiter in waiters:
        waiter.join(5)
    assert woken == [True, True, True]
