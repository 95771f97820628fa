"""Files in Discord: attached to the answer, or linked past the upload limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from artifacts.selectors import artifact_summary
from bots import services as bot_services
from bots.client import TrollamaBot
from bots.delivery import DM_UPLOAD_LIMIT, MAX_ATTACHMENTS, Delivery, deliver_files, files_message, plan_files
from bots.targets import ChannelTarget
from tests.bots import FakeDiscordChannel, virtual_time

MiB = 1024 * 1024
EXPIRES = "2030-01-01T12:00:00+00:00"


def summary(artifact_id: int, size: int, name: str | None = None) -> dict[str, Any]:
    return {
        "id": artifact_id,
        "filename": name or f"f{artifact_id}.txt",
        "size": size,
        "content_type": "text/plain",
        "url": f"https://trollama.example.org/a/t{artifact_id}/",
        "expires_at": EXPIRES,
    }


@dataclass
class FileChannel(FakeDiscordChannel):
    """The fake channel, able to take files like the bot's ``ChannelTarget``."""

    upload_limit: int = DM_UPLOAD_LIMIT
    refuse_uploads: bool = False
    attached: dict[int, list[tuple[str, bytes]]] = field(default_factory=dict)

    async def attach(self, handle: int, files: list[tuple[str, bytes]]) -> None:
        if self.refuse_uploads:
            raise discord.HTTPException(_Response(413), "Request entity too large")
        self.attached.setdefault(handle, []).extend(files)


@dataclass
class _Response:
    status: int
    reason: str = "error"


async def fetch(artifact_id: int) -> bytes:
    return f"content of {artifact_id}".encode()


class PlanFilesTests:
    def test_files_within_the_limit_are_attached(self):
        plan = plan_files([summary(1, 100), summary(2, 5 * MiB)], upload_limit=DM_UPLOAD_LIMIT)

        assert [a["id"] for a in plan.attach] == [1, 2] and plan.link == []

    def test_a_file_past_the_limit_gets_a_link_and_the_others_still_go_up(self):
        plan = plan_files([summary(1, 11 * MiB), summary(2, 100)], upload_limit=DM_UPLOAD_LIMIT)

        assert [a["id"] for a in plan.attach] == [2]
        assert [a["id"] for a in plan.link] == [1]

    def test_the_limit_counts_the_files_of_one_message_together(self):
        plan = plan_files([summary(1, 6 * MiB), summary(2, 6 * MiB), summary(3, 1 * MiB)], upload_limit=10 * MiB)

        assert [a["id"] for a in plan.attach] == [1, 3]
        assert [a["id"] for a in plan.link] == [2]

    def test_a_boosted_guilds_higher_limit_is_used(self):
        plan = plan_files([summary(1, 40 * MiB)], upload_limit=50 * MiB)

        assert [a["id"] for a in plan.attach] == [1]

    def test_at_most_ten_attachments_then_links(self):
        plan = plan_files([summary(i, 10) for i in range(MAX_ATTACHMENTS + 2)], upload_limit=DM_UPLOAD_LIMIT)

        assert len(plan.attach) == MAX_ATTACHMENTS and len(plan.link) == 2

    def test_the_links_message_names_each_file_its_size_link_and_expiry(self):
        text = files_message([summary(7, 12_345_678, "big.csv")], ["x.txt is 9.0 MB, over the 8.0 MB limit."])

        expires = int(datetime(2030, 1, 1, 12, tzinfo=UTC).timestamp())
        assert text == (
            "📎 **big.csv** (12.3 MB, too large to attach here): <https://trollama.example.org/a/t7/> "
            f"(the link expires <t:{expires}:R>)\n"
            "⚠️ x.txt is 9.0 MB, over the 8.0 MB limit."
        )


async def deliver(channel: FakeDiscordChannel, artifacts: list[dict], notes: list[str] | None = None) -> None:
    async def mark(request_id: int) -> None:
        pass

    with virtual_time():
        delivery = Delivery(edit_interval=1.1, mark_delivered=mark, fetch_file=fetch)
        delivery.track(1, channel)
        await delivery.handle(
            {
                "type": "request.done",
                "request_id": 1,
                "content": "Here is your file.",
                "artifacts": artifacts,
                "artifact_notes": notes or [],
            }
        )


