"""The token the router's per-process cache checks on each decision (``routing.state``)."""

from django.db import migrations, models


def create_row(apps, schema_editor):
    apps.get_model("routing", "RouterStateVersion").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0012_scheduler_learned_capacity"),
    ]

    operations = [
        migrations.CreateModel(
            name="RouterStateVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token", models.CharField(default="initial", max_length=32)),
            ],
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
