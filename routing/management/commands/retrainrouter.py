"""``manage.py retrainrouter``: rebuild the fast path's classifier from the labelled examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing import training


class Command(BaseCommand):
    help = (
        "Embed the route examples with the configured embedding model, train the classifier and calibrate "
        "each route's threshold. Workers pick the new classifier up on their next message."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--load",
            action="append",
            type=Path,
            default=[],
            metavar="FILE",
            help='First add the examples in this JSON Lines file ({"route": ..., "text": ..., "source": ..., '
            '"licence": ...} a line); may be repeated.',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for path in options["load"]:
            if not path.is_file():
                raise CommandError(f"{path} is not a file.")
            loaded = training.load_examples(path=path)
            self.stdout.write(f"{path}: {loaded.added} examples added, {loaded.skipped} skipped")
        try:
            retrained = training.retrain()
        except training.TrainingUnavailable as exc:
            raise CommandError(str(exc)) from exc
        row = retrained.classifier
        self.stdout.write(
            f"Trained on {row.examples} examples with {row.embedding_model} ({retrained.embedded} newly embedded)."
        )
        for slug, figures in sorted(row.report.items()):
            threshold = figures["threshold"]
            shown = "never (left to the router model)" if threshold > 1 else f"{threshold:.2f}"
            self.stdout.write(
                f"  {slug:<13} threshold {shown}; held-out examples decided {figures['decided']}/"
                f"{figures['examples']}, right {figures['right']}"
            )
