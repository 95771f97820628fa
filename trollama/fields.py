"""Model fields shared by the apps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models

NUL = "\x00"
# U+FFFD REPLACEMENT CHARACTER: Unicode's own mark for "a character was here that could not be kept".
REPLACEMENT = "\ufffd"


def without_nul(text: str) -> str:
    """``text`` with every U+0000 replaced by U+FFFD, which PostgreSQL can store."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


class NulSafeTextField(models.TextField):
    """A ``TextField`` that stores U+0000 (NUL) as U+FFFD, on every database.

    PostgreSQL refuses NUL in text ("PostgreSQL text fields cannot contain NUL
    (0x00) bytes"), so a model answer or a PDF's text that contains one made
    the whole write fail and left the request stuck. Text columns that hold
    what models and files produce use this field instead, and every write
    path gets it, ``save()`` and ``QuerySet.update()`` alike. It is done on
    SQLite too, so both configurations store the same text.

    Only the stored copy changes: live events, and so the terminal and the
    Discord answer, carry the model's text exactly, and files extracted from
    an answer keep their exact bytes (they are cut from the text before it is
    stored). A stored U+FFFD may therefore stand for a NUL: no other code
    point is changed, and text without NUL is stored byte for byte.

    Deconstructs as a plain ``TextField``: the column is the same, so no
    migration is needed, and none is made.
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return without_nul(value) if isinstance(value, str) else value

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.TextField", args, kwargs
