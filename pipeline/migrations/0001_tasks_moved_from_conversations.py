"""The pipeline's tasks moved from ``conversations.tasks`` to ``pipeline.tasks``: point stored schedules there.

Tasks already queued under the old path still run: ``conversations.tasks`` re-exports these.
"""

from django.db import migrations

MOVED = ["requeue_abandoned_requests", "run_request", "summarize_thread"]


def _move(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for name in MOVED:
        Schedule.objects.filter(func=f"{old}.{name}").update(func=f"{new}.{name}")


def forwards(apps, schema_editor):
    _move(apps, "conversations.tasks", "pipeline.tasks")


def backwards(apps, schema_editor):
    _move(apps, "pipeline.tasks", "conversations.tasks")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0002_schedule_sweeper"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
