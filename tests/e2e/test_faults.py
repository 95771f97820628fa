"""The delivery contract under a storm of faults, with the settings a fresh install has.

Thirty questions, half from terminals and half from Discord, while workers are
killed, the cluster is stopped, web is killed and the bot restarts (see
``bench/faults.py``, which runs the same suite and prints its figures). Every
answer must arrive once, complete, where it was asked.
"""

from __future__ import annotations

import pytest

from bench.faults import FAULTS, run_suite
from tests.e2e.bot import running_bot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(_fake_ollama_server, _fake_discord_server, tmp_path_factory):
    with running_bot(
        tmp_path_factory.mktemp("faults"), ollama_url=_fake_ollama_server.url, discord=_fake_discord_server
    ) as system:
        yield system


class FaultSuiteTests:
    def test_every_answer_arrives_once_through_killed_workers_stops_and_restarts(self, system, fake, fake_discord):
        result = run_suite(system, fake, fake_discord, requests=30, seed=7, rounds=1, baseline=0)

        assert sorted({fault.name for fault in result.faults}) == sorted(FAULTS), system.logs()
        assert result.lost == [], "\n".join(result.lost) + system.logs()
        assert result.duplicated == []
        assert all(fault.recovery for fault in result.faults if fault.hit)  # each fault's answers moved on again
