"""How a request held by soft maintenance is shown in Discord and in the terminal."""

from __future__ import annotations

import io

from conversations.phases import describe_queued
from pipeline.terminal import TerminalRenderer
from tests.bots.test_delivery import run

HELD = {"type": "request.queued", "request_id": 1, "status": "held", "position": 2, "message": "Swapping GPUs."}


class HeldDisplayTests:
    def test_the_words_say_held_why_and_when_it_will_run(self):
        assert describe_queued(HELD) == (
            "Held: Swapping GPUs. Your message is saved and will be answered when maintenance ends."
        )

    def test_without_an_operator_message_it_still_says_maintenance(self):
        assert describe_queued({**HELD, "message": ""}).startswith("Held: Trollama is under maintenance.")

    def test_a_queued_request_still_shows_its_position(self):
        assert describe_queued({**HELD, "status": "queued"}) == "Queued (position 2)…"

    async def test_discord_shows_the_hold_then_the_answer_after_release(self):
        released = {**HELD, "status": "queued", "message": None, "position": 1}
        channel, outcomes, _ = await run(
            [HELD, 2.0, released, 2.0, {"type": "request.done", "request_id": 1, "content": "Hi."}]
        )

        shown = [call.content for call in channel.calls if call.op in ("send", "edit")]
        assert shown[0].startswith("Held: Swapping GPUs.")
        assert "Queued (position 1)…" in shown
        assert channel.contents() == ["Hi."]
        assert outcomes[0].status == "done"

    def test_the_terminal_prints_the_hold_on_stderr(self):
        out, err = io.StringIO(), io.StringIO()

        TerminalRenderer(1, out=out, err=err).handle(HELD)

        assert err.getvalue().startswith("Held: Swapping GPUs.")
        assert out.getvalue() == ""
