"""Run Django's own ``tests/tasks`` modules against TasksQBackend and compare with the expected failures.

    python tests/django_suite/run.py [pytest arguments]

1. The source distribution of exactly the installed Django is downloaded once with pip
   (``pip download --no-binary :all: --no-deps Django==<version>``) and its ``tests/tasks`` package is kept
   under ``.venv/django-suite/<version>/`` (outside git).
2. A copy is made in a temporary folder in which the only change is the backend path: the string literals
   naming Django's immediate and dummy backends (the ``"BACKEND"`` values of the modules' ``TASKS`` settings)
   become ``django_tasks_q.tasks_backend.TasksQBackend``. Imports, ``assertIsInstance`` checks and every
   assertion stay as Django wrote them.
3. pytest runs the copy with ``tests.django_suite.settings`` and ``tests.django_suite.plugin`` (which queue
   stands behind the backend in each module), writing a JUnit report.
4. The outcome of every test is compared with ``expected_failures.txt`` (one test id and the reason it does
   not apply to this backend per line). The run fails when a test not listed fails, when a listed test
   passes, or when a listed test no longer exists. A table per module is printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.support.expected_failures, when run as a script

from tests.support.expected_failures import read_expected  # noqa: E402

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected_failures.txt"
OUR_BACKEND = "django_tasks_q.tasks_backend.TasksQBackend"
DJANGO_BACKENDS = ("django.tasks.backends.immediate.ImmediateBackend", "django.tasks.backends.dummy.DummyBackend")
PACKAGE = "tasks"


def cached_suite(version: str) -> Path:
    """``tests/tasks`` of Django ``version``, from its sdist (downloaded with pip the first time)."""
    cache = ROOT / ".venv" / "django-suite" / version
    package = cache / PACKAGE
    if (package / "__init__.py").exists():
        return package
    with tempfile.TemporaryDirectory(prefix="django-sdist-") as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                   f"Django=={version}", "--dest", download]  # fmt: skip
        print("==> " + " ".join(command), flush=True)
        subprocess.run(command, check=True)
        [sdist] = [path for path in Path(download).iterdir() if path.name.endswith(".tar.gz")]
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="extract-", dir=cache))
        prefix = None
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if len(parts) > 3 and parts[1:3] == ("tests", PACKAGE) and member.isfile():
                    prefix = parts[0]
                    target = staging / PACKAGE / Path(*parts[3:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
        if prefix is None:
            raise SystemExit(f"{sdist.name} has no tests/{PACKAGE}/ folder")
        os.replace(staging / PACKAGE, package)
        shutil.rmtree(staging)
    return package


def swapped_copy(package: Path, work: Path) -> dict[str, int]:
    """Copy ``package`` into ``work`` with Django's backend paths swapped for ours; replacements per module."""
    target = work / PACKAGE
    shutil.copytree(package, target)
    swaps: dict[str, int] = {}
    pattern = re.compile("|".join(re.escape(f'"{path}"') for path in DJANGO_BACKENDS))
    for module in sorted(target.glob("test_*.py")):
        text, count = pattern.subn(f'"{OUR_BACKEND}"', module.read_text())
        module.write_text(text)
        swaps[module.stem] = count
    return swaps



def outcomes(report: Path) -> dict[str, str]:
    """Test id (``module.Class.test``) -> passed, failed or skipped, from a JUnit report."""
    results: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = "failed"
        elif case.find("skipped") is not None:
            results[test_id] = "skipped"
        else:
            results[test_id] = "passed"
    return results


@dataclass
class ModuleRow:
    """One line of the summary table."""

    tests: int = 0
    passed: int = 0
    expected: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def compare(results: dict[str, str], expected: dict[str, str], complete: bool) -> dict[str, ModuleRow]:
    """The table rows per module; each row's ``problems`` lists what fails the run.

    ``complete``: every test ran (no pytest arguments selected some), so a listed test that did not run is stale.
    """
    rows: dict[str, ModuleRow] = {}
    for test_id, outcome in sorted(results.items()):
        row = rows.setdefault(test_id.split(".")[1], ModuleRow())
        row.tests += 1
        if outcome == "skipped":
            row.skipped += 1
        elif outcome == "passed" and test_id in expected:
            row.problems.append(f"listed as not applicable but passes: {test_id} ({expected[test_id]})")
        elif outcome == "passed":
            row.passed += 1
        elif test_id in expected:
            row.expected += 1
        else:
            row.problems.append(f"fails and is not listed: {test_id}")
    for test_id in sorted(set(expected) - set(results)) if complete else []:
        rows.setdefault(test_id.split(".")[1], ModuleRow()).problems.append(f"listed but not run: {test_id}")
    return rows


def main(argv: list[str]) -> int:
    """Fetch, swap, run, compare; 0 when every outcome is the expected one."""
    version = django.get_version()
    package = cached_suite(version)
    expected = read_expected(EXPECTED)
    with tempfile.TemporaryDirectory(prefix="django-suite-run-") as folder:
        work = Path(folder)
        swaps = swapped_copy(package, work)
        print(f"==> Django {version} tests/{PACKAGE}: backend path swapped to {OUR_BACKEND} "
              f"({', '.join(f'{name}: {count}' for name, count in swaps.items())})", flush=True)  # fmt: skip
        report = work / "report.xml"
        (work / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = tests.django_suite.settings\n"
                                         "python_files = test_*.py\n")  # fmt: skip
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), str(ROOT)]))
        env.pop("DJANGO_SETTINGS_MODULE", None)
        command = [sys.executable, "-m", "pytest", "-c", str(work / "pytest.ini"), "--rootdir", str(work),
                   "-p", "tests.django_suite.plugin", "-p", "no:cacheprovider", f"--junitxml={report}",
                   "-q", "-rN", "--tb=no", *argv, str(work / PACKAGE)]  # fmt: skip
        run = subprocess.run(command, cwd=work, env=env)
        if run.returncode not in (0, 1) or not report.exists():  # 1: tests failed; anything else: pytest did not
            print(f"pytest ended with exit status {run.returncode}: the run did not complete")
            return 1
        results = outcomes(report)
    rows = compare(results, expected, complete=not argv)
    print(f"\n{'module':<26}{'tests':>7}{'passed':>8}{'not applicable':>16}{'skipped':>9}{'unexpected':>12}")
    for module, row in sorted(rows.items()):
        print(f"{module:<26}{row.tests:>7}{row.passed:>8}{row.expected:>16}{row.skipped:>9}{len(row.problems):>12}")
    problems = [problem for row in rows.values() for problem in row.problems]
    for problem in problems:
        print(f"  {problem}")
    if argv and not problems:
        print("(pytest arguments given: only the tests they selected were compared)")
    return 1 if problems or not results else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
