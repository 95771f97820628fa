"""Splitting an answer into Discord messages without changing a byte of it.

Discord refuses messages longer than 2,000 characters, so a long answer becomes
several messages. The model's text is never rewritten (code must arrive byte for
byte); the only characters this module adds are the lines that close a code
block at the end of one message and reopen it at the start of the next, so that
each message renders on its own. Every part records which slice of the original
text it carries, so the original can always be recovered (`join_parts`).

Fences follow CommonMark: a line indented by at most three spaces that starts
with three or more backticks or tildes opens a block (a backtick fence's info
string may not contain backticks), and the block ends at a line of the same
character, at least as long, followed by nothing but spaces. Inline `code` and
``code`` are never fences.

Pure functions of their arguments: no Django, no Discord. The footer that says
what was cut or what is left of the budget (`with_footer`) is appended after
the model's text as a segment of its own.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.footnotes import notice_lines

DISCORD_LIMIT = 2000

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_VISIBLE = re.compile(r"\S")
_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class Fence:
    """An open code block: its opening line as written (no newline) and its marker run."""

    opening: str
    marker: str

    def reopenable(self, limit: int) -> bool:
        # Reopening a block whose opening line eats most of a message would leave no
        # room for the code itself; such a block is split like plain text instead.
        return len(self.opening) + len(self.marker) + 2 <= limit // 2


@dataclass(frozen=True, slots=True)
class Part:
    """One Discord message: `prefix + body + suffix`.

    `body` is `text[start:end]`, unchanged. `prefix` is a reopening fence line plus
    newline, `suffix` the line closing that block ("```" or "\\n```"); both are ""
    when the part does not cut through a code block.

    `settled` is True when no text appended later can change this part (so a live
    renderer may stop editing its message). `closer` is set only on the last part:
    the line that would close a code block the text so far leaves open, for live
    previews; the final message never gets it.
    """

    start: int
    end: int
    body: str
    prefix: str = ""
    suffix: str = ""
    settled: bool = False
    closer: str = ""
    # Where a split resuming after this part starts scanning: the start of the line
    # holding `end`, and the code block open before that line.
    resume_line: int = 0
    resume_fence: Fence | None = None

    @property
    def content(self) -> str:
        return self.prefix + self.body + self.suffix


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Split `text` into messages of at most `limit` characters each.

    Prefers blank lines, then line ends, then (for a single over-long line) the
    last whitespace near the limit, then exactly the limit. Code blocks cut in two
    are closed and reopened. No message is empty or whitespace-only; an empty or
    whitespace-only text gives no messages.
    """
    return [part.content for part in split_with_spans(text, limit) if part.content.strip()]


def join_parts(parts: Iterable[Part]) -> str:
    """The original text: the parts' bodies, without the fence lines added around them."""
    return "".join(part.body for part in parts)


