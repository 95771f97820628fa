"""Run the Discord bot: one process per bot token."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Connect to Discord and answer messages. Needs DISCORD_TOKEN."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sync-guild",
            type=int,
            default=None,
            help="Sync slash commands to this guild id (they show there at once; global ones can take an hour).",
        )
        parser.add_argument(
            "--sync-commands",
            action="store_true",
            help="Sync the slash commands to Discord even if they have not changed since the last sync "
            "(by default they are synced only when they changed).",
        )
        parser.add_argument(
            "--optional",
            action="store_true",
            help="Without DISCORD_TOKEN, say so and stay idle instead of exiting (used by the Procfile, "
            "so honcho keeps web and workers running).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DISCORD_TOKEN:
            message = (
                "DISCORD_TOKEN is not set, so the Discord bot is not running. Create a bot in the Discord "
                "Developer Portal, put its token in .env as DISCORD_TOKEN=..., and restart."
            )
            if not options["optional"]:
                raise CommandError(message)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            self.stderr.write(message + " Web and workers keep running.")
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            return

        from bots import discord_api
        from bots.client import TrollamaBot

        bot = TrollamaBot(sync_guild=options["sync_guild"], force_sync=options["sync_commands"])
        # Not bot.run(): that would connect to Discord's hard-coded gateway whatever
        # DISCORD_API_URL says (see bots.discord_api). Django's LOGGING already
        # configures discord.py's loggers, so there is no log handler to set up.
        discord_api.run(bot, settings.DISCORD_TOKEN, api_url=settings.DISCORD_API_URL)
