"""The GPU-aware scheduler through real processes: web, a one-worker cluster, terminals, the fake Ollama.

One worker is busy answering on a loaded model (rnj-1, the math route) when
two more messages arrive: first one for gpt-oss (not loaded), then one for
rnj-1 again. Under the default scheduler the worker takes the rnj-1 request
next, although it came second; the terminals are told the policy's positions
while they wait, and never that no worker is running. Under ``fifo`` the same
arrivals run in arrival order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from routing.clients import sync_client
from tests.e2e.bot import running_bot
from tests.e2e.harness import System, read_unbuffered, running_system

pytestmark = pytest.mark.e2e

BLOCKER = "".join(f"word{i} " for i in range(320))  # 16 s at 20 tokens/s: longer than the terminal's 10 s hint


@pytest.fixture(params=["gpu", "fifo"], scope="module")
def system(request, _fake_ollama_server, tmp_path_factory) -> Iterator[System]:
    scheduler = request.param
    data = tmp_path_factory.mktemp(f"scheduling-{scheduler}")
    # A short lease makes the reaper, which also refreshes queue positions, look every 2 s.
    env = {"Q_WORKERS": "1", "REQUEST_SCHEDULER": scheduler, "REQUEST_LEASE": "8"}
    with running_system(data, ollama_url=_fake_ollama_server.url, **env) as up:
        up.scheduler = scheduler  # type: ignore[attr-defined]
        yield up


def wait_for_requests(system: System, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while True:
        ids = system.query(
            "from conversations.models import Request\n"
            "result = list(Request.objects.order_by('pk').values_list('pk', flat=True))"
        )
        assert isinstance(ids, list)
        if len(ids) >= count:
            return ids[-count:]
        assert time.monotonic() < deadline, f"only {len(ids)} requests arrived\n{system.logs()}"
        time.sleep(0.2)


def started_order(system: System, ids: list[int]) -> list[int]:
    found = system.query(
        "from conversations.models import Request\n"
        f"result = list(Request.objects.filter(pk__in={ids!r}).order_by('started_at').values_list('pk', flat=True))"
    )
    assert isinstance(found, list)
    return found


def test_a_free_worker_takes_the_loaded_models_request_first(system: System, fake) -> None:
    fake.script(BLOCKER, match="^busy$", tokens_per_second=20)
    fake.script("Needs the big model.", match="^chat please$")
    fake.script("From the loaded model.", match="^sum please$")
    sync_client(fake.url).generate(model="rnj-1:8b", keep_alive="10m")  # loaded, as after earlier answers

    blocker = system.spawn_chat("busy", "--route", "math", "--user", "erin")
    assert read_unbuffered(blocker.stdout, 6) == b"word0 "
    older = system.spawn_chat("chat please", "--route", "general", "--user", "frank")
    wait_for_requests(system, 2)
    newer = system.spawn_chat("sum please", "--route", "math", "--user", "gina")
    ids = wait_for_requests(system, 3)

    outputs = {}
    for name, chat in (("blocker", blocker), ("older", older), ("newer", newer)):
        out, err = chat.communicate(timeout=120)
        assert chat.returncode == 0, f"{name}: {err.decode()}\n{system.logs()}"
        outputs[name] = (out.decode(), err.decode())
    assert outputs["older"][0].startswith("Needs the big model.")
    assert outputs["newer"][0].startswith("From the loaded model.")

    blocker_id, older_id, newer_id = ids
    order = started_order(system, ids)
    older_err = outputs["older"][1]
    if system.scheduler == "gpu":  # type: ignore[attr-defined]
        assert order == [blocker_id, newer_id, older_id]
        # The older request was told it had moved behind the newer one, with a rough wait.
        assert "Queued (position 2, " in older_err, older_err + system.logs()
    else:
        assert order == [blocker_id, older_id, newer_id]
    # The worker was busy, not missing: the terminals never said otherwise.
    for name, (_, stderr) in outputs.items():
        assert "No worker has picked this up yet" not in stderr, f"{name}: {stderr}\n{system.logs()}"


@pytest.fixture(scope="module")
def bot_system(_fake_ollama_server, _fake_discord_server, tmp_path_factory) -> Iterator[System]:
    env = {"Q_WORKERS": "1", "REQUEST_LEASE": "8"}
    data = tmp_path_factory.mktemp("scheduling-bot")
    with running_bot(data, ollama_url=_fake_ollama_server.url, discord=_fake_discord_server, **env) as up:
        yield up


def test_a_waiting_questions_placeholder_is_told_its_position_and_roughly_how_long(
    bot_system: System, fake, fake_discord
) -> None:
    fake.script(BLOCKER, match="busy please$", tokens_per_second=20)
    fake.script("Your turn came.", match="waiting please$")
    busy = fake_discord.send_message("alice", "general", "busy please", mention_bot=True)
    busy_thread = fake_discord.wait_for(lambda: fake_discord.thread_of(busy), timeout=30, what="a thread")
    fake_discord.wait_for(
        lambda: any("word3" in m.content for m in fake_discord.bot_messages(busy_thread)), timeout=60, what="text"
    )

    waiting = fake_discord.send_message("bob", "general", "waiting please", mention_bot=True)
    thread = fake_discord.wait_for(lambda: fake_discord.thread_of(waiting), timeout=30, what="a thread")

    def placeholder_texts() -> list[str]:
        sent = [c for c in fake_discord.calls_to(method="POST", channel=thread) if isinstance(c.body, dict)]
        edits = [c for c in fake_discord.calls_to(method="PATCH", channel=thread) if isinstance(c.body, dict)]
        return [str(c.body.get("content", "")) for c in sent + edits]

    told = fake_discord.wait_for(
        lambda: [t for t in placeholder_texts() if t.startswith("Queued (position 1, ")],
        timeout=60,
        what="a placeholder with the wait",
    )
    assert told[0] in {"Queued (position 1, under a minute)…", "Queued (position 1, about a minute)…"}
    fake_discord.wait_for(
        lambda: bool(fake_discord.message(waiting.id).reactions.get("✅")), timeout=120, what="the answer"
    )
    assert [m.content for m in fake_discord.bot_messages(thread)] == ["Your turn came."]
