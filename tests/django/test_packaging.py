"""The package installs, carries its typing marker, and both Django projects pass `check`."""

import configparser
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import django_tasks_q

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, settings):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "PYTHONPATH": str(ROOT)}
    # A child process inherits neither pytest's filters nor its -W error: ask for the same strictness.
    env["PYTHONWARNINGS"] = "error"
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_version_matches_installed_metadata():
    assert importlib.metadata.version("django-tasks-q") == django_tasks_q.__version__


def test_setup_cfg_takes_version_from_the_package():
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["metadata"]["name"] == "django-tasks-q"
    assert config["metadata"]["version"].strip() == "attr: django_tasks_q.__version__"


def test_py_typed_marker_is_present():
    package_dir = Path(django_tasks_q.__file__).resolve().parent
    assert (package_dir / "py.typed").is_file()


def test_django_check_passes_with_test_settings():
    result = _run(["-m", "django", "check"], cwd=ROOT, settings="tests.settings")
    assert result.returncode == 0, result.stdout + result.stderr


def test_testproject_check_passes():
    project = ROOT / "testproject"
    result = _run(["manage.py", "check"], cwd=project, settings="testproject.settings")
    assert result.returncode == 0, result.stdout + result.stderr
