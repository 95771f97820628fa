"""Slash commands, one module per capability.

Each module in ``COMMAND_MODULES`` has a ``register(bot)`` function that adds
its commands to ``bot.tree``. Handlers stay thin: they acknowledge the
interaction at once (Discord allows 3 s), call a service with
``sync_to_async`` (or ``bots.blocking.run_blocking`` for slow work) and send
back the text a pure function renders, so the texts and the services are
tested without Discord.

Every command defers privately (``ephemeral=True``): a deferred interaction's
first answer is private exactly when the defer was, and every command has
answers only the caller should see (a refusal, "nothing here"). A command
whose answer is for the whole channel sends it with ``send_reply``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands

from bots.render import split_message

if TYPE_CHECKING:
    import asyncio

    from bots.delivery import Delivery, Outcome
    from bots.knowledge import KnowledgeFollower
    from bots.targets import Reactions
    from bots.typing_indicator import TypingIndicator

COMMAND_MODULES = (
    "bots.commands.general",
    "bots.commands.knowledge",
    "bots.commands.routes",
    "bots.commands.threads",
    "bots.commands.usage",
)


class CommandBot(Protocol):
    """What the commands use of the bot that registers them (``bots.client.TrollamaBot`` is one).

    The commands receive the bot rather than import its module: the client imports
    this package to register them, so an import back would make a cycle.
    """

    tree: app_commands.CommandTree[Any]
    delivery: Delivery
    typing: TypingIndicator
    reactions: Reactions
    knowledge: KnowledgeFollower

    def _spawn(self, coroutine: Any) -> None: ...

    async def mark_outcome(self, message: Any, outcome: Outcome) -> None: ...

    async def unmark_working_later(self, message: Any, finished: asyncio.Event) -> None: ...


def register_all(bot: CommandBot) -> None:
    for dotted in COMMAND_MODULES:
        import_module(dotted).register(bot)


@dataclass(frozen=True)
class Reply:
    """A command's answer: ``public`` ones are for everyone in the channel, the rest for the caller only."""

    text: str
    public: bool = False


async def send_reply(interaction: discord.Interaction, reply: Reply) -> None:
    """Answer a privately deferred interaction, privately or for the channel, split to Discord's limit.

    A deferred interaction's first followup fills in the private "thinking…"
    message, so for a public reply that message is deleted first and the reply
    follows as a message of its own. (If Discord refuses the deletion, the
    reply still arrives, privately.)
    """
    if reply.public:
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    for part in split_message(reply.text):
        if reply.public:
            await interaction.followup.send(part, allowed_mentions=discord.AllowedMentions.none())
        else:
            await interaction.followup.send(part, ephemeral=True)


def command_tree_digest(payloads: list[dict[str, Any]]) -> str:
    """A hash of the commands as they are synced to Discord; equal digests mean nothing to sync.

    ``payloads`` are the commands' ``to_dict`` forms, the body of the sync
    request; the order of commands does not matter.
    """
    ordered = sorted(payloads, key=lambda payload: (payload.get("type", 1), payload.get("name", "")))
    return hashlib.sha256(json.dumps(ordered, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
