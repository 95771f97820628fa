"""Slash commands, one module per capability.

Each module in ``COMMAND_MODULES`` has a ``register(bot)`` function that adds
its commands to ``bot.tree``. Handlers stay thin: they acknowledge the
interaction at once (Discord allows 3 s), call a service with
``sync_to_async`` and send back the text a pure function renders, so the
texts and the services are tested without Discord.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bots.client import TrollamaBot

COMMAND_MODULES = (
    "bots.commands.general",
    "bots.commands.knowledge",
    "bots.commands.routes",
    "bots.commands.threads",
    "bots.commands.usage",
)


def register_all(bot: TrollamaBot) -> None:
    for dotted in COMMAND_MODULES:
        import_module(dotted).register(bot)
