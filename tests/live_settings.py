"""Settings for the live schedule tests' subprocesses: ``tests.consumer_settings`` plus the ``tests.live_tasks`` app."""

from tests.consumer_settings import *  # noqa: F403
from tests.consumer_settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.live_tasks"]
