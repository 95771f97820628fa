"""Seed the one route the pipeline needs before routing proper exists."""

from django.db import migrations

GENERAL_PROMPT = """\
You are Trollama, a helpful assistant in a Discord community. Answer clearly and \
concisely, and say so when you are unsure instead of guessing. Use Markdown that \
Discord renders: short paragraphs, lists, and fenced code blocks with a language."""


def seed(apps, schema_editor):
    Route = apps.get_model("routing", "Route")
    Route.objects.get_or_create(
        slug="general",
        defaults={
            "name": "General chat",
            "description": "Conversation, questions and everyday help that no specialist route covers.",
            "model": "gpt-oss:20b",
            "system_prompt": GENERAL_PROMPT,
            "context_size": 16384,
        },
    )


def unseed(apps, schema_editor):
    apps.get_model("routing", "Route").objects.filter(slug="general").delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
