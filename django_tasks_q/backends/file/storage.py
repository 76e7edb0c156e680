"""``FileStorage``: the whole storage contract in a folder of files (see the package documentation)."""

from __future__ import annotations

import os

from django_tasks_q.backends.file.fileops import remove
from django_tasks_q.backends.file.folder import operation
from django_tasks_q.backends.file.inflight import ReliableDelivery

__all__ = ["FileStorage"]


class FileStorage(ReliableDelivery):
    """Storage in a folder of files: durable, reliable (at least once), shared by the processes of one host.

    See the documentation of :mod:`django_tasks_q.backends.file` for the parameters, the layout on disk and
    how each operation is atomic. Not for network file systems.
    """

    blocking = False
    priority = True
    reliable = True

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
