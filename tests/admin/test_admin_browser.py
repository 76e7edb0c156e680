"""The admin in a real browser: Playwright driving Debian's Chromium against a live server.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; scripts/test installs it when it can) and the
``playwright`` package. Without them these tests are skipped with a message — except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q.decorators import task
from tests.django.test_schedules import QUEUE as SCHEDULE_QUEUE
from tests.django.test_schedules import send_digest
from tests.support.admin import PAGES, XSS, Q, hub, memory_settings, populate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WINDOW_WIDTH = 1400
"""Every admin page must fit a window this wide (with the admin's sidebar open) without scrolling sideways."""
ARTIFACTS = Path(os.environ.get("TASKS_Q_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts"))


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so browser tests may not be skipped)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed — pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        _unavailable("Chromium is not installed — apt-get install chromium")
    # Playwright's sync API keeps an event loop running in this thread; the tests' own ORM calls are still
    # synchronous, so Django's async-safety guard is told so for the lifetime of the browser.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_server: Any, admin_user: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": WINDOW_WIDTH, "height": 900})
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.goto(f"{live_server.url}/admin/login/")
    tab.fill("#id_username", "admin")
    tab.fill("#id_password", "password")
    tab.click("input[type=submit]")
    tab.wait_for_url(f"{live_server.url}/admin/")
    tab.base = live_server.url
    tab.dialogs = dialogs
    yield tab
    context.close()
    assert dialogs == [], f"a script ran in the admin (escaping failed): {dialogs}"


def test_every_page_renders_escaped_content(page: Any) -> None:
    with override_settings(TASKS_Q=memory_settings()):
        populate(hub())
        for name, path in PAGES.items():
            response = page.goto(page.base + path)
            assert response.status == 200, f"{name}: {response.status}"
            assert page.locator("#content").count() == 1, name
        page.goto(page.base + PAGES["pending"])
        assert XSS in page.locator("#content").inner_text()
        page.goto(page.base + PAGES["dashboard"])
        assert page.locator("#content svg").count() >= 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)


def test_revoke_a_pending_task_by_clicking(page: Any) -> None:
    with override_settings(TASKS_Q=memory_settings()):
        made = populate(hub())
        target = made["pending2"].id
        page.goto(page.base + PAGES["pending"])
        revoke = page.locator("form.tq-action-form", has=page.locator(f"input[name=id][value='{target}']"))
        revoke.locator("button.tq-revoke").click()
        page.wait_for_load_state()
        assert "evoked" in page.locator(".messagelist").inner_text()
        assert hub().is_revoked(made["pending2"].task)
        restore = page.locator("form.tq-action-form", has=page.locator(f"input[name=id][value='{target}']"))
        assert restore.locator("button.tq-restore").count() == 1


def test_schedule_form_previews_the_next_runs_while_typing(page: Any) -> None:
    with override_settings(TASKS_Q=SCHEDULE_QUEUE):
        page.goto(page.base + "/admin/django_tasks_q/schedule/add/")
        page.fill("#id_name", "digest")
        page.select_option("#id_task", send_digest.path)
        page.fill("#id_args", '["ops"]')
        page.fill("#id_timezone", "UTC")
        page.fill("#id_crontab", "15 6 * * *")
        page.wait_for_function("document.querySelectorAll('#tasks-q-preview-runs li').length === 5")
        runs = page.locator("#tasks-q-preview-runs li").all_inner_texts()
        assert all(run.endswith(" 06:15:00 UTC") for run in runs), runs
        page.fill("#id_crontab", "99 * * * *")
        page.wait_for_selector("#tasks-q-preview-error", state="visible")
        assert "minute" in page.locator("#tasks-q-preview-error").inner_text()
        page.fill("#id_crontab", "*/10 * * * *")
        page.click("input[name=_save]")
        page.wait_for_load_state()
        assert "was added successfully" in page.locator(".messagelist").inner_text()


# Long unbroken texts, as real arguments, ids, task names and tracebacks have: they must wrap, not widen the page.
LONG_WORD = "x" * 400


@task(queue=Q, name="reports.nightly.call_partner_api_with_retries")
def long_named(text: str) -> str:
    """A task whose dotted name cannot break."""
    return text

PAGES_TO_FIT = {
    **PAGES,
    "schedules": "/admin/django_tasks_q/schedule/",
    "schedule_form": "/admin/django_tasks_q/schedule/add/",
    "history_detail": None,
    "confirm": None,
}


def _populate_wide(queue: Any) -> dict[str, Any]:
    made = populate(queue)
    queue.enqueue_call("tests.support.admin.echo", [LONG_WORD], delay=3600)
    queue.enqueue_call("tests.support.admin.echo", [LONG_WORD])
    queue.enqueue_call(long_named.path, ["eu-west"], delay=3600)
    queue.enqueue_call(long_named.path, ["eu-west"])
    queue.storage.add_dead_letter(LONG_WORD.encode(), "decode_error", f"Traceback: {LONG_WORD}", attempts=3)
    return made


@pytest.mark.parametrize("name", sorted(PAGES_TO_FIT))
def test_page_fits_the_window(page: Any, name: str) -> None:
    with override_settings(TASKS_Q=memory_settings()):
        made = _populate_wide(hub())
        if name == "history_detail":
            from django_tasks_q.history.models import TaskHistory

            row = TaskHistory.objects.get(task_id=made["failed"].id)
            page.goto(f"{page.base}/admin/django_tasks_q/taskhistory/{row.pk}/change/")
        elif name == "confirm":
            page.goto(f"{page.base}{PAGES['dead_letters']}?queue={Q}")
            page.locator("button.tq-purge").first.click()
            page.wait_for_selector("#tq-confirm")
        else:
            # One queue picked: the lists then have their widest layout (a checkbox column, bulk actions).
            one_queue = f"?queue={Q}" if name in ("pending", "scheduled", "dead_letters") else ""
            response = page.goto(page.base + PAGES_TO_FIT[name] + one_queue)
            assert response.status == 200, name
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{name} is {widths[0]} px wide in a {widths[1]} px window"


def test_dashboard_numbers_and_charts_refresh_without_reloading(page: Any) -> None:
    with override_settings(TASKS_Q=memory_settings(), TASKS_Q_ADMIN_REFRESH=1):
        queue = hub()
        page.goto(f"{page.base}{PAGES['dashboard']}")
        pending = page.locator(f'#tq-queues tr[data-queue="{Q}"] [data-live="pending"]')
        assert pending.inner_text() == "0"
        chart = page.locator("#tq-chart-throughput")
        page.evaluate("window.tqNotReloaded = true; document.getElementById('tq-chart-throughput').dataset.old = '1'")
        queue.enqueue_call("tests.support.admin.add", [1, 2])
        queue.enqueue_call("tests.support.admin.add", [3, 4])
        page.wait_for_function(
            f"document.querySelector('#tq-queues tr[data-queue=\"{Q}\"] [data-live=\"pending\"]').textContent"
            " === '2'",
            timeout=15000,
        )
        assert page.evaluate("window.tqNotReloaded === true"), "the page reloaded"
        assert chart.count() == 1 and chart.get_attribute("data-old") is None  # the chart was redrawn in place


def test_schedule_form_shows_no_error_while_nothing_is_typed(page: Any) -> None:
    with override_settings(TASKS_Q=SCHEDULE_QUEUE):
        page.goto(page.base + "/admin/django_tasks_q/schedule/add/")
        page.wait_for_selector("#tasks-q-preview-empty", state="visible")
        assert page.locator("#tasks-q-preview-error").is_hidden()
        assert page.locator("#tasks-q-preview-runs li").count() == 0
