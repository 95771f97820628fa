"""Turn the fast path on by default and seed its training examples.

A fresh install had no embedding model, so every message no rule caught cost
a call to the router model. ``all-minilm`` (``ollama pull all-minilm``, 46 MB)
is now the default; until it is pulled, ``doctor`` and ``syncmodels`` say so
and routing goes on without it. The examples are ``routing/data/examples.jsonl``
(see ``routing/data/README.md`` for where they come from); the classifier is
trained from them by the scheduled model sync or ``manage.py retrainrouter``.
"""

import json
from pathlib import Path

from django.db import migrations

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples.jsonl"


def forwards(apps, schema_editor):
    RouterSettings = apps.get_model("routing", "RouterSettings")
    RouterSettings.objects.get_or_create(pk=1)
    RouterSettings.objects.filter(embedding_model="").update(embedding_model="all-minilm")
    Route = apps.get_model("routing", "Route")
    RouteExample = apps.get_model("routing", "RouteExample")
    routes = {route.slug: route for route in Route.objects.all()}
    rows = []
    for line in EXAMPLES.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            if data["route"] in routes:
                rows.append(
                    RouteExample(
                        route=routes[data["route"]], text=data["text"], source=data["source"], licence=data["licence"]
                    )
                )
    RouteExample.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def backwards(apps, schema_editor):
    apps.get_model("routing", "RouteExample").objects.filter(source="trollama").delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0005_route_classifier")]
    operations = [migrations.RunPython(forwards, backwards)]
