"""Finding the files in a model's answer.

Every fenced code block whose file name can be found becomes a file. The name
is looked for, in this order:

1. on the opening fence: ``python title="x.py"`` (also ``filename=``, ``file=``,
   ``name=``, ``path=``), ``python:x.py``, or a name alone or after the language
   (``x.py``, ``python x.py``);
2. on the last non-blank line before the fence, when that line is nothing but
   the name with some Markdown around it: ``**x.py**``, ``File: x.py``,
   ``x.py:``, ``### x.py``, ```` `x.py` ````, ``1. **x.py**``; or a short line
   ending in a colon that holds exactly one backticked name ("Save this as
   ```scraper.py```:");
3. in a comment that is the block's first line (after a ``#!`` line, if any)
   and holds nothing but the name: ``# x.py``, ``// x.py``, ``<!-- x.html -->``,
   ``-- x.sql``, ``/* x.css */``. The comment stays in the file.

When the user asked for files and *no* block of the answer is named, every
block is named after its language (``python`` → ``script.py``, ``yaml`` →
``config.yaml``, no language → ``file.txt``). When some blocks are named, the
unnamed ones are commands or examples and stay text.

Fences follow CommonMark: up to three spaces of indentation, three or more
backticks or tildes, a backtick fence's info string holds no backtick, and a
block ends at a line of the same character at least as long (or at the end of
the answer). Inside a four-backtick block, a three-backtick fence is content,
so a Markdown file that contains code blocks stays one file. Up to N spaces are
removed from the content lines of a fence indented by N spaces, as CommonMark
renders it.

Content is byte-exact: exactly the lines between the fences, each with its own
line ending (``\\n``, ``\\r\\n`` or ``\\r``), so a file ends with a newline when its
last line had one, which is always the case for a closed block. Nothing else is
added or removed: no stripping of whitespace, tabs, blank lines or brackets.
Blocks that hold only whitespace are skipped.

This is hand-written rather than built on a Markdown parser (markdown-it-py)
because those normalise line endings and tabs, and the content must be the
model's bytes.

Pure: no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from artifacts.filenames import safe_filename, unique_names
from artifacts.languages import default_filename, extension_for, known_extensions

MAX_FILES_PER_ANSWER = 20

_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")

_KNOWN = "|".join(sorted((re.escape(ext) for ext in known_extensions()), key=len, reverse=True))
_WHOLE_NAMES = r"Dockerfile|Containerfile|Makefile|Procfile|Jenkinsfile|Gemfile|Vagrantfile|Caddyfile|Justfile"
# A name in running text must have an extension we know, so "e.g." or "example.com:" is not a file.
_KNOWN_NAME = rf"(?:[\w.~-]*[/\\])*(?:[\w][\w.+@-]*\.(?:{_KNOWN})|{_WHOLE_NAMES})"
# Where the model says outright that it is a name (title="…"), any extension will do.
_ANY_NAME = r"(?:[\w.~-]*[/\\])*[\w][\w.+@ -]*\.[A-Za-z0-9][\w+-]{0,15}"

_ATTRIBUTE = re.compile(r"""\b(?:title|filename|file|name|path)\s*=\s*(?:"([^"]+)"|'([^']+)'|([^\s"'{}]+))""", re.I)
_LANG_COLON = re.compile(rf"^([\w+#.-]*):({_ANY_NAME})$")
_BARE_NAME = re.compile(rf"^{_KNOWN_NAME}$", re.IGNORECASE)

