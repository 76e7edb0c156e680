"""The history list counts "task history entries" (not "271 task history"); no change to any table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_tasks_q", "0005_schedule_bounds"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="taskhistory",
            options={"ordering": ["-updated_at", "-id"], "verbose_name": "task history entry",
                     "verbose_name_plural": "task history entries"},
        ),
    ]
