"""``manage.py demo_setup``: create the demo admin user and a database schedule (once); print how to log in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from django_tasks_q.history.schedules import Schedule

USERNAME = "demo"
PASSWORD = "demo-password"


class Command(BaseCommand):
    """Create the demo superuser if it does not exist and print its credentials."""

    help = "Create the demo admin user and print its credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        """Create or reset the demo superuser; add the demo schedule when it is missing."""
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=USERNAME, defaults={"is_staff": True})
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        self.stdout.write(f"admin user {'created' if created else 'ready'}: {USERNAME} / {PASSWORD}")
        Schedule.objects.get_or_create(
            name="Morning digest",
            defaults={
                "task": "demo.tasks.send_digest",
                "args": ["ops"],
                "crontab": "0 7 * * 1-5",
                "timezone": "Europe/Paris",
            },
        )
