"""What the model is shown: the route's system prompt and as much of the thread as fits."""

from __future__ import annotations

from typing import Any

from conversations import selectors
from conversations.models import Message, Request
from routing.models import Route

# Ollama's counts are unknown before a request runs; four characters a token
# is the usual estimate for English text and code.
CHARS_PER_TOKEN = 4
# Share of the context window kept free for the answer.
ANSWER_RESERVE = 0.25


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def _tokens(message: Message) -> int:
    return message.token_count or estimate_tokens(message.content)


def build_chat_messages(*, request: Request, route: Route, system_prompt: str) -> list[dict[str, Any]]:
    """System prompt, then the most recent earlier turns that fit, then the new message.

    The new message is always included, even when it alone exceeds the budget:
    refusing it is intake's job, and Ollama truncates from the start.
    """
    budget = int(route.context_size * (1 - ANSWER_RESERVE))
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    budget -= sum(estimate_tokens(m["content"]) for m in system) + estimate_tokens(request.message.content)

    earlier: list[dict[str, Any]] = []
    for message in reversed(selectors.thread_history(request.thread, before=request.message)):
        cost = _tokens(message)
        if cost > budget:
            break
        budget -= cost
        earlier.append({"role": message.role, "content": message.content})
    earlier.reverse()
    return [*system, *earlier, {"role": "user", "content": request.message.content}]
