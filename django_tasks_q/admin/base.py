"""What every page of the tasks admin shares: anchors, access checks, queue lookup, paging, the action log.

Pages read and act through the hub (:class:`~django_tasks_q.queue.TaskQueue`) only. Every page sits behind
``admin_site.admin_view`` (login, staff, CSRF) and needs the view permission of its anchor model; every
mutation is a POST and needs its own permission (see :mod:`django_tasks_q.admin.actions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet, FullResultSet, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import get_template
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from ..conf import queues
from ..history.models import QueueOverview

APP = "django_tasks_q"
PER_PAGE = 50
SCAN_LIMIT = 5000
"""Most messages read from one queue to page or search through (the newest beyond it are not shown)."""


def refuse_json_constant(name: str) -> Any:
    """``json.loads``' ``parse_constant``: NaN and Infinity are not JSON (Python's parser accepts them) and no
    queue can carry them."""
    raise ValueError(f"{name} is not a JSON value (use a number or null)")


MAX_SEARCH_LENGTH = 200
"""Longest search text a list page sends to the database (SQLite refuses LIKE patterns over 50,000 bytes)."""


class CheckedChangeList(ChangeList):
    """A change list whose query is compiled while its parameters can still be refused.

    A lookup the database layer cannot turn into SQL (``?created_at__year=99999``: no such datetime) would
    otherwise fail while the page renders; here it is an incorrect parameter, which the admin answers with a
    redirect to the unfiltered list (``?e=1``) like any other bad filter.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        """The filtered queryset, its SQL built once to surface values no database can take."""
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.get_compiler(queryset.db).as_sql()
        except (EmptyResultSet, FullResultSet):
            pass
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class SafeListMixin:
    """For a ModelAdmin: filters the database cannot take and over-long search text are refused, never a 500."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """See :class:`CheckedChangeList`."""
        return CheckedChangeList

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """No rows and a message for a search text longer than MAX_SEARCH_LENGTH."""
        if len(search_term) > MAX_SEARCH_LENGTH:
            messages.error(request, f"The search text is too long ({len(search_term):,} characters; "
                                    f"at most {MAX_SEARCH_LENGTH} are searched).")  # fmt: skip
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


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


def require_perm(request: HttpRequest, codename: str) -> None:
    """Raise PermissionDenied unless the user has ``django_tasks_q.<codename>``."""
    if not request.user.has_perm(f"{APP}.{codename}"):
        raise PermissionDenied


def user_perms(request: HttpRequest) -> dict[str, bool]:
    """Which action permissions the user has (for showing buttons; the actions check again)."""
    codenames = [codename for codename, _label in QueueOverview._meta.permissions]
    return {codename: request.user.has_perm(f"{APP}.{codename}") for codename in codenames}


def log_action(request: HttpRequest, object_id: str, object_repr: str, message: str, flag: int) -> None:
    """Write a LogEntry (on the dashboard anchor's content type) for an admin action."""
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=ContentType.objects.get_for_model(QueueOverview, for_concrete_model=False),
        object_id=str(object_id)[:191],
        object_repr=str(object_repr)[:200],
        action_flag=flag,
        change_message=message,
    )


@dataclass
class PageWindow:
    """One page of a list that was read only as far as needed."""

    items: list[Any]
    number: int
    num_pages: int
    total: int
    truncated: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages


def page_number(request: HttpRequest) -> int:
    """The ``p`` query parameter (1-based), defaulting to 1."""
    try:
        return max(int(request.GET.get("p", "1")), 1)
    except ValueError:
        return 1


def window(items: list[Any], number: int, total: int | None = None, truncated: bool = False) -> PageWindow:
    """Page ``number`` of ``items`` (``total``: the full size when only a prefix was read)."""
    size = len(items) if total is None else max(total, len(items))
    num_pages = max(math.ceil(size / PER_PAGE), 1)
    number = min(number, num_pages)
    start = (number - 1) * PER_PAGE
    return PageWindow(items[start : start + PER_PAGE], number, num_pages, size, truncated)


