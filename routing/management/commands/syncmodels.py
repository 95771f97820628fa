"""``manage.py syncmodels``: read every host's models into the model table, then warm the routes that ask for it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing import services, training
from routing.models import OllamaHost
from routing.sync import sync_models


class Command(BaseCommand):
    help = "Sync models and their capabilities from the Ollama hosts (exit status 1 if a host was unreachable)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", action="append", help="Only this host (by name); may be repeated.")
        parser.add_argument("--no-warm", action="store_true", help="Don't load the keep_warm routes' models.")

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = None
        if options["host"]:
            hosts = list(OllamaHost.objects.filter(name__in=options["host"]))
            unknown = set(options["host"]) - {host.name for host in hosts}
            if unknown:
                raise CommandError(
                    f"Unknown host(s): {', '.join(sorted(unknown))}. See the admin: Routing → Ollama hosts."
                )
        reports = sync_models(hosts=hosts)
        for report in reports:
            if report.reachable:
                gone = f"; no longer listed: {', '.join(report.gone)}" if report.gone else ""
                self.stdout.write(f"{report.host}: {len(report.models)} models ({', '.join(report.models)}){gone}")
            else:
                self.stderr.write(
                    f"{report.host}: unreachable ({report.error}); its models are left as they were, marked "
                    "'host unreachable'. Check its URL (OLLAMA_HOST in .env for the default host)."
                )
        missing = services.missing_embedding_model()
        if missing:
            self.stderr.write(
                f"The router's embedding model {missing} is on no host: run `ollama pull {missing}` on one. "
                "Until then every message no rule decides costs a call to the router model."
            )
        else:
            retrained = training.retrain_if_stale()
            if retrained is not None:
                self.stdout.write(f"router classifier retrained on {retrained.examples} examples")
        if not options["no_warm"]:
            for warmed in services.warm_up():
                state = f"failed: {warmed.error}" if warmed.error else f"loaded on {warmed.host}"
                self.stdout.write(f"warm {warmed.model} (keep_alive {warmed.keep_alive or 'default'}): {state}")
        if any(not report.reachable for report in reports):
            raise CommandError("Some hosts could not be reached.", returncode=1)
