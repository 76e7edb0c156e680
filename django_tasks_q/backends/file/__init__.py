"""File storage: the whole contract in a folder, maildir style, safe for several processes on one host.

Parameters (huey's ``FileStorage`` names and defaults)
------------------------------------------------------

``path='/tmp/huey'``
    The base folder. This queue's files live in ``path/<name>/`` (the queue name, with characters other than
    letters, digits, ``-``, ``_`` and ``.`` percent-encoded), so several queues can share one ``path``. The
    folders are created on the first operation, not when the storage is built. A relative path is resolved
    against the working directory when the storage is created.
``levels=2``
    How many levels of hashed sub-folders hold key/value entries and counters (``data/3f/a2/<sha256>``), so
    that no folder grows too large. It is part of the layout: changing it hides the existing values.
``fsync=False``
    ``False``: a file is complete before it is renamed into place, so a crash of any process never exposes half
    a message or loses one the call returned for; a power failure may lose the last writes (a message file cut
    short by it fails verification and becomes a dead letter; it is never half-run). ``True``: every write is ``fsync``-ed (the file,
    then its folder) before the call returns, durable across a power failure, at several times the cost of an
    enqueue. The same trade as the SQLite storage's ``fsync``.
``use_thread_lock=True``
    Serialize this storage's operations within the process with a lock. Operations are safe without it (every
    one is atomic between processes, hence between threads); the lock only saves threads from racing each
    other for the same files. ``False`` lets threads work in parallel.

Layout of ``path/<name>/``
--------------------------

``tmp/``
    Every file is first written here under a random name (``fsync``-ed when ``fsync=True``), then renamed into
    place; a crash leaves at most an orphan here, never a half-written file elsewhere. Orphans older than an hour
    are removed.
``ready/<message_id>.<claims>``
    Ready messages. ``message_id`` is ``<inverted priority, 16 hex digits>-<enqueue time, ns, 20 digits>-
    <32 random hex digits>``, so the sorted folder listing is the delivery order (highest priority first,
    then first in, first out). ``claims`` counts the deliveries so far. The file holds the message's bytes.
``inflight/<message_id>.<claims>.<token>.<reserved_at, µs>``
    Reserved messages. The file's modification time is the lease deadline (``os.utime`` renews it); the
    fencing token is part of the name, so once a message is reclaimed or acknowledged the old holder's rename
    or unlink finds no file and fails.
``schedule/<due time, ns>-<sequence>-<random>.<priority>``
    Scheduled messages, in due order.
``data/<levels of hash folders>/<sha256 of key>``
    Key/value entries: one JSON header line (key, result flag, expiry) and the value's bytes.
``counters/<levels of hash folders>/<sha256 of key>``
    ``incr`` counters (JSON: key, value, expiry).
``dead/<order>-<id>.<attempts>.<priority>.msg`` and ``dead/<order>-<id>.json``
    A dead letter's bytes and its reason and detail. ``order`` is the time it was given up on (ns).
``locks/``
    Lock files for ``fcntl.flock``: ``inflight.lock`` and ``kv-<xx>.lock`` (256 stripes by key hash).
``quarantine/<order>-<id>``
    Created when first needed: what stood in ``ready/``, ``inflight/`` or ``schedule/`` under a message's name
    but was not a regular file of at most ``max_file_size`` bytes (a folder, a FIFO, a device, a symbolic
    link, a huge or sparse file). It is moved here unread, and a dead letter with the reason
    ``unreadable_record``, empty bytes and a detail naming what it was and where it went is written beside
    the others; purging or requeueing that dead letter removes it from here.

How each operation is atomic
----------------------------

* ``enqueue`` / ``add_to_schedule`` / ``put_data`` / dead letters: write to ``tmp/``, ``rename`` into place (with
  ``fsync=True``: ``fsync`` the file before the rename and the folder after it). A reader sees the whole file or
  nothing.
* ``reserve``: set the ready file's mtime to the new deadline, then ``rename`` it into ``inflight/`` under a
  name carrying a fresh token. Exactly one of several racing processes' renames succeeds; the others move on
  to the next file. The message is on disk, in ``ready/`` or ``inflight/``, at every instant.
* ``dequeue`` / ``read_schedule``: read the file, then ``unlink`` it; only the caller whose ``unlink``
  succeeds returns it.
* ``release`` / ``bury`` / ``requeue_expired`` / ``enqueue_due`` / ``requeue_dead_letter``: one ``rename``
  (back to ``ready/`` under the original ``message_id``, hence the original place; or into ``dead/``, after
  staging the reason file, so that a full disk leaves the message where it was).
* Message files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` before a byte is read,
  so a symbolic link, a FIFO, a device or a file over ``max_file_size`` never blocks a worker or fills its
  memory: it is set aside into ``quarantine/`` (one ``rename``) and dead-lettered instead.
* ``ack``: ``unlink`` of the token-named file. With a result, under the ``inflight.lock`` ``flock``: check the
  file, write the result, then unlink; a crash in between leaves the result written and the message in flight,
  to be redelivered (at least once), and a stale holder never writes a result.
* ``renew`` and ``requeue_expired`` hold ``inflight.lock``, so a lease cannot be renewed between the reaper's
  check of its deadline and its reclaim.
* ``put_if_empty`` / ``incr`` / ``put_data`` and the purge of expired values hold the key's stripe lock;
  ``put_if_empty`` creates the entry with ``link()``, which fails if the name exists. ``pop_data`` and
  ``delete_data`` take the entry by renaming it into ``tmp/`` first: exactly one caller gets it.

Requirements and limits: a POSIX system (``fcntl``), one host (locks and renames are not reliable on network
file systems such as NFS or SMB: do not use this storage there), a file system with sub-second modification
times for short leases, and clocks that do not jump backwards (file names carry wall-clock times).
Enumerating results and purging expired values walk the whole ``data/`` tree.

The package's modules: ``names`` (the names on disk), ``fileops`` (reading and removing files safely),
``folder`` (options, layout, locks and atomic writes), ``queue`` (``ready/`` and ``schedule/``), ``keyvalue``
(``data/`` and ``counters/``), ``dead_letters`` (``dead/``), ``inflight`` (reservations and leases) and
:class:`FileStorage` here, the parts together.
"""

from __future__ import annotations

import os

from django_tasks_q.backends.features import Feature
from django_tasks_q.backends.file.fileops import remove
from django_tasks_q.backends.file.folder import operation
from django_tasks_q.backends.file.inflight import ReliableDelivery

__all__ = ["FileStorage"]


class FileStorage(ReliableDelivery):
    """Storage in a folder of files: durable, reliable (at least once), shared by the processes of one host.

    See the module documentation for the parameters, the layout on disk and how each operation is atomic.
    Not for network file systems.
    """

    blocking = False
    priority = True
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.WAIT_FOR_MESSAGES, Feature.REAP_BY_PROGRESS})

    def __repr__(self) -> str:
        return f"<FileStorage name={self.name!r} path={self.path!r}>"

    @operation
    def flush_all(self) -> None:
        """Unlink every message, scheduled item, reservation, dead letter, entry and counter of this queue."""
        for area in ("ready", "schedule", "dead"):
            folder = self._dirs[area]
            for name in os.listdir(folder):
                remove(os.path.join(folder, name))
        remove(os.path.join(self.root, "quarantine"))
        with self._flock("inflight.lock"):
            for name in os.listdir(self._dirs["inflight"]):
                remove(self._inflight_path(name))
        for area in ("data", "counters"):
            self._unlink_entries(area)
