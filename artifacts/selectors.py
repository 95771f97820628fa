"""Read-only queries about artifacts."""

from __future__ import annotations

from typing import Any

from artifacts.links import public_url
from artifacts.models import Artifact


class Gone(Exception):
    """The artifact existed but has expired."""


def artifact_summary(artifact: Artifact) -> dict[str, Any]:
    """The JSON-able description events and snapshots carry."""
    return {
        "id": artifact.pk,
        "filename": artifact.filename,
        "size": artifact.size,
        "content_type": artifact.content_type,
        "url": public_url(artifact),
        "expires_at": artifact.expires_at.isoformat(),
    }


def request_artifacts(request_id: int) -> list[dict[str, Any]]:
    """The live artifacts of one request, in the order they appear in the answer."""
    artifacts = Artifact.objects.filter(request_id=request_id).order_by("pk")
    return [artifact_summary(artifact) for artifact in artifacts if not artifact.is_expired]


def downloadable_artifact(artifact_id: int) -> Artifact:
    """The artifact to serve. Raises ``Artifact.DoesNotExist``, or ``Gone`` once expired."""
    artifact = Artifact.objects.get(pk=artifact_id)
    if artifact.is_expired:
        raise Gone
    return artifact
