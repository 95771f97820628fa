"""Reading the files users send: what kind each is, and what the model gets from it.

Pure functions over bytes, with no Django state, so every file type is tested
directly. ``read_upload`` either returns what to store (the bytes to keep, the
text the model reads, a note for the user) or raises ``Unreadable`` with a
reason written for the user.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import PurePosixPath

import charset_normalizer
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from artifacts.filenames import safe_filename

logger = logging.getLogger(__name__)

IMAGE, TEXT, PDF = "image", "text", "pdf"

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
# Text the model reads as is: prose, data and source code.
TEXT_EXTENSIONS = {
    *(".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml"),
    *(".ini", ".cfg", ".conf", ".env", ".log", ".xml", ".html", ".htm", ".css", ".scss", ".sql", ".tex"),
    *(".py", ".pyi", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts", ".scala", ".go", ".rs"),
    *(".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".m", ".swift", ".rb", ".php", ".pl", ".lua", ".r", ".jl"),
    *(".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".dockerfile", ".gradle", ".vue", ".svelte", ".diff"),
    *(".patch", ".srt", ".vtt", ".proto", ".graphql", ".hs", ".ex", ".exs", ".erl", ".clj", ".dart", ".zig"),
}
TEXT_NAMES = {"dockerfile", "makefile", "readme", "license", "procfile", "gemfile", "justfile"}
# Dot files arrive without their dot (``.env`` is kept as ``env``: see ``upload_name``).
TEXT_NAMES |= {"env", "gitignore", "gitattributes", "dockerignore", "editorconfig", "bashrc", "zshrc", "npmrc"}
TEXT_TYPES = {"application/json", "application/xml", "application/x-yaml", "application/javascript"}
# Pillow formats we accept and the MIME type of what we store.
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}
# Pillow refuses larger images by default too; say so in our own words.
MAX_IMAGE_PIXELS = 80_000_000


@dataclass(frozen=True)
class Upload:
    """A file as a user sent it."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_text_chars: int
    max_pdf_pages: int
    max_image_side: int


@dataclass(frozen=True)
class ReadFile:
    """What to store for one upload."""

    kind: str
    filename: str
    content_type: str
    data: bytes  # what is kept: the upload, or the resized image
    extracted_text: str = ""
    note: str = ""


class Unreadable(Exception):
    """The file cannot be used; ``reason`` says why, for the user."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason

    @property
    def message(self) -> str:
        return f"I can't use {self.filename}: {self.reason}"


MB = 1024 * 1024
# Discord accepts at most ten files on one message.
MAX_FILES = 10


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB".replace(".0 MB", " MB")


def upload_limit(*, max_mb: int, platform_limit: int | None = None) -> int:
    """Bytes a file may have: our setting, never above what the platform (a Discord server) allows."""
    limit = max_mb * MB
    return min(limit, platform_limit) if platform_limit else limit


def upload_name(raw: str, content_type: str) -> str:
    """The name an upload is known by from the start: for the user, the model and storage alike.

    The one cleaning path artifacts use too (``artifacts.filenames.safe_filename``):
    no folders or ``..``, no NUL, control or bidirectional-override characters,
    no leading dot (``.env`` becomes ``env``), at most 120 bytes with the
    extension kept. A name with nothing usable left (``..``) becomes ``upload``
    with the extension its declared type implies, so it is judged by its type.
    """
    name = safe_filename(raw)
    if name is not None:
        return name
    extension = mimetypes.guess_extension(content_type.split(";")[0].strip().lower()) or ""
    return f"upload{extension}"


def kind_of(filename: str, content_type: str) -> str | None:
    """Which reader a file goes to, from its name and declared type; None if none does."""
    path = PurePosixPath(filename.lower())
    suffix = path.suffix
    base_type = content_type.split(";")[0].strip().lower()
    if suffix == ".pdf" or base_type == "application/pdf":
        return PDF
    if suffix in IMAGE_EXTENSIONS or (base_type.startswith("image/") and not suffix):
        return IMAGE
    if suffix in TEXT_EXTENSIONS or path.name in TEXT_NAMES or path.stem in TEXT_NAMES:
        return TEXT
    if not suffix and (base_type.startswith("text/") or base_type in TEXT_TYPES):
        return TEXT
    return None


def check_upload(*, filename: str, content_type: str, size: int, max_bytes: int) -> str:
    """Refuse by name, type and size before anything is downloaded; returns the kind.

    ``filename`` is cleaned first (``upload_name``), so a refusal never repeats a hostile name.
    """
    filename = upload_name(filename, content_type)
    if size > max_bytes:
        raise Unreadable(filename, f"it is {megabytes(size)} and the limit is {megabytes(max_bytes)}.")
    kind = kind_of(filename, content_type)
    if kind is None:
        raise Unreadable(
            filename,
            f"I only read images, PDFs, and text or code files, and {_describe_type(filename, content_type)} "
            "is none of those. If it holds text, send it as a .txt file.",
        )
    return kind


def _describe_type(filename: str, content_type: str) -> str:
    suffix = PurePosixPath(filename).suffix
    if suffix:
        return f"a {suffix} file"
    return f"a file of type {content_type}" if content_type else "a file without an extension"


def read_upload(upload: Upload, *, limits: Limits) -> ReadFile:
    """What to store for ``upload``, under its cleaned name (``upload_name``); raises ``Unreadable``."""
    upload = dataclasses.replace(upload, name=upload_name(upload.name, upload.content_type))
    kind = check_upload(
        filename=upload.name, content_type=upload.content_type, size=len(upload.data), max_bytes=limits.max_bytes
    )
    if not upload.data:
        raise Unreadable(upload.name, "the file is empty.")
    if kind == IMAGE:
        return read_image(upload, max_side=limits.max_image_side)
    if kind == PDF:
        return read_pdf(upload, max_pages=limits.max_pdf_pages, max_chars=limits.max_text_chars)
    return read_text(upload, max_chars=limits.max_text_chars)


# -- Text ---------------------------------------------------------------------


def decode_text(data: bytes) -> str | None:
    """The text in ``data``, or None when it is not text in any encoding we can tell."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # NUL bytes: binary, whatever the extension says (UTF-16 has its BOM)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    return None if best is None else str(best)


