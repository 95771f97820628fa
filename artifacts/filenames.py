"""Making a file name that came out of a model safe to store and to offer for download.

A name is only ever a name: folders, drive letters, hidden-file dots and
anything a file system or a browser would treat specially are removed, so
``../../etc/passwd`` becomes ``passwd`` and ``CON.txt`` becomes ``_CON.txt``.
Storage never uses the name as a path on its own either (see
``artifacts.models.artifact_upload_to``); this is what the user sees.

Pure: no Django.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# UTF-8 bytes, well under the 255 most file systems allow, with room for the
# "-2" that de-duplication may add.
MAX_FILENAME_BYTES = 120

# Characters Windows refuses in names, and path separators of every system.
_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')
_SEPARATORS = re.compile(r"[/\\]")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))]
)


def safe_filename(raw: str) -> str | None:
    """A safe version of ``raw``, or None when nothing usable is left.

    In order: NFKC-normalise (so a full-width solidus, U+FF0F, is a slash before slashes
    are looked for, and composed accents are one character); keep the last path
    component; drop control and format characters (including bidirectional
    overrides, which can disguise an extension); replace characters Windows
    forbids with ``_``; strip leading dots (hidden files) and trailing dots and
    spaces (which Windows drops); prefix reserved Windows device names; and
    shorten to ``MAX_FILENAME_BYTES`` keeping the extension.
    """
    name = unicodedata.normalize("NFKC", raw)
    name = _SEPARATORS.split(name)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = _FORBIDDEN.sub("_", name).strip()
    name = name.lstrip(".").rstrip(". ").strip()
    if not name or not any(ch.isalnum() for ch in name):
        return None
    if name.split(".", 1)[0].upper().rstrip() in _WINDOWS_RESERVED:
        name = "_" + name
    return _shorten(name, MAX_FILENAME_BYTES)


def storage_name(name: str) -> str:
    """The last part of a storage path for a file shown as ``name``: ASCII letters, digits, ``.``, ``-``, ``_``.

    Storage back ends are pickier than browsers (spaces, non-ASCII, a leading
    dot that hides the file), so the stored path gets this and the display
    name stays in the row. Never empty, never hidden, never ``..``.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name)
    if not any(ch.isalnum() for ch in cleaned):
        return "file"
    if not cleaned[0].isalnum():  # nothing left of the stem ("★★.txt"), or a hidden name (".env")
        cleaned = "file" + cleaned
    return _shorten(cleaned, MAX_FILENAME_BYTES)


def _shorten(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode()) > limit // 4:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = limit - len(suffix.encode())
    # Cut on a character boundary, never inside a multi-byte character.
    stem = stem.encode()[:room].decode(errors="ignore").rstrip(". ")
    return stem + suffix


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` in order, with later repeats renamed ``name-2.ext``, ``name-3.ext``…

    Case-insensitive, since the user may save them on a case-insensitive file system.
    """
    taken: set[str] = set()
    result = []
    for name in names:
        candidate, number = name, 1
        stem, dot, extension = name.rpartition(".")
        if not stem:  # no extension, or a name like "Dockerfile"
            stem, dot, extension = name, "", ""
        while candidate.casefold() in taken:
            number += 1
            ending = f"-{number}{dot}{extension}"
            room = MAX_FILENAME_BYTES - len(ending.encode())
            candidate = stem.encode()[:room].decode(errors="ignore") + ending
        taken.add(candidate.casefold())
        result.append(candidate)
    return result