class AnchorAdmin(admin.ModelAdmin):
    """Admin of a table-less anchor model: one custom page instead of the change list.

    Subclasses implement :meth:`page` (returning a template and its context) and may add URLs in
    :meth:`extra_urls`.
    """

    template: str = ""
    title: str = ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            *self.extra_urls(),
            path("", self.admin_site.admin_view(self.changelist_view), name=f"{name}_changelist"),
        ]

    def extra_urls(self) -> list[URLPattern]:
        """More URLs of this page (under its changelist URL)."""
        return []

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = self.page(request)
        return self.render(request, self.template, context)

    def page(self, request: HttpRequest) -> dict[str, Any]:
        """The context of this page (every page class defines it)."""
        raise TypeError(f"{type(self).__name__} must define page()")

    def render(self, request: HttpRequest, template: str, context: dict[str, Any]) -> TemplateResponse:
        """Render a page of the tasks admin with the admin site's context."""
        queue, names = selected_queues(request)
        full = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": context.pop("title", self.title or self.model._meta.verbose_name_plural.capitalize()),
            "queue_names": queue_names(),
            "queue": queue,
            # Actions on several rows (and flushes) work on one queue: the one picked, or the only one.
            "bulk_queue": queue or (names[0] if len(names) == 1 else ""),
            "perms_q": user_perms(request),
            "action_urls": action_urls(self.admin_site.name),
            "next_url": request.get_full_path(),
            "nav": admin_nav(self.admin_site.name),
            **context,
        }
        full.setdefault("tq_breadcrumbs", breadcrumbs(self.admin_site.name, full["title"]))
        request.current_app = self.admin_site.name
        return TemplateResponse(request, template, full)


@cache
def breadcrumbs_as_list() -> bool:
    """Whether the installed admin draws its breadcrumbs as ``<ol class="breadcrumbs">`` (Django 6.1 on)
    rather than ``<div class="breadcrumbs">`` (up to 6.0): read from the admin's own base template, so the
    pages of this app look like the admin's whichever version (or project override) is installed."""
    source = getattr(get_template("admin/base.html").template, "source", "")
    return '<ol class="breadcrumbs">' in source


def breadcrumbs(site_name: str, *trail: str | tuple[str, str]) -> dict[str, Any]:
    """The breadcrumbs of a page: Home, Tasks, then ``trail`` (``(label, url)`` links, then the page's label)."""
    links = [
        ("Home", reverse(f"{site_name}:index")),
        ("Tasks", reverse(f"{site_name}:app_list", kwargs={"app_label": APP})),
    ]
    *parents, current = trail
    links.extend(parents)  # type: ignore[arg-type]
    return {"as_list": breadcrumbs_as_list(), "links": links, "current": current}


def action_urls(site_name: str) -> dict[str, str]:
    """URL of every action, by name (for the forms of the pages)."""
    from .actions import ACTIONS

    return {name: reverse(f"{site_name}:{APP}_action", args=[name]) for name in ACTIONS}


def admin_nav(site_name: str) -> list[tuple[str, str, str]]:
    """``(css id, label, url)`` of every page of the tasks admin, for the section menu."""
    pages = [
        ("queueoverview", "Dashboard"),
        ("pendingtask", "Pending"),
        ("scheduledtask", "Scheduled"),
        ("inflighttask", "In flight"),
        ("taskhistory", "History"),
        ("deadletterentry", "Dead letters"),
        ("periodictask", "Periodic"),
        ("registeredtask", "Tasks"),
        ("lockentry", "Locks & unique keys"),
        ("schedule", "Schedules"),
        ("consumerheartbeat", "Consumers"),
    ]
    return [(model, label, reverse(f"{site_name}:{APP}_{model}_changelist")) for model, label in pages]
