"""The Discord stand-in, driven by the real discord.py client in this process.

The point of the fake is that discord.py cannot tell it from Discord, so every
test here connects a real ``discord.Client`` through ``bots.discord_api`` (the
same seam ``runbot`` uses) and acts through discord.py's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import httpx
import pytest
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.discord_api import follow_api_gateway, use_api
from tests.fake_discord import FakeDiscord
from tests.fake_discord.world import GUILD_TEXT

ROOT = Path(__file__).resolve().parents[2]
EDIT_ROUTE = "PATCH /channels/{channel_id}/messages/{message_id}"
SEND_ROUTE = "POST /channels/{channel_id}/messages"


class Recorder(discord.Client):
    """A plain client that remembers the events it got."""

    def __init__(self, *, content_intent: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = content_intent
        # The fake sends its one GUILD_CREATE at once; no need to wait discord.py's 2 s for more.
        super().__init__(intents=intents, guild_ready_timeout=0.1)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []
        self.resumes = 0

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)

    async def on_resumed(self) -> None:
        self.resumes += 1


@contextlib.asynccontextmanager
async def connected(fake: FakeDiscord, client: Recorder | None = None) -> AsyncIterator[Recorder]:
    """A client logged in and connected to ``fake`` (READY dispatched), closed afterwards."""
    client = client or Recorder()
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    use_api(fake.api_url)
    try:
        async with client:
            await client.login("fake-token")
            await follow_api_gateway(client.http)
            task = asyncio.create_task(client.connect())
            await asyncio.wait_for(client.wait_until_ready(), 10)
            yield client
            await client.close()
            await asyncio.wait_for(task, 10)
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


def seen(client: Recorder, content: str) -> discord.Message | None:
    return next((m for m in client.seen if m.content == content), None)


class ConnectingTests:
    async def test_the_client_logs_in_and_gets_the_guild_with_channels_threads_roles_and_members(self, fake_discord):
        async with connected(fake_discord) as client:
            guild = client.get_guild(fake_discord.guild_id)

            assert guild is not None and not guild.unavailable
            # Every text channel the stand-in holds: the seeded two, and any a test earlier in the session added.
            held = {c.name for c in fake_discord.world.channels.values() if c.type == GUILD_TEXT}
            assert {c.name for c in guild.text_channels} == held and held >= {"general", "random"}
            assert "side talk" in [t.name for t in guild.threads]
            assert {r.name for r in guild.roles} >= {"@everyone", "Moderator"}
            assert guild.me is not None and guild.me.id == fake_discord.bot.id
            # Without the members intent Discord lists only the bot itself.
            assert guild.get_member(fake_discord.alice.id) is None and guild.member_count >= 5
            assert client.user.id == fake_discord.bot.id and client.application_id == fake_discord.bot.id
        routes = [call.route for call in fake_discord.calls]
        assert routes[:3] == ["GET /users/@me", "GET /oauth2/applications/@me", "GET /gateway/bot"]
        connection = fake_discord.connections[-1]
        assert (connection.kind, connection.compress) == ("identify", "zlib-stream")
        assert connection.heartbeats >= 1  # discord.py beats once on HELLO

    async def test_the_gateway_compresses_with_one_zlib_stream_ending_each_message_in_a_sync_flush(self, fake_discord):
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(fake_discord.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws,
        ):
            first = await ws.receive_bytes(timeout=5)
            await ws.send_json({"op": 1, "d": None})
            second = await ws.receive_bytes(timeout=5)

        inflate = zlib.decompressobj()
        assert first.endswith(b"\x00\x00\xff\xff") and second.endswith(b"\x00\x00\xff\xff")
        assert b'"op":10' in inflate.decompress(first)
        assert inflate.decompress(second) == b'{"op":11}'  # the same stream: no new zlib header

    async def test_an_unknown_token_is_refused_when_the_fake_expects_one(self):
        with FakeDiscord(token="right") as fake:
            client = Recorder()
            base = Route.BASE
            use_api(fake.api_url)
            try:
                async with client:
                    with pytest.raises(discord.LoginFailure):
                        await client.login("wrong")
            finally:
                Route.BASE = base
            assert fake.calls[0].status == 401


class MessagesTests:
    async def test_a_mention_reaches_the_client_and_its_reply_is_recorded(self, fake_discord):
        async with connected(fake_discord) as client:
            asked = await asyncio.to_thread(
                fake_discord.send_message, "alice", "general", "what is 2+2?", mention_bot=True
            )
            await fake_discord.until(lambda: seen(client, asked.content))
            message = seen(client, asked.content)
            assert message.author.name == "alice" and client.user in message.mentions

            reply = await message.reply("4", mention_author=False)

        assert reply.reference.message_id == asked.id
        stored = fake_discord.message(reply.id)
        assert (stored.content, stored.reference.id, stored.author.id) == ("4", asked.id, fake_discord.bot.id)
        [call] = fake_discord.calls_to(SEND_ROUTE, channel="general")
        assert call.body["content"] == "4" and call.body["message_reference"]["message_id"] == asked.id
        assert call.status == 200 and call.rate_limited is False

    async def test_a_thread_started_from_a_message_is_known_to_the_client_and_can_be_archived_and_locked(
        self, fake_discord
    ):
        async with connected(fake_discord) as client:
            asked = await asyncio.to_thread(fake_discord.send_message, "alice", "general", "hi", mention_bot=True)
            message = await fake_discord.until(lambda: seen(client, asked.content))

            thread = await message.create_thread(name="hi", auto_archive_duration=1440)
            await fake_discord.until(lambda: client.get_channel(thread.id))  # THREAD_CREATE arrived
            sent = await thread.send("placeholder")
            await sent.edit(content="the answer")
            cached = client.get_channel(thread.id)
            await thread.edit(archived=True, locked=True)
            # THREAD_UPDATE arrived: discord.py drops archived threads from its cache.
            await fake_discord.until(lambda: client.get_channel(thread.id) is None)

        assert thread.id == asked.id and cached.owner_id == client.user.id
        stored = fake_discord.channel(thread.id)
        assert (stored.archived, stored.locked, stored.parent_id) == (True, True, fake_discord.general.id)
        [answer] = fake_discord.bot_messages(thread.id)
        assert answer.content == "the answer" and [e.content for e in answer.history] == ["placeholder", "the answer"]

    async def test_an_archived_thread_refuses_edits_and_reactions_until_unarchived(self, fake_discord):
        async with connected(fake_discord) as client:
            asked = await asyncio.to_thread(fake_discord.send_message, "alice", "general", "yo", mention_bot=True)
            message = await fake_discord.until(lambda: seen(client, asked.content))
            thread = await message.create_thread(name="yo", auto_archive_duration=1440)
            sent = await thread.send("first")
            await asyncio.to_thread(fake_discord.archive_thread, thread.id)

            with pytest.raises(discord.HTTPException) as refused:
                await sent.edit(content="second")
            with pytest.raises(discord.HTTPException):
                await sent.add_reaction("✅")
            await thread.edit(archived=False)
            await sent.edit(content="second")

        assert refused.value.code == 50083
        assert fake_discord.message(sent.id).content == "second"

    async def test_a_member_deleting_in_an_archived_thread_unarchives_it_first_as_discords_client_does(
        self, fake_discord
    ):
        thread = fake_discord.world.add_thread(fake_discord.general.id, "old", owner=fake_discord.alice)
        said = fake_discord.add_history("alice", thread, "remove me", at=1_700_000_000)
        thread.archived, thread.archived_at = True, 1_700_000_100

        fake_discord.delete_message(said)

        assert not thread.archived and thread.archived_at > 1_700_000_100
        assert fake_discord.message(said.id).deleted

    async def test_files_go_up_as_multipart_and_come_back_from_the_fake_cdn(self, fake_discord):
        async with connected(fake_discord) as client:
            channel = client.get_channel(fake_discord.general.id)
            sent = await channel.send("here", file=discord.File(__file__, filename="code.py"))
            data = await sent.attachments[0].read()
            upload = fake_discord.send_message(
                "alice", "general", "look", mention_bot=True, attachments=[("notes.txt", b"  indented\n", "text/plain")]
            )
            got = await fake_discord.until(lambda: seen(client, upload.content))
            notes = await got.attachments[0].read()

        assert data == Path(__file__).read_bytes()  # noqa: ASYNC240 -- a small local file
        [call] = fake_discord.calls_to(SEND_ROUTE, channel="general")
        assert [f.filename for f in call.files] == ["code.py"] and call.body["content"] == "here"
        assert notes == b"  indented\n" and got.attachments[0].content_type == "text/plain"

    async def test_a_message_over_2000_characters_is_refused_as_discord_does(self, fake_discord):
        async with connected(fake_discord) as client:
            channel = client.get_channel(fake_discord.general.id)
            with pytest.raises(discord.HTTPException) as refused:
                await channel.send("x" * 2001)

        assert refused.value.status == 400 and refused.value.code == 50035

    async def test_reactions_typing_deletes_and_dms(self, fake_discord):
        async with connected(fake_discord) as client:
            asked = fake_discord.send_dm("bob", "hello in private")
            message = await fake_discord.until(lambda: seen(client, "hello in private"))
            await message.add_reaction("⏳")
            await message.remove_reaction("⏳", client.user)
            await message.add_reaction("✅")
            async with message.channel.typing():
                answer = await message.channel.send("hi bob")
            await answer.delete()
            dm = await client.create_dm(message.author)

        assert isinstance(message.channel, discord.DMChannel) and dm.id == asked.channel_id
        stored = fake_discord.message(asked.id)
        assert stored.reactions == {"⏳": set(), "✅": {fake_discord.bot.id}}
        assert fake_discord.calls_to("POST /channels/{channel_id}/typing", channel=asked.channel_id)
        assert fake_discord.message(answer.id).deleted and answer.id not in {
            m.id for m in fake_discord.bot_messages(dm.id)
        }

    async def test_without_the_content_intent_other_peoples_messages_arrive_empty(self, fake_discord):
        async with connected(fake_discord, Recorder(content_intent=False)) as client:
            fake_discord.send_message("alice", "general", "not for the bot")
            fake_discord.send_message("alice", "general", "for the bot", mention_bot=True)
            await fake_discord.until(lambda: len(client.seen) >= 2)

        assert [m.content for m in client.seen] == ["", f"{fake_discord.bot.mention} for the bot"]


class RateLimitTests:
    async def test_every_answer_carries_discords_rate_limit_headers(self, fake_discord):
        fake_discord.set_rate_limit(SEND_ROUTE, 2, 5.0)
        async with httpx.AsyncClient(headers={"Authorization": "Bot x"}) as http:
            url = f"{fake_discord.api_url}/channels/{fake_discord.general.id}/messages"
            answers = [await http.post(url, json={"content": str(i)}) for i in range(3)]

        assert [a.status_code for a in answers] == [200, 200, 429]
        first, limited = answers[0].headers, answers[2].headers
        assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("2", "1")
        assert 0 < float(first["X-RateLimit-Reset-After"]) <= 5.0 and first["X-RateLimit-Bucket"]
        assert limited["X-RateLimit-Remaining"] == "0" and limited["X-RateLimit-Scope"] == "user"
        assert limited["Via"] and int(limited["Retry-After"]) >= 1
        body = answers[2].json()
        assert body["message"] == "You are being rate limited." and 0 < body["retry_after"] <= 5.0
        assert body["global"] is False
        assert len(fake_discord.rate_limited) == 1 and [m.content for m in fake_discord.bot_messages("general")][
            -2:
        ] == [
            "0",
            "1",
        ]

    async def test_discord_py_waits_out_a_real_429_and_retries(self, fake_discord):
        fake_discord.set_rate_limit(EDIT_ROUTE, 1, 1.0)
        async with connected(fake_discord) as client:
            sent = await client.get_channel(fake_discord.general.id).send("v1")
            # Someone else (another process with the token) spends the bucket first.
            async with httpx.AsyncClient(headers={"Authorization": "Bot x"}) as http:
                url = f"{fake_discord.api_url}/channels/{fake_discord.general.id}/messages/{sent.id}"
                assert (await http.patch(url, json={"content": "v2"})).status_code == 200

            await sent.edit(content="v3")

        edits = fake_discord.calls_to(EDIT_ROUTE)
        assert [(c.content, c.status) for c in edits] == [("v2", 200), ("v3", 429), ("v3", 200)]
        assert fake_discord.message(sent.id).content == "v3"
        assert edits[2].monotonic - edits[1].monotonic >= edits[1].response["retry_after"] - 0.05

    async def test_sends_and_edits_share_a_bucket_hash_but_are_counted_apart(self, fake_discord):
        # As Discord answers them today: one X-RateLimit-Bucket, two counters of 5 per 5 s.
        async with httpx.AsyncClient(headers={"Authorization": "Bot x"}) as http:
            url = f"{fake_discord.api_url}/channels/{fake_discord.general.id}/messages"
            sends = [await http.post(url, json={"content": str(i)}) for i in range(5)]
            edits = [await http.patch(f"{url}/{sends[0].json()['id']}", json={"content": f"v{i}"}) for i in range(6)]

        assert [a.status_code for a in sends] == [200] * 5
        assert [a.status_code for a in edits] == [200] * 5 + [429]
        assert sends[-1].headers["X-RateLimit-Remaining"] == "0" and edits[0].headers["X-RateLimit-Remaining"] == "4"
        assert sends[0].headers["X-RateLimit-Bucket"] == edits[0].headers["X-RateLimit-Bucket"]
        assert (edits[0].headers["X-RateLimit-Limit"], float(edits[0].headers["X-RateLimit-Reset-After"])) == (
            "5",
            pytest.approx(5.0, abs=0.5),
        )

    async def test_a_thread_is_a_bucket_of_its_own(self, fake_discord):
        thread = fake_discord.world.add_thread(fake_discord.general.id, "a thread", owner=fake_discord.bot)
        async with httpx.AsyncClient(headers={"Authorization": "Bot x"}) as http:
            for channel_id in (fake_discord.general.id, thread.id):
                url = f"{fake_discord.api_url}/channels/{channel_id}/messages"
                answers = [await http.post(url, json={"content": str(i)}) for i in range(6)]
                assert [a.status_code for a in answers] == [200] * 5 + [429]

    async def test_buckets_are_per_channel(self, fake_discord):
        fake_discord.set_rate_limit(SEND_ROUTE, 1, 5.0)
        async with httpx.AsyncClient(headers={"Authorization": "Bot x"}) as http:
            for channel in (fake_discord.general, fake_discord.channel("random")):
                answer = await http.post(
                    f"{fake_discord.api_url}/channels/{channel.id}/messages", json={"content": "a"}
                )
                assert answer.status_code == 200


class PermissionTests:
    async def test_thread_creation_can_be_forbidden(self, fake_discord):
        fake_discord.forbid_thread_creation()
        async with connected(fake_discord) as client:
            asked = fake_discord.send_message("alice", "general", "make a thread", mention_bot=True)
            message = await fake_discord.until(lambda: seen(client, asked.content))
            with pytest.raises(discord.Forbidden) as refused:
                await message.create_thread(name="nope")
            reply = await message.reply("I can't make threads here.")

        assert (refused.value.status, refused.value.code, refused.value.text) == (403, 50013, "Missing Permissions")
        assert fake_discord.thread_of(asked) is None and fake_discord.message(reply.id).content.startswith("I can't")

    async def test_sending_can_be_forbidden_in_one_channel(self, fake_discord):
        fake_discord.forbid_sending("general")
        before = len(fake_discord.bot_messages("general"))
        async with connected(fake_discord) as client:
            with pytest.raises(discord.Forbidden) as refused:
                await client.get_channel(fake_discord.general.id).send("hello")
            elsewhere = await client.get_channel(fake_discord.channel("random").id).send("hello")

        assert refused.value.code == 50013 and len(fake_discord.bot_messages("general")) == before
        assert fake_discord.message(elsewhere.id).content == "hello"


class ReconnectTests:
    async def test_a_dropped_connection_resumes_and_replays_what_was_missed(self, fake_discord):
        async with connected(fake_discord) as client:
            assert await asyncio.to_thread(fake_discord.drop_gateway) == 1
            missed = fake_discord.send_message("alice", "general", "said while you were away", mention_bot=True)
            await fake_discord.until(lambda: seen(client, missed.content))
            await fake_discord.until(lambda: client.resumes)

        kinds = [c.kind for c in fake_discord.connections[-2:]]
        assert kinds == ["identify", "resume"] and fake_discord.connections[-1].resumed
        assert [m.content for m in client.seen].count(missed.content) == 1

    async def test_a_connection_cut_without_a_close_frame_resumes_too(self, fake_discord):
        async with connected(fake_discord) as client:
            await asyncio.to_thread(fake_discord.drop_gateway, code=None)
            await fake_discord.until(lambda: client.resumes)
            after = fake_discord.send_message("bob", "general", "still there?", mention_bot=True)
            await fake_discord.until(lambda: seen(client, after.content))

        assert fake_discord.connections[-1].resumed

    async def test_a_session_that_cannot_resume_identifies_afresh(self, fake_discord):
        async with connected(fake_discord) as client:
            identified = len([c for c in fake_discord.connections if c.kind == "identify"])
            await asyncio.to_thread(fake_discord.drop_gateway, resumable=False)
            await asyncio.to_thread(fake_discord.wait_for_ready, count=identified + 1)
            await asyncio.wait_for(client.wait_until_ready(), 10)
            after = fake_discord.send_message("bob", "general", "new session", mention_bot=True)
            await fake_discord.until(lambda: seen(client, after.content))

        kinds = [c.kind for c in fake_discord.connections[-3:]]
        assert kinds == ["identify", "resume", "identify"] and not fake_discord.connections[-2].resumed
        assert client.get_guild(fake_discord.guild_id) is not None


class InteractionTests:
    @staticmethod
    def with_commands(answers: list[str]) -> Recorder:
        client = Recorder()

        @client.tree.command(name="usage", description="Your budget")
        async def usage(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("1,000 of 100,000 tokens", ephemeral=True)

        @client.tree.command(name="summarize", description="A summary")
        async def summarize(interaction: discord.Interaction, length: int = 1) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(f"short ({length})", ephemeral=False)
            followup = await interaction.followup.send("and a second, public one", wait=True)
            await followup.edit(content="edited second")
            answers.append("done")

        return client

    async def test_commands_sync_and_an_ephemeral_answer_is_recorded(self, fake_discord):
        async with connected(fake_discord, self.with_commands([])) as client:
            synced = await client.tree.sync()
            interaction = fake_discord.run_command("usage", user="alice", channel="general")
            await fake_discord.until(lambda: interaction.acknowledged)

        assert {c.name for c in synced} == {"usage", "summarize"} and set(fake_discord.commands()) == {
            "usage",
            "summarize",
        }
        answer = fake_discord.message(interaction.original_id)
        assert (interaction.callback_type, answer.content, answer.ephemeral) == (4, "1,000 of 100,000 tokens", True)
        assert interaction.callback_at < 3.0

    async def test_the_first_followup_after_a_defer_fills_the_thinking_message_and_keeps_its_privacy(
        self, fake_discord
    ):
        answers: list[str] = []
        async with connected(fake_discord, self.with_commands(answers)) as client:
            guild = discord.Object(id=fake_discord.guild_id)
            client.tree.copy_global_to(guild=guild)
            await client.tree.sync(guild=guild)
            interaction = fake_discord.run_command("summarize", {"length": 3}, user="bob", channel="general")
            await fake_discord.until(lambda: answers)

        assert interaction.deferred and interaction.callback_flags & 64
        original = fake_discord.message(interaction.original_id)
        assert (original.content, original.ephemeral, original.loading) == ("short (3)", True, False)
        [second] = [fake_discord.message(i) for i in interaction.followup_ids]
        assert (second.content, second.ephemeral) == ("edited second", False)
        assert "PATCH /webhooks/{application_id}/{token}/messages/{message_id}" in {c.route for c in fake_discord.calls}

    async def test_a_callback_after_the_deadline_gets_unknown_interaction(self, fake_discord):
        fake_discord.interaction_deadline = 0.0
        try:
            async with connected(fake_discord, self.with_commands([])) as client:
                await client.tree.sync()
                errors: list[Exception] = []
                client.tree.on_error = lambda interaction, error: errors.append(error)
                interaction = fake_discord.run_command("usage", user="alice", channel="general")
                await fake_discord.until(lambda: errors)
        finally:
            fake_discord.interaction_deadline = 3.0

        assert interaction.late and not interaction.acknowledged
        assert isinstance(errors[0].original, discord.NotFound) and errors[0].original.code == 10062

    def test_an_unsynced_command_cannot_be_run(self, fake_discord):
        with pytest.raises(KeyError, match="has not synced a command called 'nope'"):
            fake_discord.run_command("nope", user="alice", channel="general")


class ControlApiTests:
    async def test_a_message_injected_over_http_reaches_the_client(self, fake_discord):
        async with connected(fake_discord) as client, httpx.AsyncClient() as http:
            answer = await http.post(
                f"{fake_discord.url}/_control/messages",
                json={"author": "bob", "channel": "random", "content": "over http", "mention_bot": True},
            )
            assert answer.status_code == 200
            await fake_discord.until(lambda: any(m.content.endswith("over http") for m in client.seen))
            calls = (await http.get(f"{fake_discord.url}/_control/calls")).json()

        assert calls[0]["route"] == "GET /users/@me"

    def test_it_runs_on_its_own_and_says_where(self):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_discord", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "DISCORD_API_URL=http://127.0.0.1:" in line
            url = line.split("DISCORD_API_URL=", 1)[1].split()[0]
            assert httpx.get(url + "/users/@me", headers={"Authorization": "Bot x"}).json()["bot"] is True
        finally:
            process.terminate()
            process.wait(timeout=10)
