"""Signed download links: anyone holding one may download that file until it expires.

The token carries the artifact's id and its expiry, signed with ``SECRET_KEY``
and a salt of its own, so it cannot be forged, altered or reused for another
artifact, and it stops working with the artifact even if the row lingers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.urls import reverse

from artifacts.models import Artifact

SALT = "trollama.artifacts.download-link"


class InvalidLink(Exception):
    """The token was not signed by us, or was altered."""


@dataclass(frozen=True)
class LinkClaim:
    artifact_id: int
    expires_at: datetime

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= datetime.now(UTC)


def make_token(artifact: Artifact) -> str:
    # A plain Signer, not signing.dumps: the expiry is in the payload, and the
    # same artifact always gets the same link.
    return signing.Signer(salt=SALT).sign_object({"id": artifact.pk, "exp": int(artifact.expires_at.timestamp())})


def read_token(token: str) -> LinkClaim:
    """What a token says, once its signature is checked. Raises ``InvalidLink``."""
    try:
        payload = signing.Signer(salt=SALT).unsign_object(token)
        return LinkClaim(int(payload["id"]), datetime.fromtimestamp(int(payload["exp"]), tz=UTC))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise InvalidLink from None


def public_url(artifact: Artifact) -> str:
    """The absolute signed link, on ``PUBLIC_URL``."""
    return settings.PUBLIC_URL + reverse("artifacts:public-download", args=[make_token(artifact)])
