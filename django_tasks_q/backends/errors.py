"""The errors a storage raises, defined beside the storages so that no storage imports the layers above it.

:mod:`django_tasks_q.exceptions` exports every one of them; that is the path to catch them by
(``django_tasks_q.exceptions.StorageError``).
"""

from __future__ import annotations

from collections.abc import Iterable


class TasksQError(Exception):
    """Base class of every error raised by django-tasks-q."""


class ConfigurationError(TasksQError):
    """A queue, storage or task was configured with a value that cannot work.

    ``check_id`` is the system check that reports the mistake when it is found in settings (for example
    ``"django_tasks_q.E005"``; empty when none does) and ``hint`` says how to fix it, as a check's hint does.
    """

    check_id: str = ""
    hint: str | None = None

    def __init__(self, message: str = "", *, check_id: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        if check_id is not None:
            self.check_id = check_id
        if hint is not None:
            self.hint = hint


class UnknownOptions(ConfigurationError):
    """Settings give a storage options its constructor does not take (system check ``django_tasks_q.E005``).

    ``storage_class`` is the storage, ``unknown`` the refused option names (sorted) and ``accepted`` every name
    it takes (sorted).
    """

    check_id = "django_tasks_q.E005"

    def __init__(self, where: str, storage_class: type, unknown: Iterable[str], accepted: Iterable[str]) -> None:
        self.storage_class = storage_class
        self.unknown = sorted(unknown)
        self.accepted = sorted(accepted)
        super().__init__(
            f"{where}: {storage_class.__name__} does not accept {self.unknown}", hint=f"It accepts {self.accepted}."
        )


class MissingDependency(ConfigurationError):
    """A storage needs a package that is not installed (system check ``django_tasks_q.E006``)."""

    check_id = "django_tasks_q.E006"


class StorageError(TasksQError):
    """The storage could not be reached or refused an operation; the cause is chained."""
