"""Downloads: by signed link for anyone holding one, by id for staff."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase, HttpResponseGone
from django.views.decorators.http import require_GET

from artifacts import selectors, services
from artifacts.links import InvalidLink, read_token
from artifacts.models import Artifact

GONE_TEXT = "This file has expired and was deleted. Ask again to get a new one."


@require_GET
def public_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """A signed link: 404 when forged or altered, 410 once the file has expired."""
    try:
        claim = read_token(token)
    except InvalidLink:
        raise Http404("No such file.") from None
    if claim.is_expired:
        return HttpResponseGone(GONE_TEXT, content_type="text/plain; charset=utf-8")
    return _serve(claim.artifact_id)


@require_GET
def staff_download(request: HttpRequest, artifact_id: int) -> HttpResponseBase:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise PermissionDenied
    return _serve(artifact_id)


def _serve(artifact_id: int) -> HttpResponseBase:
    try:
        artifact = selectors.downloadable_artifact(artifact_id)
    except Artifact.DoesNotExist:
        raise Http404("No such file.") from None
    except selectors.Gone:
        return HttpResponseGone(GONE_TEXT, content_type="text/plain; charset=utf-8")
    try:
        handle = artifact.file.open("rb")
    except FileNotFoundError:
        # The row outlived its file (deleted by hand, or a failed cleanup half done).
        return HttpResponseGone(GONE_TEXT, content_type="text/plain; charset=utf-8")
    services.record_download(artifact=artifact)
    content_type = artifact.content_type
    if content_type.startswith("text/") or content_type in {"application/json", "application/yaml", "application/sql"}:
        content_type += "; charset=utf-8"
    # Always a download, never rendered inline: an HTML or SVG artifact must not run in our origin.
    response = FileResponse(handle, as_attachment=True, filename=artifact.filename, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response
