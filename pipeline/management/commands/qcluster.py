"""``manage.py qcluster``: django-q2's worker cluster, supervised so that a crash or a stop loses no answer.

This replaces django-q2's own command of the same name (``conversations`` comes
before ``django_q`` in INSTALLED_APPS for that); see ``pipeline.cluster``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from pipeline.cluster import ClusterSupervisor


class Command(BaseCommand):
    help = (
        "Start the workers (a django-q2 cluster). On SIGTERM or Ctrl-C they hand the answers in flight back to the "
        "queue and exit within WORKER_STOP_GRACE seconds; another cluster, or this one restarted, resumes them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-n",
            "--name",
            dest="cluster_name",
            default=None,
            help="Cluster name instead of the one in Q_CLUSTER (django-q2's multi-queue setup).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings.SECRET_KEY  # noqa: B018 -- as django-q2's command: signing needs it, so fail before forking
        if options["cluster_name"]:
            # django-q2 reads the cluster name from the environment in every process it forks.
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        sys.exit(ClusterSupervisor().run())
