"""Every Python example of the user guide (``docs/*.md``) runs, as it is written.

The convention, for whoever writes docs:

* A block fenced with exactly ```` ```python ```` is an **example**: this test executes it.
* A block fenced with ```` ```python-fragment ```` is **illustrative** (an excerpt of a settings file, code that
  needs a Redis server or placeholders, a signature): it is shown like Python and never executed. Any other
  fence (``console``, ``pycon``, ``ini``, ``dockerfile``, ``text`` ...) is never executed either.
* Pages collected: ``docs/*.md`` except ``docs/admin.md``; ``docs/admin.md`` and pages under ``docs/storages/``
  (written by their owners) only when they contain the line ``<!-- docs-examples: run -->``.

How each example runs:

* as the body of a fresh module named ``docs_example_<page>_<line>`` (registered in ``sys.modules`` while it
  runs, so that pickle and ``import_string`` find what it defines; ``__file__`` points into a temporary folder);
* under the test settings (``tests/settings.py``) with ``TASKS_Q`` overridden to one queue, ``default``, in
  memory and in immediate mode (``{"default": {"BACKEND": "memory", "IMMEDIATE": True}}``): a task called in an
  example runs at once, in-process, as ``run_tasks`` would run it. Examples that want other queues say so with
  the public helpers (``django_tasks_q.testing.immediate_queues("emails")``, ``memory_queues(...)``) or build
  their own hub (``MemoryHuey("docs-...")``, with a name no other example uses);
* with a database (``pytest.mark.django_db(transaction=True)``, so that ``transaction.atomic()`` really commits and
  ``on_commit`` callbacks fire) when its text mentions ``transaction`` or the ORM storage (``orm``);
* a module-level ``TASKS_Q`` that the example defines (a settings example) is also passed through the system
  checks: it must produce no error (warnings are allowed);
* afterwards the tasks it registered on settings queues are unregistered, so examples cannot leak into each
  other or into the rest of the suite.

Warnings are errors here as everywhere in the suite (``filterwarnings = ["error"]``).
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.checks import ERROR
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OPT_IN = "<!-- docs-examples: run -->"
OWNED_ELSEWHERE = {"admin.md"}
BASELINE = {"default": {"BACKEND": "memory", "IMMEDIATE": True}}
NEEDS_DB = re.compile(r"\btransaction\b|\borm\b|OrmStorage")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    source: str

    @property
    def module_name(self) -> str:
        stem = re.sub(r"\W", "_", self.page.removesuffix(".md"))
        return f"docs_example_{stem}_{self.line}"

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """The Markdown pages whose examples run (see the module docstring)."""
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        relative = path.relative_to(DOCS)
        top_level = len(relative.parts) == 1 and relative.name not in OWNED_ELSEWHERE
        if top_level or OPT_IN in path.read_text(encoding="utf-8"):
            found.append(path)
    return found


def extract(path: Path) -> Iterator[Example]:
    """The ```python blocks of one page, with the line number of their opening fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(DOCS).as_posix()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
                break
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1
        if info == "python":
            yield Example(page, start, "\n".join(body) + "\n")


def all_examples() -> list[Example]:
    return [example for path in pages() for example in extract(path)]


EXAMPLES = all_examples()


def test_the_guide_has_examples() -> None:
    assert len(EXAMPLES) >= 40, [str(example) for example in EXAMPLES]


def _unregister_tasks_of(module_name: str) -> None:
    from django_tasks_q import conf

    for registry in list(conf._registries.values()):
        for wrapper in list(registry):
            if wrapper.__module__ == module_name or wrapper.path.startswith(module_name + "."):
                registry.unregister(wrapper.path)


def _params() -> list[object]:
    database = pytest.mark.django_db(transaction=True)
    return [
        pytest.param(example, id=str(example), marks=[database] if NEEDS_DB.search(example.source) else [])
        for example in EXAMPLES
    ]


@pytest.mark.parametrize("example", _params())
def test_example_runs(example: Example, tmp_path: Path) -> None:
    module = types.ModuleType(example.module_name)
    module.__file__ = str(tmp_path / "example.py")
    code = compile(example.source, f"{DOCS / example.page}:{example.line}", "exec")
    sys.modules[example.module_name] = module
    try:
        with override_settings(TASKS_Q=BASELINE):
            exec(code, module.__dict__)
            settings_example = module.__dict__.get("TASKS_Q")
            if isinstance(settings_example, dict):
                from django_tasks_q.checks import check_tasks_q_settings

                with override_settings(TASKS_Q=settings_example):
                    errors = [str(m) for m in check_tasks_q_settings() if m.level >= ERROR]
                assert errors == [], f"{example}: the TASKS_Q of this example fails the system checks"
    finally:
        sys.modules.pop(example.module_name, None)
        _unregister_tasks_of(example.module_name)
