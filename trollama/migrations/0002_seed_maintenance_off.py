"""Seed the single maintenance row, switched off."""

from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("trollama", "Maintenance").objects.get_or_create(pk=1, defaults={"mode": "off"})


class Migration(migrations.Migration):
    dependencies = [("trollama", "0001_maintenance")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
