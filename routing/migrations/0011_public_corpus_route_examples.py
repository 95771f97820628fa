"""Load route examples drawn from public corpora's training splits (``routing/data/public_examples.jsonl``).

GSM8K train questions for ``math`` and MBPP train and validation tasks for
``simple_code``, chosen by ``routing/data/build.py`` (seeded). Each row's
``source`` names the corpus, split and the corpus's own id (``gsm8k train #12``)
and ``licence`` its licence; see ``routing/data/README.md``. Reversing removes
exactly these rows. It also loads the self-written lines of ``examples.jsonl``
after the 1,647 that ``0006`` and ``0008`` loaded (fresh installs already have
them from ``0006``; the (route, text) pair is unique, so nothing comes twice).
"""

import json
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data"
EXAMPLES = DATA / "public_examples.jsonl"
OURS = DATA / "examples.jsonl"
LOADED_BEFORE = 1647  # the lines of examples.jsonl that 0006 and 0008 loaded
LOADED_UP_TO = 1806  # later lines (and later corpora) are 0014's
CORPORA = ("gsm8k", "mbpp")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lines() -> list[dict]:
    return [data for data in _read(EXAMPLES) if data["source"] in CORPORA]


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
    dependencies = [("routing", "0010_scheduler_host_memory_and_slots")]
    operations = [migrations.RunPython(forwards, backwards)]
