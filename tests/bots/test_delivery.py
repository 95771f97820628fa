"""Request events rendered into a (fake) Discord channel."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import discord

from bots.delivery import Delivery, Outcome
from bots.render import split_message
from tests.bots import FakeDiscordChannel, virtual_time

ANSWER = "Intro.\n\n```python\nfor i in range(3):\n\tprint(i)  # [{()}]\n```\n" * 60


def deltas(text: str, size: int = 37) -> list[dict]:
    return [
        {"type": "request.delta", "request_id": 1, "offset": start, "text": text[start : start + size]}
        for start in range(0, len(text), size)
    ]


async def run(events: list) -> tuple[FakeDiscordChannel, list, list[int]]:
    delivered: list[int] = []
    outcomes: list = []

    async def mark(request_id: int) -> None:
        delivered.append(request_id)

    async def remember(outcome) -> None:
        outcomes.append(outcome)

    with virtual_time():
        channel = FakeDiscordChannel()
        delivery = Delivery(edit_interval=1.1, mark_delivered=mark)
        delivery.track(1, channel, on_finish=remember)
        for event in events:
            if isinstance(event, float):  # time passing between events
                await asyncio.sleep(event)
            else:
                await delivery.handle(event)
    return channel, outcomes, delivered


class DeliveryTests:
    async def test_the_final_messages_are_the_answer_split_for_discord(self):
        events = [{"type": "request.queued", "request_id": 1, "position": 2}, *deltas(ANSWER)]
        events.append({"type": "request.done", "request_id": 1, "content": ANSWER})

        channel, outcomes, delivered = await run(events)

        assert channel.contents() == split_message(ANSWER)
        assert [o.status for o in outcomes] == ["done"] and delivered == [1]
        assert channel.rate_limited == 0

    async def test_the_placeholder_shows_the_queue_position_then_the_phase(self):
        events = [
            {"type": "request.queued", "request_id": 1, "position": 3},
            2.0,
            {
                "type": "request.status",
                "request_id": 1,
                "status": "generating",
                "phase": "loading_model",
                "model": "m:1",
            },
            2.0,
            {"type": "request.done", "request_id": 1, "content": "Hi."},
        ]

        channel, _, _ = await run(events)

        shown = [call.content for call in channel.calls if call.op in ("send", "edit")]
        assert shown[0] == "Queued (position 3)…"
        assert "Loading the model m:1…" in shown
        assert channel.contents() == ["Hi."]

    async def test_the_placeholder_follows_the_schedulers_position_and_wait_while_it_waits(self):
        events = [
            {"type": "request.queued", "request_id": 1, "position": 1},
            2.0,
            {"type": "request.queued", "request_id": 1, "position": 3, "wait": 150},
            2.0,
            {"type": "request.done", "request_id": 1, "content": "Hi."},
        ]

        channel, _, _ = await run(events)

        shown = [call.content for call in channel.calls if call.op in ("send", "edit")]
        assert shown[:2] == ["Queued (position 1)…", "Queued (position 3, about 2 minutes)…"]
        assert channel.contents() == ["Hi."]

    async def test_a_missed_delta_is_made_good_by_the_final_text(self):
        events = deltas(ANSWER)
        del events[3]
        events.append({"type": "request.done", "request_id": 1, "content": ANSWER})

        channel, _, _ = await run(events)

        assert channel.contents() == split_message(ANSWER)

    async def test_a_retry_replaces_the_broken_attempts_text(self):
        events = [
            *deltas("Half an answ"),
            {"type": "request.status", "request_id": 1, "phase": "retrying", "reset": True, "reason": "broke off"},
            *deltas("The whole answer."),
            {"type": "request.done", "request_id": 1, "content": "The whole answer."},
        ]

        channel, _, _ = await run(events)

        assert channel.contents() == ["The whole answer."]

    async def test_a_failure_is_shown_as_text_with_its_reason(self):
        events = [{"type": "request.failed", "request_id": 1, "error": "The model server is down."}]

        channel, outcomes, delivered = await run(events)

        assert channel.contents() == ["❌ The model server is down."]
        assert outcomes[0].status == "failed" and delivered == [1]

    async def test_a_cancelled_answer_keeps_its_text_and_says_so(self):
        events = [*deltas("Partial text"), {"type": "request.cancelled", "request_id": 1}]

        channel, outcomes, _ = await run(events)

        assert channel.contents() == ["Partial text\n\nCancelled."]
        assert outcomes[0].status == "cancelled"

    async def test_events_of_other_requests_are_ignored(self):
        channel, outcomes, _ = await run([{"type": "request.done", "request_id": 2, "content": "not ours"}])

        assert channel.contents() == [] and outcomes == []


def forbidden() -> discord.Forbidden:
    return discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"), "Missing Permissions")


class LaneTests:
    """Each request's events are applied in order, and one request's trouble stays its own."""

    async def test_discord_refusing_one_answer_leaves_the_others_alone(self):
        delivered: list[int] = []
        outcomes: list[Outcome] = []

        async def mark(request_id: int) -> None:
            delivered.append(request_id)

        async def remember(outcome: Outcome) -> None:
            outcomes.append(outcome)

        with virtual_time():
            refused, fine = FakeDiscordChannel(), FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=mark)
            delivery.track(1, refused, on_finish=remember)
            delivery.track(2, fine, on_finish=remember)
            refused.fail_next("send", forbidden())
            first = delivery.dispatch({"type": "request.done", "request_id": 1, "content": "For one."})
            second = delivery.dispatch({"type": "request.done", "request_id": 2, "content": "For two."})
            await asyncio.gather(first, second)

        assert fine.contents() == ["For two."]
        assert sorted((o.request_id, o.status) for o in outcomes) == [(1, "undelivered"), (2, "done")]
        assert sorted(delivered) == [1, 2]  # a 403 will not get better: not retried
        assert delivery.tracked() == []  # nothing kept for finished requests

    async def test_a_slow_answer_does_not_hold_up_another(self):
        with virtual_time() as clock:
            slow, quick = FakeDiscordChannel(latency=30.0), FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))
            delivery.track(1, slow)
            delivery.track(2, quick)
            began = clock()
            slow_done = delivery.dispatch({"type": "request.done", "request_id": 1, "content": "Slow."})
            await delivery.handle({"type": "request.done", "request_id": 2, "content": "Quick."})
            quick_at = clock() - began
            await slow_done

        assert quick.contents() == ["Quick."] and slow.contents() == ["Slow."]
        assert quick_at < 30.0  # not behind the slow channel's 30 s write

    async def test_a_deleted_answer_message_is_written_again(self):
        with virtual_time():
            channel = FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))
            delivery.track(1, channel)
            await delivery.handle({"type": "request.queued", "request_id": 1, "position": 1})
            await asyncio.sleep(2.0)
            channel.shown.clear()  # a moderator deleted the placeholder
            outcome = await delivery.handle({"type": "request.done", "request_id": 1, "content": "Still here."})

        assert outcome.status == "done"
        assert channel.contents() == ["Still here."]


class ResyncTests:
    async def test_an_answer_finished_while_events_were_missed_is_finished_from_the_database(self):
        snapshot = {"status": "done", "attempts": 1, "content": "Stored answer.", "artifacts": []}

        with virtual_time():
            channel = FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))
            delivery.track(1, channel)
            for event in deltas("Stored ans"):
                await delivery.handle(event)
            outcome = await delivery.resync(1, snapshot)

        assert outcome is not None and outcome.status == "done"
        assert channel.contents() == ["Stored answer."]

    async def test_a_retry_missed_while_disconnected_replaces_the_broken_text(self):
        running = {"status": "generating", "attempts": 2, "content": "New att", "position": None}

        with virtual_time():
            channel = FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))
            delivery.track(1, channel)
            for event in deltas("Broken first attempt"):
                await delivery.handle({**event, "attempt": 1})
            await delivery.resync(1, running)
            stale = {"type": "request.delta", "request_id": 1, "attempt": 1, "offset": 0, "text": "Broken first"}
            await delivery.handle(stale)  # read before the resync: ignored
            await delivery.handle(
                {"type": "request.delta", "request_id": 1, "attempt": 2, "offset": 7, "text": "empt."}
            )
            await delivery.handle({"type": "request.done", "request_id": 1, "content": "New attempt."})

        assert channel.contents() == ["New attempt."]

    async def test_a_reset_says_the_answer_started_again(self):
        events = [
            *deltas("Half an answ"),
            2.0,
            {
                "type": "request.status",
                "request_id": 1,
                "status": "queued",
                "phase": "resuming",
                "reset": True,
                "reason": "The answer was interrupted (a worker stopped); starting it again.",
                "attempt": 1,
            },
            2.0,
            {"type": "request.done", "request_id": 1, "content": "Whole."},
        ]

        channel, _, _ = await run(events)

        shown = [call.content for call in channel.calls if call.op in ("send", "edit") and not call.rejected]
        assert "↻ The answer was interrupted (a worker stopped); starting it again." in shown
        assert channel.contents() == ["Whole."]


class GapTests:
    async def test_deltas_after_a_gap_wait_for_the_stored_partial_answer_and_then_stream_on(self):
        text = "".join(f"word{n} " for n in range(40))
        stored = {"status": "generating", "attempts": 1, "content": text[:120]}
        fetched: list[int] = []

        async def fetch(request_id: int) -> dict:
            fetched.append(request_id)
            return stored

        with virtual_time():
            channel = FakeDiscordChannel()
            delivery = Delivery(
                edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0), fetch_snapshot=fetch
            )
            delivery.track(1, channel)
            await delivery.handle(delta(0, text[:50]))
            # web was away: text[50:100] never arrived
            await delivery.handle(delta(100, text[100:150]))
            await delivery.handle(delta(150, text[150:]))
            await asyncio.sleep(3.0)  # let the paced edits catch up
            live = channel.contents()

        assert fetched == [1]  # one read of the database, not one per delta
        assert live == [text]  # streaming went on before the final text arrived


def delta(offset: int, text: str) -> dict:
    return {"type": "request.delta", "request_id": 1, "attempt": 1, "offset": offset, "text": text}


class ChannelTargetStub:
    """A target that names its Discord channel, as ``bots.targets.ChannelTarget`` does."""

    def __init__(self, channel: FakeDiscordChannel, channel_id: int) -> None:
        self.channel, self.channel_id = channel, channel_id

    async def send(self, content: str) -> int:
        return await self.channel.send(content)

    async def edit(self, handle: int, content: str) -> None:
        await self.channel.edit(handle, content)

    async def delete(self, handle: int) -> None:
        await self.channel.delete(handle)


class SharedBudgetTests:
    async def test_answers_in_one_channel_share_a_budget_and_other_channels_have_their_own(self):
        with virtual_time():
            channel = FakeDiscordChannel()
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))

            in_thread = delivery.budget_of(ChannelTargetStub(channel, 10))

            assert delivery.budget_of(ChannelTargetStub(channel, 10)) is in_thread
            assert delivery.budget_of(ChannelTargetStub(channel, 11)) is not in_thread
            own = Delivery(
                edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0), share_channel_budget=False
            )
            assert own.budget_of(ChannelTargetStub(channel, 10)) is not own.budget_of(ChannelTargetStub(channel, 10))

    async def test_two_answers_streaming_into_one_thread_are_never_rate_limited(self):
        texts = {1: ANSWER, 2: ANSWER.replace("Intro", "Other")}
        with virtual_time():
            channel = FakeDiscordChannel(latency=0.05)
            delivery = Delivery(edit_interval=1.1, mark_delivered=lambda request_id: asyncio.sleep(0))
            handles: dict[int, list[int]] = {}
            for request_id in texts:
                delivery.track(request_id, ChannelTargetStub(channel, 10))

            async def stream(request_id: int) -> None:
                text = texts[request_id]
                for event in deltas(text):
                    await asyncio.sleep(0.05)
                    delivery.dispatch({**event, "request_id": request_id})
                view = delivery._views[request_id]
                await delivery.handle({"type": "request.done", "request_id": request_id, "content": text})
                handles[request_id] = view.renderer.handles

            await asyncio.gather(stream(1), stream(2))

        assert channel.rejected() == []
        for request_id, text in texts.items():
            assert [channel.shown[handle] for handle in handles[request_id]] == split_message(text)


class FinishingTests:
    async def test_a_request_is_tracked_until_its_final_text_is_shown_and_marked_delivered(self):
        delivered: list[int] = []

        async def mark(request_id: int) -> None:
            delivered.append(request_id)

        with virtual_time():
            channel = FakeDiscordChannel(latency=2.0)  # a slow final edit
            delivery = Delivery(edit_interval=1.1, mark_delivered=mark)
            delivery.track(1, channel)
            await delivery.handle({"type": "request.delta", "request_id": 1, "offset": 0, "text": "Hello"})
            done = delivery.dispatch({"type": "request.done", "request_id": 1, "content": "Hello there."})
            assert done is not None
            await asyncio.sleep(2.5)
            tracked_while_finishing = delivery.is_tracking(1)
            await done

        # A reconcile meanwhile must not take it over and show it twice.
        assert tracked_while_finishing and not delivery.is_tracking(1)
        assert channel.contents() == ["Hello there."] and delivered == [1]
