"""What the user is told under an answer, from the notices stored on its request. Pure.

``Request.notices`` is a JSON list of ``{"code": ..., parameters}`` set while
the request is worked on: at intake (a file left out), by the context builder
(``pipeline.context``: a file or the message cut, the model unable to see
the images, earlier turns left out, a new summary, a branch of a reply chain) and by the
charge (``budgets.services``: the answer cut short by the budget, the week's
usage past 80 % or 95 %). Discord shows these lines as a quiet footer after the
answer (``bots.render.discord_footer``), the terminal on stderr. They are
rendered from stored state, so an answer delivered late (the bot's outbox, a
terminal that resyncs) says the same as a live one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from budgets.texts import budget_warning_text


def _plain(name: str) -> str:
    return f'"{name}"'


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def notice_line(notice: Mapping[str, Any], *, name: Callable[[str], str] = _plain) -> str | None:
    """One sentence for one notice, or None for a code this version does not know.

    ``name`` formats a file name (the Discord footer puts it in code).
    """
    code = notice.get("code")
    if code == "file_cut":
        return f"✂️ {name(str(notice.get('file', 'a file')))}: {notice.get('detail', 'it was cut.')}"
    if code == "file_refused":
        return (
            f"🚫 {name(str(notice.get('file', 'a file')))} was left out: {notice.get('reason', 'I could not read it.')}"
        )
    if code == "images_unseen":
        count = int(notice.get("count", 1))
        model = notice.get("model")
        who = f"The model that answered ({model})" if model else "The model that answered"
        return f"🖼️ {who} cannot see images: it saw only the names of your {_plural(count, 'image')}."
    if code == "branched":
        return "↪️ Branched from the message you replied to: the model saw this conversation up to there, not after."
    if code == "message_cut":
        return (
            "✂️ Your message was too long for the model's context window: "
            f"{_plural(int(notice.get('omitted_chars', 0)), 'character')} in its middle were left out."
        )
    if code == "turns_dropped":
        count = int(notice.get("count", 0))
        return (
            f"🧵 The model did not see the {_plural(count, 'oldest message')} of this thread: "
            "they no longer fit its context window."
        )
    if code == "summarized":
        covered = int(notice.get("covered", 0))
        return (
            f"📝 The earlier conversation ({_plural(covered, 'message')}) was summarized: "
            "the model now reads the summary instead of those messages."
        )
    if code == "answer_capped":
        return (
            f"⏳ This answer stopped at {_plural(int(notice.get('tokens', 0)), 'token')}: "
            "all that your weekly token budget could hold for it."
        )
    if code == "budget_warning":
        return "⚠️ " + budget_warning_text(
            used_percent=int(notice.get("used_percent", notice.get("percent", 0))),
            remaining=int(notice.get("remaining", 0)),
            resets=str(notice.get("resets", "next Monday")),
        )
    return None


def source_lines(notice: Mapping[str, Any]) -> list[str]:
    """An ``/ask`` answer's sources (``knowledge``), one line each: its number, author and date as a jump link."""
    lines = []
    for source in notice.get("sources") or ():
        label = f"{source.get('author', 'someone')}, {source.get('date', '')}".strip(", ").replace("]", ")")
        lines.append(f"🔗 [{source.get('n', '?')}] [{label}]({source.get('url', '')})")
    return lines


def notice_lines(notices: Iterable[Mapping[str, Any]] | None, *, name: Callable[[str], str] = _plain) -> list[str]:
    """The sentences for a request's notices, in their stored order."""
    lines: list[str | None] = []
    for notice in notices or ():
        if not isinstance(notice, Mapping):
            continue
        if notice.get("code") == "sources":
            lines.extend(source_lines(notice))
        else:
            lines.append(notice_line(notice, name=name))
    return [line for line in lines if line]
