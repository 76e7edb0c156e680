"""Dead letters of the file storage: ``dead/<order>-<id>.<attempts>.<priority>.msg`` and its reason file.

``order`` is the time the message was given up on (ns), so the sorted listing is oldest first; the reason file
``dead/<order>-<id>.json`` holds the reason and detail. A message is moved into ``dead/`` with one rename, after
its reason was staged, so that a full disk leaves the message where it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable

from django_tasks_q.backends.base import DeadLetter, check_bytes, new_token
from django_tasks_q.backends.file.fileops import read_file, remove, unlink
from django_tasks_q.backends.file.folder import FileFolder, operation, reason_record
from django_tasks_q.backends.file.names import checked_priority, message_priority, new_message_id, next_seq

_UNRECORDED = ("unknown", "the reason was not recorded (the process stopped while dead-lettering)")


class DeadLetterFiles(FileFolder):
    """Messages given up on: kept with their reason, listed, requeued or purged."""

    def _dead_letter_from(self, path: str, match: re.Match[str], reason: str, detail: str) -> bool:
        """Rename an in-flight file into ``dead/`` (the fence), then put its reason beside it.

        The reason is staged first: when it cannot be written (a full disk) nothing moves and the message
        stays in flight for a later attempt, rather than becoming a dead letter whose reason is lost.
        """
        message_id, claims = match.group(1), int(match.group(2))
        key = f"{next_seq():020d}-{message_id}"
        staged = self._stage(reason_record(reason, detail))
        try:
            os.rename(path, self._dead_path(f"{key}.{claims}.{message_priority(message_id)}.msg"))
        except BaseException as exc:
            unlink(staged)
            if isinstance(exc, FileNotFoundError):  # acknowledged or reclaimed meanwhile
                return False
            raise
        os.rename(staged, self._dead_path(f"{key}.json"))
        self._sync_dir(self._dirs["dead"])
        return True

    def _forget_letter(self, order_and_id: str) -> None:
        """Remove a dead letter's reason file and what it set aside in ``quarantine/``."""
        unlink(self._dead_path(f"{order_and_id}.json"))
        remove(os.path.join(self.root, "quarantine", order_and_id))

    @operation
    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Write the reason file, then the message file (each staged and renamed into ``dead/``)."""
        data = check_bytes(data, "data")
        prio = "n" if priority is None else str(checked_priority(priority))
        letter_id = new_token()
        key = f"{next_seq():020d}-{letter_id}"
        self._write_reason(key, reason, detail)
        self._publish(data, self._dead_path(f"{key}.{max(int(attempts), 0)}.{prio}.msg"))
        return letter_id

    @operation
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Read ``dead/``, oldest first; a letter whose reason file is missing (a crash) says so."""
        entries = {match.group(0): match for match in self._dead_entries()}
        letters: list[DeadLetter] = []
        for name, data in self._readable("dead", entries, limit):
            match = entries[name]
            reason, detail = _UNRECORDED
            meta = read_file(self._dead_path(f"{match.group(1)}.json"))
            if meta is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    parsed = json.loads(meta)
                    reason, detail = str(parsed["reason"]), str(parsed["detail"])
            prio = match.group(5)
            letters.append(
                DeadLetter(
                    id=match.group(3),
                    data=data,
                    reason=reason,
                    detail=detail,
                    attempts=int(match.group(4)),
                    failed_at=int(match.group(2)) / 1e9,
                    priority=None if prio == "n" else int(prio),
                )
            )
        return letters

    @operation
    def dead_letter_count(self) -> int:
        """Count the dead letters' message files."""
        return len(self._dead_entries())

    @operation
    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Rename the letter's message file into ``ready/`` (new id: back of its priority, claims 0)."""
        for match in self._dead_entries():
            if match.group(3) != dead_letter_id:
                continue
            prio = 0 if match.group(5) == "n" else int(match.group(5))
            target = self._ready_path(f"{new_message_id(prio)}.0")
            try:
                os.rename(self._dead_path(match.group(0)), target)
            except FileNotFoundError:
                continue
            self._forget_letter(match.group(1))
            self._sync_dir(self._dirs["ready"])
            return True
        return False

    @operation
    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Unlink the chosen letters' message files (then their reason files)."""
        wanted = None if ids is None else {str(i) for i in ids}
        deleted = 0
        for match in self._dead_entries():
            if wanted is not None and match.group(3) not in wanted:
                continue
            if older_than is not None and not int(match.group(2)) / 1e9 < older_than:
                continue
            if remove(self._dead_path(match.group(0))):
                deleted += 1
            self._forget_letter(match.group(1))
        return deleted