def split_with_spans(text: str, limit: int = DISCORD_LIMIT, *, after: Part | None = None) -> list[Part]:
    """Split `text` into `Part`s whose bodies tile it exactly: `join_parts(...) == text`.

    With `after`, continue the split after that part instead of starting at 0.
    Precondition: `after` came from `split_with_spans(t, limit)` where `t` is a
    prefix of `text` and `after.settled`; the result then equals the remainder of
    `split_with_spans(text, limit)`, at the cost of scanning only the new tail.

    Whitespace-only text gives no parts. A part is whitespace-only only when the
    text holds a run of whitespace longer than `limit` outside a code block.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if after is not None and not after.settled:
        raise ValueError("can only resume after a settled part")
    last_visible = len(text.rstrip()) - 1
    start = after.end if after else 0
    if last_visible < start:
        return []
    scan = _Scan(text, after.resume_line if after else 0, after.resume_fence if after else None)
    parts: list[Part] = []
    settled = after is None or after.settled
    while start < len(text):
        fence = scan.fence_at(start)
        if fence and not fence.reopenable(limit):
            fence = None
        prefix = fence.opening + "\n" if fence else ""
        room = limit - len(prefix)
        if len(text) - start <= room:
            closer = scan.suffix(len(text), limit)
            if len(text) - start + len(prefix) + len(closer) > limit:
                closer = ""
            parts.append(Part(start, len(text), text[start:], prefix, closer=closer))
            break
        end = _cut(text, start, room, limit, last_visible, scan)
        settled = settled and last_visible >= start + room
        line, line_fence = scan.line_containing(end)
        parts.append(
            Part(
                start,
                end,
                text[start:end],
                prefix,
                scan.suffix(end, limit),
                settled=settled,
                resume_line=line,
                resume_fence=line_fence,
            )
        )
        start = end
    return parts


def _closing_line(fence: Fence, body: str) -> str:
    """The line that closes `fence` after `body`: just the marker if body ends a line."""
    return fence.marker if body.endswith("\n") else "\n" + fence.marker


class _Scan:
    """Which code block is open where, from one pass over the lines of `text`.

    A position in the middle of a line counts as inside whatever block was open
    before that line, so the answer for position p depends only on `text[:p]`:
    that is what makes a streamed prefix split the same way as the full text.
    """

    def __init__(self, text: str, line: int, fence: Fence | None) -> None:
        self.text = text
        self.starts: list[int] = []
        self.before: list[Fence | None] = []
        while True:
            self.starts.append(line)
            self.before.append(fence)
            newline = text.find("\n", line)
            if newline < 0:
                break
            fence = _next_fence(text[line:newline], fence)
            line = newline + 1

    def _line_index(self, position: int) -> int:
        return bisect_right(self.starts, position) - 1

    def fence_at(self, position: int) -> Fence | None:
        return self.before[self._line_index(position)]

    def line_containing(self, position: int) -> tuple[int, Fence | None]:
        index = self._line_index(position)
        return self.starts[index], self.before[index]

    def empties_block(self, position: int, horizon: int) -> bool:
        """Whether cutting at `position` would leave an empty code block behind.

        True when `position` starts the line right after an opening fence, or starts
        a closing fence line that ends (with its newline) at or before `horizon`.
        Looking no further than `horizon` keeps the decision stable as text grows.
        """
        index = self._line_index(position)
        if self.starts[index] != position or index == 0:
            return False
        if self.before[index - 1] is None and self.before[index] is not None:
            return True
        return (
            index + 1 < len(self.starts)
            and self.starts[index + 1] - 1 <= horizon
            and self.before[index] is not None
            and self.before[index + 1] is None
        )

    def suffix(self, end: int, limit: int) -> str:
        fence = self.fence_at(end)
        if fence is None or not fence.reopenable(limit):
            return ""
        return _closing_line(fence, self.text[end - 1 : end])


def _next_fence(line: str, fence: Fence | None) -> Fence | None:
    """The block open after `line` (no newline), given the block open before it."""
    match = _FENCE.fullmatch(line)
    if match is None:
        return fence
    run, rest = match.groups()
    if fence is None:
        if run[0] == "`" and "`" in rest:
            return None
        return Fence(line, run)
    if run[0] == fence.marker[0] and len(run) >= len(fence.marker) and not rest.strip(" \t\r"):
        return None
    return fence


def _cut(text: str, start: int, room: int, limit: int, last_visible: int, scan: _Scan) -> int:
    """Where the part starting at `start` ends, given `room` characters after its prefix.

    The cut leaves something visible on both sides (`last_visible` is the index of
    the text's last non-whitespace character), and the part with its closing fence
    line must fit in `limit`. It depends only on `text[: start + room + 1]`, which
    is what `Part.settled` relies on.
    """
    prefix_len = limit - room
    visible = _VISIBLE.search(text, start)
    first_visible = visible.start() if visible else len(text)
    high = min(start + room, last_visible)

    def fits(end: int) -> bool:
        return end - start + prefix_len + len(scan.suffix(end, limit)) <= limit

    # Line ends, last first: the last one after a blank line wins, else the last one.
    line_end = None
    newline = text.rfind("\n", start, high)
    while newline >= first_visible:
        end = newline + 1
        previous = text.rfind("\n", start, newline)
        if fits(end) and not scan.empties_block(end, start + room):
            if not text[max(previous + 1, start) : newline].strip():
                return end
            if line_end is None:
                line_end = end
        newline = previous
    if line_end is not None:
        return line_end

    # A line longer than the room: cut it after whitespace near the end, if any.
    widest = start + room
    while widest > start + 1 and not fits(widest):
        widest -= 1
    if high <= first_visible:
        return widest  # a whitespace run longer than a message: a whitespace-only part is unavoidable
    end = min(widest, high)
    for position in range(end - 1, max(first_visible, end - max(1, room // 4)), -1):
        if text[position].isspace() and fits(position + 1) and not scan.empties_block(position + 1, start + room):
            end = position + 1
            break
    adjusted = end
    while adjusted - 1 > first_visible and _inside_grapheme(text, adjusted):
        adjusted -= 1
    return end if _inside_grapheme(text, adjusted) else adjusted


def _inside_grapheme(text: str, position: int) -> bool:
    """Whether cutting before `text[position]` would split what renders as one character."""
    if position <= 0 or position >= len(text):
        return False
    before, after = text[position - 1], text[position]
    if before == _ZWJ or after == _ZWJ or (before == "\r" and after == "\n"):
        return True
    code = ord(after)
    if (
        0xFE00 <= code <= 0xFE0F  # variation selectors (emoji vs text presentation)
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or unicodedata.category(after) in ("Mn", "Mc", "Me")
    ):
        return True
    if _regional(after) and _regional(before):
        run = 0
        while position - 1 - run >= 0 and _regional(text[position - 1 - run]):
            run += 1
        return run % 2 == 1  # flags are pairs: an odd run before means mid-flag
    return False


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


# -- The footer under an answer ---------------------------------------------------


def _code_name(name: str) -> str:
    return "`" + name.replace("`", "'") + "`"


def discord_footer(notices: Iterable[Mapping[str, Any]] | None) -> str:
    """The quiet footer for a request's stored notices: one Discord subtext line (``-# ``) each, or ""."""
    return "\n".join(f"-# {line}" for line in notice_lines(notices, name=_code_name))


def open_fence_at_end(text: str) -> Fence | None:
    """The code block `text` leaves open at its very end, if any."""
    fence: Fence | None = None
    for line in text.split("\n"):
        fence = _next_fence(line, fence)
    return fence


def with_footer(text: str, footer: str) -> str:
    """`text` exactly as it is, then `footer` on lines of its own.

    The footer is a separate segment after the model's text, never mixed into
    it: the text stays a byte-exact prefix of the result. A blank line comes
    between them, or, when the text leaves a code block open, the line that
    closes it, so the footer never renders as code.
    """
    if not footer:
        return text
    if not text:
        return footer
    fence = open_fence_at_end(text)
    newline = "" if text.endswith("\n") else "\n"
    return text + newline + (fence.marker + "\n" if fence else "\n") + footer
