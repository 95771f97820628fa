"""Load the GPTeacher Roleplay rows of ``routing/data/public_examples.jsonl`` (``general``).

Role-play requests ("You are a pirate captain…", "As a historian, describe…") gave the fast path its
largest out-of-distribution error: with nothing like them among ``general``'s examples, a request to play
a detective or advise a king scored as ``reasoning``. ``routing/data/build.py`` draws 250 of them, seeded.
Each row's ``source`` names the corpus, split and id (``gpteacher-roleplay train #17``), as in ``0011``.
The (route, text) pair is unique, so nothing comes twice; reversing removes exactly these rows.
"""

import json
from pathlib import Path

from django.db import migrations

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "public_examples.jsonl"
CORPUS = "gpteacher-roleplay"


def _lines() -> list[dict]:
    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [data for data in rows if data["source"] == CORPUS]


def _source(data: dict) -> str:
    return f"{data['source']} {data['split']} #{data['id']}"[:100]


def forwards(apps, schema_editor):
    Route = apps.get_model("routing", "Route")
    RouteExample = apps.get_model("routing", "RouteExample")
    routes = {route.slug: route for route in Route.objects.all()}
    RouteExample.objects.bulk_create(
        [
            RouteExample(route=routes[data["route"]], text=data["text"], source=_source(data), licence=data["licence"])
            for data in _lines()
            if data["route"] in routes
        ],
        ignore_conflicts=True,
        batch_size=500,
    )


def backwards(apps, schema_editor):
    apps.get_model("routing", "RouteExample").objects.filter(source__startswith=f"{CORPUS} train #").delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0014_research_route_examples_from_situatedqa")]
    operations = [migrations.RunPython(forwards, backwards)]
