"""Reading the expected-failures lists of the foreign test suites we run (huey's, Django's tests/tasks).

A list has one test a line: its id, a space, and the reason it does not pass here; ``#`` starts a comment. A line
without a reason, or a test listed twice, stops the run: every exclusion must say why.
"""

from __future__ import annotations

from pathlib import Path


def read_expected(path: Path) -> dict[str, str]:
    """``{test id: reason}`` from the list at ``path`` (an absent file is an empty list)."""
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path.name}:{number}: {test_id} has no reason")
        if test_id in expected:
            raise SystemExit(f"{path.name}:{number}: {test_id} is listed twice")
        expected[test_id] = reason.strip()
    return expected
