"""Recording what each Ollama call cost. Every caller that talks to Ollama for a user goes through here."""

from __future__ import annotations

from typing import Any

from budgets.models import UsageEntry
from conversations.models import ChatUser, Request
from routing.models import Route
from trollama import counters


def record_usage(
    *,
    user: ChatUser | int,
    kind: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    request: Request | int | None = None,
    route: Route | int | None = None,
    estimated: bool = False,
) -> UsageEntry:
    """Store one call's real counts (Ollama's ``prompt_eval_count`` and ``eval_count``).

    ``estimated=True`` marks counts made up from characters/4 because the call
    ended before Ollama reported its own.
    """
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    count_tokens(route=route, model=model, use=kind, prompt_tokens=prompt, completion_tokens=completion)
    return UsageEntry.objects.create(
        user_id=user if isinstance(user, int) else user.pk,
        request_id=request if isinstance(request, int) or request is None else request.pk,
        route_id=route if isinstance(route, int) or route is None else route.pk,
        kind=kind,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        estimated=estimated,
    )


def count_tokens(
    *, route: Route | int | None, model: str, use: str, prompt_tokens: int, completion_tokens: int
) -> None:
    """Add one call's tokens to ``trollama_tokens_total``, which later deletions never lower."""
    if isinstance(route, Route):
        slug = route.slug
    elif route is None:
        slug = ""
    else:
        slug = Route.objects.filter(pk=route).values_list("slug", flat=True).first() or ""
    for kind, amount in (("prompt", prompt_tokens), ("completion", completion_tokens)):
        labels = {"route": slug, "model": model, "kind": kind, "use": use}
        counters.increment(name=counters.TOKENS, labels=labels, amount=amount)


def record_model_call(sender: object, signal: object = None, **usage: Any) -> None:
    """``routing.signals.model_called``: record what the router spent on a user's behalf."""
    record_usage(**usage)
