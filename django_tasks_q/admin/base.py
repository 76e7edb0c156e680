"""What every page of the tasks admin shares: anchors, access checks, queue lookup, paging, the action log.

Pages read and act through the hub (:class:`~django_tasks_q.hub.queue.TaskQueue`) only. Every page sits behind
``admin_site.admin_view`` (login, staff, CSRF) and needs the view permission of its anchor model; every
mutation is a POST and needs its own permission (see :mod:`django_tasks_q.admin.actions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FullResultSet, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from .access import APP, breadcrumbs, queue_names, selected_queues, user_perms
from .actions import ACTIONS

PER_PAGE = 50


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
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]  # a mixin: the admin class has the method


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


def action_urls(site_name: str) -> dict[str, str]:
    """URL of every action, by name (for the forms of the pages)."""
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
