"""Request events rendered into a (fake) Discord channel."""

from __future__ import annotations

import asyncio

from bots.delivery import Delivery
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
