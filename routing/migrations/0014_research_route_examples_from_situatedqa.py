"""Load the SituatedQA rows of ``routing/data/public_examples.jsonl`` and our lines after the 1,806th.

SituatedQA's train split gives the ``research`` route a public source (questions whose answer depends on
when they are asked) and ``general`` questions that do not; ``routing/data/build.py`` draws them, seeded.
Each row's ``source`` names the corpus, split and id (``situatedqa train #-7403575036973160293``), as in
``0011``. Our new lines are object-oriented and whole-system designs for ``complex_code``. Fresh installs
load everything through ``0006`` and ``0011`` as well; the (route, text) pair is unique, so nothing comes
twice. Reversing removes exactly these rows.
"""

import json
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data"
EXAMPLES = DATA / "public_examples.jsonl"
OURS = DATA / "examples.jsonl"
LOADED_BEFORE = 1806  # the lines of examples.jsonl that 0006, 0008 and 0011 loaded
LOADED_UP_TO = 1907  # the lines after it are 0016's
CORPUS = "situatedqa"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lines() -> list[dict]:
    return [data for data in _read(EXAMPLES) if data["source"] == CORPUS]


def _our_new_lines() -> list[dict]:
    return _read(OURS)[LOADED_BEFORE:LOADED_UP_TO]


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
    rows += [
        RouteExample(route=routes[data["route"]], text=data["text"], source=data["source"], licence=data["licence"])
        for data in _our_new_lines()
        if data["route"] in routes
    ]
    RouteExample.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def backwards(apps, schema_editor):
    RouteExample = apps.get_model("routing", "RouteExample")
    sources = [source_of(data) for data in _lines()]
    for start in range(0, len(sources), 500):  # SQLite limits the parameters of one query
        RouteExample.objects.filter(source__in=sources[start : start + 500]).delete()
    by_route: dict[str, list[str]] = {}
    for data in _our_new_lines():
        by_route.setdefault(data["route"], []).append(data["text"])
    for slug, texts in by_route.items():
        RouteExample.objects.filter(route__slug=slug, source="trollama", text__in=texts).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0013_router_state_version")]
    operations = [migrations.RunPython(forwards, backwards)]
