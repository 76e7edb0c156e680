"""An append-only ledger file: one JSON line per event (each write is a single O_APPEND write, so atomic)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any


def ledger_path() -> Path:
    """The ledger file named by ``TASKS_Q_LEDGER``."""
    return Path(os.environ["TASKS_Q_LEDGER"])


def write(event: str, **fields: Any) -> None:
    """Append one event."""
    line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **fields}) + "\n"
    fd = os.open(ledger_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every event in the ledger at ``path`` (a partial last line is ignored)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def count(path: Path, event: str) -> Counter:
    """How many times each ``n`` has the given event."""
    return Counter(e["n"] for e in read(path) if e["event"] == event)
