"""The ready queue (``ready/``) and the schedule (``schedule/``) of the file storage.

A ready message's name starts with its message id, so the sorted listing of ``ready/`` is the delivery order;
a scheduled item's name starts with its due time, so the sorted listing of ``schedule/`` is the due order.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Iterator

from django_tasks_q.backends.base import new_token
from django_tasks_q.backends.file.fileops import remove, unlink
from django_tasks_q.backends.file.folder import FileFolder, operation
from django_tasks_q.backends.file.names import (
    READY_RE,
    SCHEDULE_RE,
    checked_priority,
    due_ns,
    message_priority,
    new_message_id,
    next_seq,
)
from django_tasks_q.backends.watch import ChangeWatch, probe_poller


class ReadyQueue(FileFolder):
    """Enqueueing, dequeueing and listing ready messages, and the schedule of messages due later."""

    _watch: ChangeWatch | None = None
    """What ``wait_for_messages`` waits on, made by the first wait in each process."""
    _watch_pid = 0

    # ------------------------------------------------------------------ the queue

    def _ready_names(self) -> list[str]:
        return sorted(name for name in os.listdir(self._dirs["ready"]) if READY_RE.match(name))

    def _ready_in_order(self) -> Iterator[str]:
        """Ready names in delivery order, lazily: a heap, so taking the first few costs one listing."""
        names = os.listdir(self._dirs["ready"])
        heapq.heapify(names)
        while names:
            name = heapq.heappop(names)
            if READY_RE.match(name):
                yield name

    @operation
    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Write the message to ``tmp/`` and rename it into ``ready/``."""
        data = self._checked(data)
        message_id = new_message_id(checked_priority(priority))
        self._publish(data, self._ready_path(f"{message_id}.0"))
        self._wake_waiters()

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait for a change of ``ready/``: its modification time, read every 50 ms (every 4 ms for a second once
        two changes came less than a second apart) by one waiting thread per process; an enqueue of this process
        wakes the waiters at once."""
        self._ensure_layout()
        watch = self._watch
        if watch is None or self._watch_pid != os.getpid():
            ready = self._dirs["ready"]
            watch = self._watch = ChangeWatch(probe_poller(lambda: os.stat(ready).st_mtime_ns))
            self._watch_pid = os.getpid()
        return watch.wait(timeout, wake)

    def _wake_waiters(self) -> None:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            watch.notify()

    def _published_to_ready(self) -> None:
        """After renames into ``ready/``: make them durable (``fsync=True``) and wake this process's waiters."""
        self._sync_dir(self._dirs["ready"])
        self._wake_waiters()

    @operation
    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Publish the messages in order under the thread lock: each is written to ``tmp/``, then each is renamed
        into ``ready/`` (with ``fsync=True``: each file is fsynced, and ``ready/`` once for the whole list).

        Each message is atomic, the list is not: after a failure the messages renamed before it are published
        and the rest are removed from ``tmp/``.
        """
        checked = [(self._checked(data), checked_priority(priority)) for data, priority in items]
        staged: list[tuple[str, str]] = []
        published = 0
        try:
            for data, priority in checked:
                staged.append((self._stage(data), self._ready_path(f"{new_message_id(priority)}.0")))
            for source, destination in staged:
                os.rename(source, destination)
                published += 1
        finally:
            for source, _destination in staged[published:]:
                unlink(source)
            if published:
                self._published_to_ready()

    @operation
    def dequeue(self) -> bytes | None:
        """Read the first ready file and unlink it; the caller whose unlink succeeds has it."""
        for name in self._ready_in_order():
            path = self._ready_path(name)
            match = READY_RE.match(name)
            assert match is not None
            message_id = match.group(1)
            data = self._load("ready", name, message_id, int(match.group(2)), message_priority(message_id))
            if data is not None and unlink(path):
                return data
        return None

    @operation
    def queue_size(self) -> int:
        """Count the files in ``ready/``."""
        return len(self._ready_names())

    @operation
    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Read ready files in delivery order (the sorted listing)."""
        return [data for _name, data in self._readable("ready", self._ready_in_order(), limit)]

    @operation
    def flush_queue(self) -> None:
        """Unlink every ready file."""
        for name in self._ready_names():
            remove(self._ready_path(name))

    # ------------------------------------------------------------------ the schedule

    def _schedule_names(self) -> list[str]:
        return sorted(name for name in os.listdir(self._dirs["schedule"]) if SCHEDULE_RE.match(name))

    def _due_names(self, timestamp: float) -> list[str]:
        cutoff = due_ns(timestamp)
        return [name for name in self._schedule_names() if int(name[:20]) <= cutoff]

    def _schedule_path(self, name: str) -> str:
        return os.path.join(self._dirs["schedule"], name)

    @operation
    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Write the item to ``tmp/``, rename it into ``schedule/`` (due time and priority in its name)."""
        data = self._checked(data)
        prio = checked_priority(priority)
        name = f"{due_ns(timestamp):020d}-{next_seq():020d}-{new_token()}.{prio}"
        self._publish(data, self._schedule_path(name))

    @operation
    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Read each due file and unlink it; an item is returned by the caller whose unlink succeeds."""
        items = []
        for name in self._due_names(timestamp):
            path = self._schedule_path(name)
            data = self._load("schedule", name, new_token(), 0, int(name.rsplit(".", 1)[1]))
            if data is not None and unlink(path):
                items.append(data)
        return items

    @operation
    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Read scheduled files, earliest first."""
        return [data for _name, data in self._readable("schedule", self._schedule_names(), limit)]

    @operation
    def schedule_size(self) -> int:
        """Count the files in ``schedule/``."""
        return len(self._schedule_names())

    @operation
    def flush_schedule(self) -> None:
        """Unlink every scheduled file."""
        for name in self._schedule_names():
            remove(self._schedule_path(name))

    @operation
    def enqueue_due(self, timestamp: float) -> int:
        """Rename each due file into ``ready/`` with a new message id (its priority kept); one rename each."""
        moved = 0
        for name in self._due_names(timestamp):
            prio = int(name.rsplit(".", 1)[1])
            target = self._ready_path(f"{new_message_id(prio)}.0")
            try:
                os.rename(self._schedule_path(name), target)
            except FileNotFoundError:
                continue  # another scheduler moved it
            moved += 1
        if moved:
            self._published_to_ready()
        return moved