def _truncate(text: str, max_chars: int, what: str) -> tuple[str, str]:
    if len(text) <= max_chars:
        return text, ""
    return text[:max_chars], f"Only the first {max_chars:,} of {len(text):,} characters of this {what} were read."


def read_text(upload: Upload, *, max_chars: int) -> ReadFile:
    text = decode_text(upload.data)
    if text is None:
        raise Unreadable(
            upload.name, "it is named like a text file but holds binary data. Send the original file instead."
        )
    text, note = _truncate(text, max_chars, "file")
    return ReadFile(TEXT, upload.name, upload.content_type or "text/plain", upload.data, text, note)


# -- PDF ----------------------------------------------------------------------


def read_pdf(upload: Upload, *, max_pages: int, max_chars: int) -> ReadFile:
    try:
        reader = PdfReader(io.BytesIO(upload.data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable(upload.name, "the PDF is password-protected. Send an unprotected copy.")
        total = len(reader.pages)
        pages = [page.extract_text() or "" for page in reader.pages[:max_pages]]
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf raises assorted errors for damaged files; none is the user's to debug.
        logger.info("Unreadable PDF %r: %s", upload.name, exc)
        raise Unreadable(upload.name, "the PDF is damaged or not really a PDF, so I couldn't read it.") from None
    text = "\n\n".join(f"--- Page {number} ---\n{page.strip()}" for number, page in enumerate(pages, 1) if page.strip())
    if not text:
        raise Unreadable(
            upload.name,
            "the PDF has no text I can extract; it is probably scanned images. "
            "Send the pages as images, or a PDF with selectable text.",
        )
    notes = []
    if total > max_pages:
        notes.append(f"Only the first {max_pages} of {total} pages were read.")
    text, cut = _truncate(text, max_chars, "PDF")
    if cut:
        notes.append(cut)
    return ReadFile(PDF, upload.name, "application/pdf", upload.data, text, " ".join(notes))


# -- Images -------------------------------------------------------------------


def read_image(upload: Upload, *, max_side: int) -> ReadFile:
    """Check the image decodes, and scale it so its longer side is at most ``max_side``."""
    try:
        with Image.open(io.BytesIO(upload.data)) as probe:
            probe.verify()  # catches truncated and corrupt files before decoding
        image = Image.open(io.BytesIO(upload.data))
        if image.format not in IMAGE_FORMATS:
            raise Unreadable(upload.name, f"{image.format} images aren't supported; send PNG, JPEG, GIF or WebP.")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise Unreadable(upload.name, f"the image is {image.width}x{image.height} pixels, too large to read.")
        image.load()
    except Unreadable:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise Unreadable(upload.name, "the image is damaged or not really an image, so I couldn't read it.") from None

    original = image.size
    if max(original) <= max_side and image.format in ("PNG", "JPEG"):
        data, content_type, note = upload.data, IMAGE_FORMATS[image.format], ""
    else:
        image.thumbnail((max_side, max_side))
        data, content_type = _encode(image)
        note = (
            f"Scaled from {original[0]}x{original[1]} to {image.width}x{image.height}."
            if image.size != original
            else ""
        )
    return ReadFile(IMAGE, upload.name, content_type, data, "", note)


def _encode(image: Image.Image) -> tuple[bytes, str]:
    """PNG for images with transparency or few colours, JPEG for photographs."""
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P", "1", "L") or image.info.get("transparency") is not None:
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png"
    image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue(), "image/jpeg"
