"""Words for a waiting request: its place in the scheduler's order and a rough wait."""

from __future__ import annotations

from conversations.phases import describe_queued, describe_wait


class DescribeQueuedTests:
    def test_it_says_the_position_and_a_rough_wait_when_the_scheduler_gave_one(self):
        assert describe_queued({"status": "queued", "position": 2, "wait": 20}) == (
            "Queued (position 2, under a minute)…"
        )
        assert describe_queued({"status": "queued", "position": 4, "wait": 200}) == (
            "Queued (position 4, about 3 minutes)…"
        )

    def test_without_an_estimate_it_says_only_the_position(self):
        assert describe_queued({"status": "queued", "position": 1}) == "Queued (position 1)…"
        assert describe_queued({"status": "queued", "position": 1, "wait": None}) == "Queued (position 1)…"


class DescribeWaitTests:
    def test_it_rounds_to_minutes_past_the_first(self):
        assert [describe_wait(s) for s in (0, 44, 45, 89, 90, 600)] == [
            "under a minute",
            "under a minute",
            "about a minute",
            "about a minute",
            "about 2 minutes",
            "about 10 minutes",
        ]
