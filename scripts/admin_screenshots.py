"""Take a screenshot of every admin page of the demo project, at 1400 px wide (run by ``scripts/screenshots``).

The demo runs on a throw-away SQLite database in a temporary folder; nothing of the checkout is changed but
the PNGs in docs/images. Each page is also checked to fit the window (no horizontal scrolling).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "testproject"
OUT = ROOT / "docs" / "images"
WIDTH, HEIGHT = 1400, 900
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]  # fmt: skip
A = "/admin/django_tasks_q"
PAGES = {
    "dashboard": f"{A}/queueoverview/",
    "pending": f"{A}/pendingtask/",
    "scheduled": f"{A}/scheduledtask/",
    "in-flight": f"{A}/inflighttask/",
    "history": f"{A}/taskhistory/",
    "history-detail": None,  # the first row of the history list
    "dead-letters": f"{A}/deadletterentry/",
    "periodic": f"{A}/periodictask/",
    "tasks": f"{A}/registeredtask/",
    "run-form": f"{A}/registeredtask/run/?queue=default&task=demo.tasks.add",
    "schedules": f"{A}/schedule/",
    "schedule-form": f"{A}/schedule/1/change/",
    "locks": f"{A}/lockentry/",
    "consumers": f"{A}/consumerheartbeat/",
    "confirm": None,  # the confirmation of purging a dead letter
}
# A message that does not verify, as a storage may hold after a bad deploy: the Dead letters page shows how a
# refused message looks.
SEED_DEAD_LETTER = (
    "from django_tasks_q.conf import queues; "
    "queues['default'].storage.add_dead_letter(b'\\x00not a task message', 'decode_error', "
    "'the envelope is not JSON (written by an older release?)', attempts=1)"
)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, deadline: float) -> None:
    """Wait until ``url`` answers (the development server is up)."""
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the demo server did not answer at {url}")


def recompress(path: Path) -> None:
    """Write the PNG's image data again at zlib's best compression (Chromium favours speed)."""
    data = path.read_bytes()
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    image = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    out = [data[:8]]
    for kind, body in chunks:
        if kind == b"IDAT":
            if image is None:
                continue
            body, image = zlib.compress(image, 9), None
        out.append(len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big"))
    path.write_bytes(b"".join(out))


def shoot(base: str, warmup: float) -> list[str]:
    """Visit every page, write its PNG; the names of pages wider than the window."""
    from playwright.sync_api import sync_playwright

    too_wide = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        tab.goto(f"{base}/admin/login/")
        tab.fill("#id_username", "demo")
        tab.fill("#id_password", "demo-password")
        tab.click("input[type=submit]")
        tab.wait_for_url(f"{base}/admin/")
        time.sleep(warmup)
        for name, path in PAGES.items():
            if name == "history-detail":
                tab.goto(f"{base}{PAGES['history']}?status__exact=complete")
                tab.click("#result_list tbody tr:first-child th a")
            elif name == "confirm":
                tab.goto(f"{base}{PAGES['dead-letters']}")
                tab.click("button.tq-purge")
            else:
                tab.goto(f"{base}{path}")
            tab.wait_for_load_state("networkidle")
            if name == "schedule-form":  # the live preview, below the fields
                tab.locator("#tasks-q-schedule-preview").scroll_into_view_if_needed()
            if tab.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
                too_wide.append(name)
            target = OUT / f"admin-{name}.png"
            tab.screenshot(path=str(target))
            recompress(target)
            print(f"  {target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")
        browser.close()
    return too_wide


def main() -> None:
    """Run the demo, take the screenshots, stop the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=float, default=90, help="seconds the demo runs before the first shot")
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tasks-q-shots-") as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite3", "PYTHONUNBUFFERED": "1"}
        manage = [sys.executable, "manage.py"]

        def run(*args: str) -> None:
            subprocess.run([*manage, *args], cwd=PROJECT, env=env, check=True, stdout=subprocess.DEVNULL)

        def start(*args: str) -> subprocess.Popen:
            log = open(Path(tmp) / f"{args[0]}.log", "w")  # noqa: SIM115 - closed with the folder
            return subprocess.Popen([*manage, *args], cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)

        run("migrate", "--noinput")
        run("demo_setup")
        run("shell", "-c", SEED_DEAD_LETTER)
        port = free_port()
        processes = [
            start("run_tasks", "--workers", "2", "--no-reload", "--health-check-interval", "2"),
            start("feed_demo", "--every", "4"),
            start("runserver", f"127.0.0.1:{port}", "--noreload"),
        ]
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/admin/login/", time.monotonic() + 60)
            print(f"==> demo running at {base}; waiting {options.warmup:.0f} s, then taking the screenshots")
            too_wide = shoot(base, options.warmup)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
    if too_wide:
        raise SystemExit(f"wider than {WIDTH} px: {', '.join(too_wide)}")


if __name__ == "__main__":
    main()