class DeliveryWithFilesTests:
    async def test_files_are_attached_to_the_answers_last_message(self):
        channel = FileChannel()

        await deliver(channel, [summary(1, 20), summary(2, 30)])

        assert channel.contents() == ["Here is your file."]
        assert channel.attached == {1: [("f1.txt", b"content of 1"), ("f2.txt", b"content of 2")]}

    async def test_past_the_upload_limit_the_answer_is_followed_by_the_signed_link(self):
        channel = FileChannel(upload_limit=8 * MiB)

        await deliver(channel, [summary(1, 9 * MiB, "huge.log"), summary(2, 10)])

        assert channel.attached == {1: [("f2.txt", b"content of 2")]}
        answer, links = channel.contents()
        assert answer == "Here is your file."
        assert links.startswith(
            "📎 **huge.log** (9.4 MB, too large to attach here): <https://trollama.example.org/a/t1/>"
        )

    async def test_when_discord_refuses_the_upload_every_file_gets_its_link(self):
        channel = FileChannel(refuse_uploads=True)

        await deliver(channel, [summary(1, 10), summary(2, 10)])

        assert channel.attached == {}
        assert channel.contents()[1].count("📎") == 2

    async def test_a_target_that_cannot_take_files_gets_links(self):
        channel = FakeDiscordChannel()

        await deliver(channel, [summary(1, 10)])

        assert channel.contents()[0] == "Here is your file."
        assert "<https://trollama.example.org/a/t1/>" in channel.contents()[1]

    async def test_notes_about_files_left_out_follow_the_answer(self):
        channel = FileChannel()

        await deliver(channel, [], ["big.txt is 9.0 MB, over the 8.0 MB limit for a file."])

        assert channel.contents() == ["Here is your file.", "⚠️ big.txt is 9.0 MB, over the 8.0 MB limit for a file."]

    async def test_an_answer_without_files_is_just_the_answer(self):
        channel = FileChannel()

        await deliver(channel, [])

        assert channel.contents() == ["Here is your file."] and channel.attached == {}


# -- The discord.py edge ------------------------------------------------------


@dataclass
class FakeGuild:
    filesize_limit: int


@dataclass
class FakeChannel:
    guild: FakeGuild | None
    sent: list[dict] = field(default_factory=list)

    async def send(self, content: str, **kwargs: Any) -> FakeMessage:
        message = FakeMessage(content)
        self.sent.append({"content": content, "message": message})
        return message


@dataclass
class FakeMessage:
    content: str
    attachments: list[Any] = field(default_factory=list)
    edits: list[dict] = field(default_factory=list)

    async def edit(self, **kwargs: Any) -> None:
        self.edits.append(kwargs)


class ChannelTargetTests:
    def test_the_upload_limit_is_the_guilds_or_ten_mib_in_dms(self):
        assert ChannelTarget(FakeChannel(FakeGuild(50 * MiB))).upload_limit == 50 * MiB
        assert ChannelTarget(FakeChannel(None)).upload_limit == 10 * MiB

    async def test_files_are_added_to_the_message_as_discord_files(self):
        message = FakeMessage("answer", attachments=["kept"])

        await ChannelTarget(FakeChannel(None)).attach(message, [("a.py", b"print(1)\n")])

        (edit,) = message.edits
        kept, upload = edit["attachments"]
        assert kept == "kept"
        assert isinstance(upload, discord.File) and upload.filename == "a.py"
        assert upload.fp.read() == b"print(1)\n"


@pytest.fixture
async def close_thread_connections():
    """Close the database connection the sync_to_async thread opened, so the test database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("close_thread_connections")
class OutboxFilesTests:
    async def test_a_redelivered_answer_brings_its_files(self, make_artifacts):
        artifacts = await sync_to_async(make_artifacts)('```python title="a.py"\nprint(1)\n```\n')
        request_id = artifacts[0].request_id
        channel = FakeChannel(FakeGuild(10 * MiB))
        bot = TrollamaBot()
        bot.delivery.track(request_id, ChannelTarget(channel))
        snapshot = (await sync_to_async(bot_services.request_snapshots)(request_ids=[request_id]))[request_id]

        # What a bot that restarted does with an answer that finished while it was away.
        await bot.delivery.resync(request_id, {**snapshot, "status": "done", "content": "the answer"})

        (sent,) = channel.sent
        (edit,) = sent["message"].edits
        assert [(f.filename, f.fp.read()) for f in edit["attachments"]] == [("a.py", b"print(1)\n")]
        await bot.close()

    async def test_deliver_files_links_every_file_when_the_bot_cannot_read_them(self, make_artifacts):
        (artifact,) = await sync_to_async(make_artifacts)()
        summaries = [await sync_to_async(artifact_summary)(artifact)]
        channel = FakeChannel(None)
        target = ChannelTarget(channel)
        answer = await target.send("the answer")

        async def unreadable(artifact_id: int) -> bytes:
            raise FileNotFoundError(artifact_id)

        await deliver_files(target, answer, summaries, [], fetch=unreadable)
        await asyncio.sleep(0)

        assert answer.edits == []
        assert summaries[0]["url"] in channel.sent[-1]["content"]
