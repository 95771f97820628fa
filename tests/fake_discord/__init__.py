"""A local stand-in for Discord's REST API v10 and gateway, for tests and demos.

    with FakeDiscord() as fake:
        settings.DISCORD_API_URL = fake.api_url      # or the bot process's environment
        ...start the bot...
        fake.wait_for_ready()
        asked = fake.send_message(fake.alice, fake.general, "hello", mention_bot=True)
        thread = fake.wait_for(lambda: fake.thread_of(asked))
        fake.wait_for(lambda: fake.bot_messages(thread))

See ``server.py`` for everything the fake answers and records.
"""

from .records import GatewayConnection, Interaction, RestCall, UploadedFile
from .server import MISSING_PERMISSIONS, ApiError, FakeDiscord, build_app
from .world import Channel, Message, User, World

__all__ = [
    "MISSING_PERMISSIONS",
    "ApiError",
    "Channel",
    "FakeDiscord",
    "GatewayConnection",
    "Interaction",
    "Message",
    "RestCall",
    "UploadedFile",
    "User",
    "World",
    "build_app",
]
