"""The Discord bot as a real process (``manage.py runbot``) against the fake Discord, beside web and workers.

Kept apart from ``harness.py``: it only adds the bot to a ``System``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import PYTHON, System, running_system
from tests.fake_discord import FakeDiscord

BOT_READY = """
from datetime import datetime
from bots.models import BotHeartbeat
result = BotHeartbeat.objects.filter(connected=True, beat_at__gte=datetime.fromisoformat({since!r})).exists()
"""


def bot_environment(discord: FakeDiscord) -> dict[str, str]:
    """What a bot process needs to use the fake: any token, and the fake's API."""
    return {"DISCORD_TOKEN": "e2e-bot-token", "DISCORD_API_URL": discord.api_url}


def start_bot(system: System, discord: FakeDiscord, *args: str, timeout: float = 60) -> subprocess.Popen[bytes]:
    (
        """Start ``manage.py runbot [args]`` (again, after ``system.kill("bot")``); wait until it identified and beat."""
        ""
    )
    identified = sum(1 for c in discord.connections if c.kind == "identify")
    # A restarted bot finds its old heartbeat row: only a beat from this start counts.
    since = datetime.now(UTC).isoformat()
    process = system.popen("bot", [PYTHON, "manage.py", "runbot", *args])
    deadline = time.monotonic() + timeout
    try:
        discord.wait_for_ready(timeout=timeout, count=identified + 1)
        while not system.query(BOT_READY.format(since=since)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bot never reported itself connected")
            time.sleep(0.5)
    except (TimeoutError, RuntimeError) as exc:
        raise RuntimeError(f"the bot did not come up: {exc}\n{system.logs()}") from exc
    return process


@contextlib.contextmanager
def running_bot(data_dir: Path, *, ollama_url: str, discord: FakeDiscord, **env: str) -> Iterator[System]:
    """Web, workers and the bot, the bot pointed at ``discord``; stopped afterwards."""
    with running_system(data_dir, ollama_url=ollama_url, **bot_environment(discord), **env) as system:
        start_bot(system, discord)
        try:
            yield system
        finally:
            # The bot first, so its log does not end in complaints that web went away.
            system.kill("bot", signal.SIGTERM)


def module_bot_system(name: str) -> Any:
    """A module-scoped ``system`` fixture: web, workers and the bot against the session's fakes."""

    @pytest.fixture(scope="module")
    def system(_fake_ollama_server: Any, _fake_discord_server: FakeDiscord, tmp_path_factory: Any) -> Iterator[System]:
        with running_bot(
            tmp_path_factory.mktemp(name), ollama_url=_fake_ollama_server.url, discord=_fake_discord_server
        ) as system:
            yield system

    return system


def finished(discord: FakeDiscord, asked: Any) -> bool:
    """True once the bot marked the message it answered with ✅ or ❌."""
    reactions = discord.message(asked.id).reactions
    return bool(reactions.get("✅") or reactions.get("❌"))


def answers(discord: FakeDiscord, interaction: Any) -> list[Any]:
    """The messages answering an interaction so far: its filled-in original and its followups."""
    ids = ([interaction.original_id] if interaction.original_id else []) + list(interaction.followup_ids)
    shown = [discord.message(message_id) for message_id in ids]
    return [message for message in shown if not message.deleted and not message.loading]


def wait_for_answer(discord: FakeDiscord, interaction: Any, *, timeout: float = 30.0) -> Any:
    """The answers to a slash command, once there is one."""
    return discord.wait_for(
        lambda: answers(discord, interaction), timeout=timeout, what=f"the /{interaction.name} answer"
    )
