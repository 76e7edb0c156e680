#!/usr/bin/env python
"""Command-line entry point for the django-tasks-q demo project."""

import os
import sys
from pathlib import Path


def main():
    # Make the checkout's django_tasks_q importable even when it is not installed.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
