"""What the tasks admin's pages and actions both need: the queues, access checks, the action log, breadcrumbs.

Pages and actions reach a queue through its hub only (:func:`get_hub`), never through its storage.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.template.loader import get_template
from django.urls import reverse

from ..conf import queues
from ..history.models import QueueOverview

APP = "django_tasks_q"
SCAN_LIMIT = 5000
"""Most messages read from one queue to page or search through (the newest beyond it are not shown)."""


def queue_names() -> list[str]:
    """Names of the configured queues."""
    return queues.names()


def get_hub(name: str | None) -> Any:
    """The hub of a configured queue; 404 for a name that is not configured (never built from input)."""
    if not name or name not in queue_names():
        raise Http404("no such queue")
    return queues[name]


def selected_queues(request: HttpRequest) -> tuple[str, list[str]]:
    """The queue filter of a list page: ``("", all names)`` or ``(name, [name])``."""
    wanted = request.GET.get("queue", "")
    names = queue_names()
    if wanted and wanted in names:
        return wanted, [wanted]
    return "", names


def selected_hubs(request: HttpRequest) -> list[tuple[str, Any]]:
    """The hubs of a list page's queue filter, as ``(name, hub)`` pairs (see :func:`selected_queues`)."""
    _queue, names = selected_queues(request)
    return [(name, queues[name]) for name in names]


def require_perm(request: HttpRequest, codename: str) -> None:
    """Raise PermissionDenied unless the user has ``django_tasks_q.<codename>``."""
    if not request.user.has_perm(f"{APP}.{codename}"):
        raise PermissionDenied


def user_perms(request: HttpRequest) -> dict[str, bool]:
    """Which action permissions the user has (for showing buttons; the actions check again)."""
    codenames = [codename for codename, _label in QueueOverview._meta.permissions]
    return {codename: request.user.has_perm(f"{APP}.{codename}") for codename in codenames}


def acting_user_id(request: HttpRequest) -> int | str:
    """The id of the signed-in user taking an admin action (the admin lets no one else in)."""
    user_id = request.user.pk
    assert user_id is not None
    return user_id


def log_action(request: HttpRequest, object_id: str, object_repr: str, message: str, flag: int) -> None:
    """Write a LogEntry (on the dashboard anchor's content type) for an admin action."""
    LogEntry.objects.create(
        user_id=acting_user_id(request),
        content_type=ContentType.objects.get_for_model(QueueOverview, for_concrete_model=False),
        object_id=str(object_id)[:191],
        object_repr=str(object_repr)[:200],
        action_flag=flag,
        change_message=message,
    )


@cache
def breadcrumbs_as_list() -> bool:
    """Whether the installed admin draws its breadcrumbs as ``<ol class="breadcrumbs">`` (Django 6.1 on)
    rather than ``<div class="breadcrumbs">`` (up to 6.0): read from the admin's own base template, so the
    pages of this app look like the admin's whichever version (or project override) is installed."""
    source = getattr(getattr(get_template("admin/base.html"), "template", None), "source", "")
    return '<ol class="breadcrumbs">' in source


def breadcrumbs(site_name: str, *trail: str | tuple[str, str]) -> dict[str, Any]:
    """The breadcrumbs of a page: Home, Tasks, then ``trail`` (``(label, url)`` links, then the page's label)."""
    links: list[str | tuple[str, str]] = [
        ("Home", reverse(f"{site_name}:index")),
        ("Tasks", reverse(f"{site_name}:app_list", kwargs={"app_label": APP})),
    ]
    *parents, current = trail
    links.extend(parents)
    return {"as_list": breadcrumbs_as_list(), "links": links, "current": current}
