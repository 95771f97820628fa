"""Messages of several clauses get a vector per clause too (``IndexedMessage.pieces``): embed those again.

Only the messages that have clauses to embed are queued; their current vectors stay searchable until the new
ones are written, so /ask keeps answering meanwhile.
"""

from django.db import migrations, models

from knowledge.vectors import clauses


def embed_clauses(apps, schema_editor):
    messages = apps.get_model("knowledge", "IndexedMessage").objects
    several = [
        message_id
        for message_id, text in messages.filter(deleted=False, needs_embedding=False)
        .values_list("message_id", "text")
        .iterator(chunk_size=5000)
        if clauses(text)
    ]
    for start in range(0, len(several), 5000):
        messages.filter(message_id__in=several[start : start + 5000]).update(needs_embedding=True)


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0004_indexedthread")]

    operations = [
        migrations.AddField(
            model_name="indexedmessage",
            name="pieces",
            field=models.BinaryField(
                blank=True,
                help_text="Unit float32 vectors of its clauses, one after another, when it has more than one.",
                null=True,
            ),
        ),
        migrations.RunPython(embed_clauses, migrations.RunPython.noop),
    ]
