"""The admin's actions: each a POST (CSRF-checked), behind its own permission, logged as a LogEntry.

Destructive ones (flushes, purges, deleting results) first answer with a confirmation page whose form posts
again with ``confirmed=yes``. Every action acts through the hub (revoke, restore, run now, retry, delete a
result, flush, requeue and purge dead letters, release a lock or a unique-task key, pause/resume/run a periodic task).

The form fields: ``action`` (in the URL), ``queue`` (a configured queue name), ``id`` (repeatable: task ids,
dead-letter ids, lock names or task paths, unique-task keys, or history row ids for ``retry``), ``all`` (purge every dead letter),
``next`` (where to go back to; only same-site URLs are followed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from ..exceptions import TasksQError
from ..history.models import TaskHistory
from ..timeutils import from_epoch
from .access import APP, SCAN_LIMIT, breadcrumbs, get_hub, log_action, queue_names, require_perm

MAX_IDS = 500


@dataclass
class Params:
    """What an action works on."""

    queue: str
    hub: Any
    ids: list[str]
    everything: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Action:
    """One admin action: its permission, whether it asks for confirmation, and what it does."""

    name: str
    permission: str
    label: str
    handler: Callable[[Params], str]
    confirm: bool = False
    needs_queue: bool = True
    flag: int = CHANGE


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _revoke(p: Params) -> str:
    for task_id in p.ids:
        p.hub.revoke_by_id(task_id)
    return f"Revoked {_count(len(p.ids), 'task call')} on queue {p.queue!r}."


def _restore(p: Params) -> str:
    restored = sum(bool(p.hub.restore_by_id(task_id)) for task_id in p.ids)
    return f"Restored {_count(restored, 'revoked task call')} on queue {p.queue!r}."


def _run_now(p: Params) -> str:
    started = []
    for task_id in p.ids:
        result = p.hub.run_now(task_id, limit=SCAN_LIMIT)
        if result is None:
            p.notes.append(f"{task_id} is no longer scheduled (or its task is not registered here)")
        else:
            started.append(f"{task_id} → {result.id}")
    return f"Enqueued now: {', '.join(started) or 'nothing'} (the scheduled copies are revoked)."


def _retry(p: Params) -> str:
    enqueued = []
    rows = TaskHistory.objects.filter(pk__in=[i for i in p.ids if i.isdigit()])
    for row in rows:
        if row.queue not in queue_names():
            p.notes.append(f"{row.task_id}: queue {row.queue!r} is not configured")
            continue
        if not row.arguments_exact:
            p.notes.append(f"{row.task_id}: its arguments were not stored exactly, so it cannot be retried")
            continue
        try:
            args, kwargs = json.loads(row.args or "[]"), json.loads(row.kwargs or "{}")
            result = get_hub(row.queue).enqueue_call(row.name, args, kwargs)
        except (TasksQError, ValueError, TypeError) as exc:
            p.notes.append(f"{row.task_id}: {exc}")
            continue
        enqueued.append(f"{row.task_id} → {result.id if result is not None else '?'}")
    return f"Retried: {', '.join(enqueued) or 'nothing'}."


def _delete_result(p: Params) -> str:
    deleted = sum(bool(p.hub.delete_result(task_id)) for task_id in p.ids)
    return f"Deleted {_count(deleted, 'stored result')} on queue {p.queue!r}."


def _flusher(count: str, flush: str, what: str, noun: str) -> Callable[[Params], str]:
    """An action that empties one part of a queue with ``hub.<flush>()``, reporting ``hub.<count>()`` before it."""

    def flush_part(p: Params) -> str:
        removed = getattr(p.hub, count)()
        getattr(p.hub, flush)()
        return f"Flushed {what.format(queue=repr(p.queue))}: {_count(removed, noun)} removed."

    return flush_part


_flush_queue = _flusher("pending_count", "flush_queue", "queue {queue}", "waiting message")
_flush_schedule = _flusher("scheduled_count", "flush_schedule", "the schedule of {queue}", "scheduled message")
_flush_results = _flusher("result_count", "flush_results", "the results of {queue}", "result")


def _requeue_dead(p: Params) -> str:
    requeued = sum(bool(p.hub.requeue_dead_letter(letter_id)) for letter_id in p.ids)
    return f"Requeued {_count(requeued, 'dead letter')} on queue {p.queue!r}."


def _purge_dead(p: Params) -> str:
    purged = p.hub.purge_dead_letters(None if p.everything else p.ids)
    return f"Purged {_count(purged, 'dead letter')} on queue {p.queue!r}."


def _release_lock(p: Params) -> str:
    released = sum(bool(p.hub.release_lock(name)) for name in p.ids if name in p.hub.known_locks)
    return f"Released {_count(released, 'lock')} on queue {p.queue!r}."


def _release_unique(p: Params) -> str:
    released = 0
    for key in p.ids:
        try:
            released += p.hub.release_unique(key)
        except ValueError as exc:
            p.notes.append(str(exc))
    return f"Released {_count(released, 'unique key')} on queue {p.queue!r}."


def _periodic(p: Params) -> list[Any]:
    wrappers = []
    for name in p.ids:
        if name in p.hub.registry and p.hub.registry.get(name).validate_datetime is not None:
            wrappers.append(p.hub.registry.get(name))
        else:
            p.notes.append(f"{name} is not a periodic task of queue {p.queue!r}")
    return wrappers


def _pause_periodic(p: Params) -> str:
    wrappers = _periodic(p)
    for wrapper in wrappers:
        p.hub.revoke_all(wrapper)
    return f"Paused {_count(len(wrappers), 'periodic task')} (every call is revoked until resumed)."


def _resume_periodic(p: Params) -> str:
    wrappers = _periodic(p)
    for wrapper in wrappers:
        p.hub.restore_all(wrapper)
    return f"Resumed {_count(len(wrappers), 'periodic task')}."


def _run_periodic(p: Params) -> str:
    started = []
    for wrapper in _periodic(p):
        # Pausing revokes every call of the task, so the consumer would skip a call enqueued now as revoked.
        if p.hub.is_revoked(wrapper):
            p.notes.append(f"{wrapper.path} is paused, so it was not run: resume it first, then run it now")
            continue
        started.append(f"{wrapper.path} → {p.hub.enqueue_call(wrapper.path).id}")
    return f"Enqueued now: {', '.join(started) or 'nothing'}."


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("revoke", "revoke_task", "Revoke", _revoke),
        Action("restore", "restore_task", "Restore", _restore),
        Action("run_now", "run_task_now", "Run now", _run_now, flag=ADDITION),
        Action("retry", "retry_task", "Retry", _retry, needs_queue=False, flag=ADDITION),
        Action("delete_result", "delete_result", "Delete the stored result of", _delete_result, True, flag=DELETION),
        Action("flush_queue", "flush_queue", "Flush the waiting messages of", _flush_queue, True, flag=DELETION),
        Action("flush_schedule", "flush_schedule", "Flush the schedule of", _flush_schedule, True, flag=DELETION),
        Action("flush_results", "flush_results", "Flush the stored results of", _flush_results, True, flag=DELETION),
        Action("requeue_dead", "requeue_deadletter", "Requeue", _requeue_dead),
        Action("purge_dead", "purge_deadletter", "Purge dead letters of", _purge_dead, True, flag=DELETION),
        Action("release_lock", "release_lock", "Release the lock", _release_lock, True),
        Action("release_unique", "release_lock", "Release the unique key", _release_unique, True),
        Action("pause_periodic", "revoke_task", "Pause", _pause_periodic),
        Action("resume_periodic", "restore_task", "Resume", _resume_periodic),
        Action("run_periodic", "enqueue_task", "Run now", _run_periodic, flag=ADDITION),
    )
}
NEEDS_IDS = {"revoke", "restore", "run_now", "retry", "delete_result", "requeue_dead", "release_lock", "release_unique",
             "pause_periodic", "resume_periodic", "run_periodic"}  # fmt: skip


def _back(request: HttpRequest, site_name: str) -> str:
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}, request.is_secure()):
        return wanted
    return reverse(f"{site_name}:{APP}_queueoverview_changelist")


def confirm_items(name: str, hub: Any, ids: list[str]) -> list[str]:
    """What a confirmation page lists for the ids it is about: a dead letter's reason, task and time, a
    stored result's task; the id alone when nothing more is known."""
    if name == "purge_dead" and hub is not None:
        letters = {letter.id: letter for letter in hub.dead_letters(SCAN_LIMIT) if letter.id in ids}
        items = []
        for letter_id in ids:
            letter = letters.get(letter_id)
            if letter is None:
                items.append(f"dead letter {letter_id} (already gone)")
                continue
            task = hub.inspect_message(letter.data).task
            what = f"{task.path} {task.id}" if task is not None else "a message that does not verify"
            when = from_epoch(letter.failed_at).strftime("%Y-%m-%d %H:%M:%S")
            items.append(f"dead letter {letter_id}: {letter.reason}, {what}, failed at {when}")
        return items
    if name == "delete_result":
        names = dict(TaskHistory.objects.filter(task_id__in=ids).values_list("task_id", "name"))
        return [f"the result of {names[task_id]} {task_id}" if task_id in names else task_id for task_id in ids]
    return ids