_LIST_OR_HEADING = re.compile(r"^(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+)+")
_LABEL = re.compile(r"^(?:\*\*|__)?(?:file\s*name|file|path)\s*:?\s*(?:\*\*|__)?\s*(?=\S)", re.IGNORECASE)
_WRAPPERS = (("**", "**"), ("__", "__"), ("*", "*"), ("_", "_"), ("`", "`"), ('"', '"'), ("'", "'"), ("(", ")"))
_BACKTICKED = re.compile(rf"`({_KNOWN_NAME})`", re.IGNORECASE)
_COMMENT = re.compile(
    rf"^\s*(?:#|//|--|;|%|/\*+|<!--|\{{#|\{{-|REM\s)\s*(?:(?:file\s*name|file|path)\s*:\s*)?`?({_KNOWN_NAME})`?"
    r"\s*(?:\*+/|-->|#\}|-\})?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExtractedFile:
    filename: str
    content: str
    language: str  # the fence's language, lower-cased; "" when none was given
    named_by: str  # "fence", "line", "comment" or "language"

    @property
    def size(self) -> int:
        """Bytes, as stored (UTF-8)."""
        return len(self.content.encode())


@dataclass
class Extraction:
    files: list[ExtractedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the user: files left out, and why


@dataclass(frozen=True)
class _Block:
    info: str
    content: str
    line_before: str  # the last non-blank line before the fence, "" when none or another block


def extract_files(text: str, *, name_unnamed: bool = False, max_bytes: int | None = None) -> Extraction:
    """The files in ``text``, in order, with unique safe names.

    ``name_unnamed``: the user asked for files, so unnamed blocks are named after
    their language when no block is named. ``max_bytes``: a file larger than this
    is left out with a note saying so.
    """
    candidates: list[tuple[str | None, str, str, str]] = []  # (raw name, how, language, content)
    for block in _blocks(text):
        if not block.content.strip():
            continue
        name, language = _from_info(block.info)
        how = "fence"
        if name is None:
            name, how = _from_line(block.line_before), "line"
        if name is None:
            name, how = _from_comment(block.content), "comment"
        candidates.append((name, how, language, block.content))

    if name_unnamed and candidates and all(name is None for name, *_ in candidates):
        candidates = [
            (default_filename(language), "language", language, content) for _, _, language, content in candidates
        ]

    named = []
    for raw, how, language, content in candidates:
        safe = safe_filename(raw) if raw else None
        if safe is None and raw:
            safe = safe_filename(default_filename(language))
        if safe:
            named.append((safe, how, language, content))

    result = Extraction()
    for filename, (_, how, language, content) in zip(unique_names(n[0] for n in named), named, strict=True):
        file = ExtractedFile(filename=filename, content=content, language=language, named_by=how)
        if max_bytes is not None and file.size > max_bytes:
            result.notes.append(
                f"{filename} is {describe_size(file.size)}, over the {describe_size(max_bytes)} limit for a file, "
                "so it was not saved as a file (its text is in the answer)."
            )
        elif len(result.files) >= MAX_FILES_PER_ANSWER:
            result.notes.append(f"{filename} was not saved: an answer can carry at most {MAX_FILES_PER_ANSWER} files.")
        else:
            result.files.append(file)
    return result


def describe_size(size: int) -> str:
    """Bytes for people: "512 bytes", "12.3 kB", "9.4 MB"."""
    for unit, scale in (("MB", 1_000_000), ("kB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _lines(text: str) -> list[tuple[str, str]]:
    """``text`` as (line, line ending) pairs; joining them gives ``text`` back."""
    pieces = _LINE_BREAK.split(text)
    pairs = [(pieces[i], pieces[i + 1]) for i in range(0, len(pieces) - 1, 2)]
    if pieces[-1]:
        pairs.append((pieces[-1], ""))
    return pairs


def _blocks(text: str) -> list[_Block]:
    lines = _lines(text)
    blocks = []
    last_text_line = ""
    index = 0
    while index < len(lines):
        line, _ = lines[index]
        opening = _OPEN.match(line)
        if opening is None or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            if line.strip():
                last_text_line = line
            index += 1
            continue
        indent, marker, info = len(opening.group(1)), opening.group(2), opening.group(3)
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        content = []
        index += 1
        while index < len(lines) and not closing.match(lines[index][0]):
            body, ending = lines[index]
            strip = len(body) - len(body.lstrip(" "))
            content.append(body[min(strip, indent) :] + ending)
            index += 1
        index += 1  # past the closing fence (or the end)
        blocks.append(_Block(info=info.strip(), content="".join(content), line_before=last_text_line))
        last_text_line = ""
    return blocks


def _from_info(info: str) -> tuple[str | None, str]:
    """The name on an opening fence, if any, and the fence's language."""
    tokens = info.split()
    first = tokens[0] if tokens else ""
    language = re.split(r"[:{,]", first, maxsplit=1)[0].lower()
    attribute = _ATTRIBUTE.search(info)
    if attribute:
        return next(group for group in attribute.groups() if group), language
    colon = _LANG_COLON.match(first)
    if colon:
        return colon.group(2), colon.group(1).lower()
    for position, token in enumerate(tokens):
        if _BARE_NAME.match(token):
            if position == 0:
                extension = token.rsplit(".", 1)[-1].lower()
                language = extension if extension_for(extension) else ""
            return token, language
    return None, language


def _from_line(line: str) -> str | None:
    """The name a line just before a fence gives, if it is nothing but a name."""
    text = _LIST_OR_HEADING.sub("", line.strip())
    text = _LABEL.sub("", text)
    for _ in range(4):
        text = text.strip().rstrip(":").strip()
        unwrapped = next(
            (
                text[len(o) : -len(c)]
                for o, c in _WRAPPERS
                if len(text) > len(o) + len(c) and text.startswith(o) and text.endswith(c)
            ),
            None,
        )
        if unwrapped is None:
            break
        text = _LABEL.sub("", unwrapped)
    if _BARE_NAME.match(text):
        return text
    if line.rstrip().endswith(":") and len(line) <= 200:
        names = _BACKTICKED.findall(line)
        if len(names) == 1:
            return str(names[0])
    return None


def _from_comment(content: str) -> str | None:
    """The name a comment on the block's first line gives (after a ``#!`` line)."""
    lines = content.splitlines()[:2]
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    match = _COMMENT.match(lines[0]) if lines else None
    return match.group(1) if match else None
