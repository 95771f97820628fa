"""Load the second batch of shipped route examples (about 900 more, all written for Trollama).

``0006`` loaded the first 514 lines of ``routing/data/examples.jsonl``; this
adds every line after them: more varied word problems, logic puzzles, small
programming tasks against real engineering work, explanations against
questions that need current sources, writing, role-play and chat (see
``routing/data/README.md``). A fresh install, where ``0006`` already read the
whole file, gets nothing twice: the (route, text) pair is unique. Reversing
removes exactly these lines' rows, so what ``0006`` loaded stays.
"""

import json
from pathlib import Path

from django.db import migrations

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples.jsonl"
LOADED_BY_0006 = 514


def _added_lines() -> list[dict]:
    lines = [line for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines[LOADED_BY_0006:]]


def forwards(apps, schema_editor):
    Route = apps.get_model("routing", "Route")
    RouteExample = apps.get_model("routing", "RouteExample")
    routes = {route.slug: route for route in Route.objects.all()}
    rows = [
        RouteExample(route=routes[data["route"]], text=data["text"], source=data["source"], licence=data["licence"])
        for data in _added_lines()
        if data["route"] in routes
    ]
    RouteExample.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def backwards(apps, schema_editor):
    RouteExample = apps.get_model("routing", "RouteExample")
    by_route: dict[str, list[str]] = {}
    for data in _added_lines():
        by_route.setdefault(data["route"], []).append(data["text"])
    for slug, texts in by_route.items():
        RouteExample.objects.filter(route__slug=slug, source="trollama", text__in=texts).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0007_breaker_counts_requests")]
    operations = [migrations.RunPython(forwards, backwards)]