def action_view(request: HttpRequest, name: str, admin_site: Any) -> HttpResponse:
    """Run (or ask to confirm) one action; the URL is ``<dashboard>/action/<name>/``."""
    action = ACTIONS.get(name)
    if action is None:
        raise Http404("no such action")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    require_perm(request, action.permission)
    ids = [value for value in request.POST.getlist("id") if value][:MAX_IDS]
    everything = request.POST.get("all") == "1"
    queue = request.POST.get("queue", "")
    hub = get_hub(queue) if action.needs_queue else None
    back = _back(request, admin_site.name)
    if not ids and (name in NEEDS_IDS or (name == "purge_dead" and not everything)):
        messages.warning(request, "Nothing selected.")
        return HttpResponseRedirect(back)
    if action.confirm and request.POST.get("confirmed") != "yes":
        context = {
            **admin_site.each_context(request),
            "title": "Are you sure?",
            "action": action,
            "queue": queue,
            "ids": ids,
            "items": confirm_items(name, hub, ids),
            "everything": everything,
            "next_url": back,
            "tq_breadcrumbs": breadcrumbs(admin_site.name, "Confirm"),
            # The sidebar marks the page the action came from, not the dashboard that hosts the action URLs.
            "sidebar_request": SimpleNamespace(path=urlsplit(back).path),
        }
        request.current_app = admin_site.name
        return TemplateResponse(request, "admin/django_tasks_q/confirm.html", context)
    params = Params(queue, hub, ids, everything)
    try:
        text = action.handler(params)
    except TasksQError as exc:
        messages.error(request, f"{action.label} failed: {exc}")
        return HttpResponseRedirect(back)
    for note in params.notes:
        messages.warning(request, note)
    messages.success(request, text)
    subject = ids[0] if len(ids) == 1 else queue or ", ".join(ids[:5])
    log_action(request, subject, f"{action.label} {subject}", f"{name}: {text}", action.flag)
    return HttpResponseRedirect(back)
