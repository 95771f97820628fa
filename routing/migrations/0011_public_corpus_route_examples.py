"""Load route examples drawn from public corpora's training splits (``routing/data/public_examples.jsonl``).

GSM8K train questions for ``math`` and MBPP train and validation tasks for
``simple_code``, chosen by ``routing/data/build.py`` (seeded). Each row's
``source`` names the corpus, split and the corpus's own id (``gsm8k train #12``)
and ``licence`` its licence; see ``routing/data/README.md``. Reversing removes
exactly these rows.
"""

import json
from pathlib import Path

from django.db import migrations

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "public_examples.jsonl"


def _lines() -> list[dict]:
    return [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]


def source_of(data: dict) -> str:
    return f"{data['source']} {data['split']} #{data['id']}"[:100]


def forwards(apps, schema_editor):
    Route = apps.get_model("routing", "Route")
    RouteExample = apps.get_model("routing", "RouteExample")
    routes = {route.slug: route for route in Route.objects.all()}
    rows = [
        RouteExample(route=routes[data["route"]], text=data["text"], source=source_of(data), licence=data["licence"])
        for data in _lines()
        if data["route"] in routes
    ]
    RouteExample.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def backwards(apps, schema_editor):
    RouteExample = apps.get_model("routing", "RouteExample")
    RouteExample.objects.filter(source__in=[source_of(data) for data in _lines()]).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0010_scheduler_host_memory_and_slots")]
    operations = [migrations.RunPython(forwards, backwards)]
