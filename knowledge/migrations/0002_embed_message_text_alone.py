"""Messages are now embedded by their text alone (no "author: " prefix): embed what is indexed again.

The old vectors stay searchable until their new ones are written, so /ask keeps answering meanwhile.
"""

from django.db import migrations


def embed_again(apps, schema_editor):
    apps.get_model("knowledge", "IndexedMessage").objects.filter(deleted=False).update(needs_embedding=True)


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_indexed_channels_messages_and_asks")]

    operations = [migrations.RunPython(embed_again, migrations.RunPython.noop)]
