"""Where and how a route's model runs: the host, and ``think``/tools within the model's capabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conversations.models import ChatUser
from routing import hosts
from routing.decisions import think_value
from routing.models import Route, RoutingPreference
from routing.tools import tools_available


@dataclass(frozen=True)
class Placement:
    model: str
    host_id: int
    host_url: str
    think: bool | str | None
    tools: tuple[str, ...]
    fallbacks: tuple[str, ...]  # models after this one, still to try
    skipped: tuple[str, ...] = ()  # models passed over because no host could take them
    sees_images: bool = True  # False only when the synced table says the model has no vision


def thinking_preference(user: ChatUser | int) -> str:
    user_id = user if isinstance(user, int) else user.pk
    found = RoutingPreference.objects.filter(user_id=user_id).values_list("thinking", flat=True).first()
    return found or RoutingPreference.Thinking.AUTO


def place(*, route: Route, models: Sequence[str], preference: str, prefer_host: int | None = None) -> Placement | None:
    """The first of ``models`` that some usable host can run; None when every host is down or disabled.

    ``prefer_host``: the host the scheduler chose for the first model, taken when it has that model.

    ``think`` and tools are only sent to a model the synced table says can
    take them: Ollama refuses a request that asks for more than the model has.
    """
    skipped: list[str] = []
    for index, model in enumerate(models):
        choice = hosts.choose_host(model, prefer=prefer_host if index == 0 else None)
        if choice is None:
            skipped.append(model)
            continue
        capabilities = hosts.model_capabilities(model) or {}
        think = think_value(route.think, model_thinks=capabilities.get("thinking"), preference=preference)
        tools = tuple(route.tool_names) if capabilities.get("tools") and tools_available() else ()
        return Placement(
            model,
            choice.host_id,
            choice.url,
            think,
            tools,
            tuple(models[index + 1 :]),
            tuple(skipped),
            sees_images=capabilities.get("vision", True),
        )
    return None
