"""Which mentions ask about the server's own past (``bots.intake.asks_about_the_server``)."""

from __future__ import annotations

import pytest

from bots.intake import asks_about_the_server

ABOUT_THE_SERVER = [
    "<@123> when is the next community event?",
    "what did we decide about the release date?",
    "who said they'd fix the login bug?",
    "did anyone mention where the meetup is?",
    "what was decided about the logo?",
    "who volunteered to host the stream?",
    "when is our next game night?",
    "what did the mods say about spam?",
    "what was said in #general about the outage?",
    "have we agreed on a venue yet?",
    "who was supposed to review my PR?",
]
GENERAL = [
    "what is a release date in semver?",
    "how do I fix a login bug in django?",
    "who won the 2018 world cup?",
    "when is the next solar eclipse?",
    "what did Einstein say about time?",
    "should we use postgres or sqlite?",
    "how did people decide things in ancient Rome?",
    "can we discuss recursion?",
    "explain what a meeting agenda should contain",
    "we need a function that sorts a list",
]


class AsksAboutTheServerTests:
    @pytest.mark.parametrize("text", ABOUT_THE_SERVER)
    def test_questions_about_what_was_said_here_are_recognised(self, text):
        assert asks_about_the_server(text)

    @pytest.mark.parametrize("text", GENERAL)
    def test_general_questions_with_the_same_words_are_not(self, text):
        assert not asks_about_the_server(text)
