"""Schedule the sweeper that deletes expired artifacts and expired uploads."""

from django.db import migrations

CLEANUP = "artifacts.tasks.cleanup_expired_files"


def schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        func=CLEANUP,
        defaults={"name": "Delete expired files", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=CLEANUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("artifacts", "0001_artifact"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(schedule, unschedule)]
