"""The quiet footer under an answer: what was cut, budget warnings. The model's text is never touched."""

from __future__ import annotations

import pytest

from bots.render import discord_footer, split_message, with_footer
from tests.bots.test_delivery import deltas, run

NOTICES = [
    {
        "code": "file_cut",
        "file": "my_notes.txt",
        "detail": "Only the first 40,000 of 52,113 characters of this file were read.",
    },
    {"code": "turns_dropped", "count": 12},
    {
        "code": "budget_warning",
        "percent": 80,
        "used_percent": 83,
        "remaining": 17_000,
        "resets": "Monday 7 December at 00:00 UTC",
    },
    {"code": "from_a_newer_version", "x": 1},
]


class FooterTests:
    def test_each_notice_is_a_quiet_subtext_line_and_unknown_ones_are_skipped(self):
        footer = discord_footer(NOTICES)

        assert footer.splitlines() == [
            "-# ✂️ `my_notes.txt`: Only the first 40,000 of 52,113 characters of this file were read.",
            "-# 🧵 The model did not see the 12 oldest messages of this thread: they no longer fit its context window.",
            "-# ⚠️ You have used 83% of this week's token budget: 17,000 tokens are left until it resets "
            "Monday 7 December at 00:00 UTC.",
        ]

    def test_a_file_left_out_unseen_images_and_a_branch_each_get_a_line(self):
        footer = discord_footer(
            [
                {"code": "file_refused", "file": "tool.exe", "reason": "it is 12 MB and the limit is 10 MB."},
                {"code": "images_unseen", "count": 2, "model": "gpt-oss:20b"},
                {"code": "branched"},
            ]
        )

        assert footer.splitlines() == [
            "-# 🚫 `tool.exe` was left out: it is 12 MB and the limit is 10 MB.",
            "-# 🖼️ The model that answered (gpt-oss:20b) cannot see images: it saw only the names of your 2 images.",
            "-# ↪️ Branched from the message you replied to: the model saw this conversation up to there, not after.",
        ]

    def test_no_notices_no_footer(self):
        assert discord_footer([]) == discord_footer(None) == ""
        assert with_footer("exact  text \n", "") == "exact  text \n"

    @pytest.mark.parametrize(
        "text",
        ["Plain answer.", "Ends with a newline\n", "  spaced\t\r\n  ", "```python\ndef f():\n\treturn 1\n```"],
    )
    def test_the_answer_stays_byte_for_byte_and_the_footer_follows_on_its_own_lines(self, text):
        result = with_footer(text, "-# note")

        assert result.startswith(text)
        assert result[len(text) :].lstrip("\n") == "-# note"
        assert "\n\n-# note" in result or result.endswith("\n-# note")

    @pytest.mark.parametrize(
        ("text", "closer"),
        [("Here:\n```python\nx = 1", "```"), ("~~~~\ncode\n", "~~~~"), ("````md\n```py\nx\n```\n", "````")],
    )
    def test_a_code_block_the_answer_leaves_open_is_closed_before_the_footer(self, text, closer):
        result = with_footer(text, "-# note")

        assert result.startswith(text)
        assert result.endswith(f"{closer}\n-# note")

    def test_a_long_answer_keeps_its_split_and_the_footer_lands_after_it(self):
        answer = "Intro.\n\n```python\nfor i in range(3):\n\tprint(i)\n```\n" * 80

        parts = split_message(with_footer(answer, discord_footer(NOTICES[:2])))

        assert "".join(parts).startswith("".join(split_message(answer))[:-200])
        assert parts[-1].endswith("they no longer fit its context window.")


class DeliveryFooterTests:
    async def test_a_done_answer_ends_with_its_stored_notices(self):
        answer = "Answer with `code` and  spaces.\n"
        events = [
            *deltas(answer),
            {"type": "request.done", "request_id": 1, "content": answer, "request": {"notices": NOTICES[1:2]}},
        ]

        channel, outcomes, _ = await run(events)

        assert channel.contents() == [
            answer
            + "\n-# 🧵 The model did not see the 12 oldest messages of this thread: they no longer fit its context window."
        ]
        assert [o.status for o in outcomes] == ["done"]

    async def test_without_notices_the_answer_is_exactly_the_models_text(self):
        answer = "Just this."
        events = [
            *deltas(answer),
            {"type": "request.done", "request_id": 1, "content": answer, "request": {"notices": []}},
        ]

        channel, _, _ = await run(events)

        assert channel.contents() == [answer]
