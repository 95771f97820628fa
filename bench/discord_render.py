"""How streamed answers reach Discord: through the real client, and one long answer in a fake channel.

    python -m bench.discord_render [--mode client|channel|both] [--rounds 4]
                                   [--tokens 10000] [--rate 50] [--delta-every 0.25]
                                   [--latency 0.05] [--realtime]

Mode ``client`` (part of the default, ``both``): the bot's own delivery path,
``bots.delivery.Delivery`` writing through ``bots.targets.ChannelTarget`` and the
real discord.py client into the Discord stand-in (``tests.fake_discord``, its
per-channel buckets answering 429 as Discord does), on the wall clock. Each
round starts a thread and streams two, then four, answers into it at once,
fed the events the bot gets from web: ``request.queued``, ``request.status``,
a ``request.delta`` every `--delta-every` seconds at `--rate` tokens per second
(each answer its own length, rate and start, so they end at different moments
of the edit cycle), and ``request.done``. The same round runs twice at the same
time, in two threads: with the bot's defaults (one budget per channel, shared
by the answers in it) and with the baseline, one budget per answer (what the
bot did before). Printed per scenario and budget: 429 answers, the shortest
time between two versions of one message (so the highest edit rate), whether
every answer's messages read exactly its text split, and from the last token
to the final text being shown, p50 and p95 (target <= 1.5 s).

Mode ``channel`` (what this benchmark measured first; details below): one long
answer through the renderer into a fake channel, against a naive renderer.

A model answer of `--tokens` tokens arrives at `--rate` tokens per second; the
worker coalesces it into a delta every `--delta-every` seconds (0: one delta per
token). Each renderer writes into its own fake Discord channel that enforces
Discord's per-channel limits (5 edits and 5 sends per 5 s, sliding; beyond that
it answers 429 with retry_after) and takes `--latency` seconds per call.

- throttled: `bots.stream.LiveMessageRenderer`, as the bot uses it.
- naive: edits the current message on every delta, in order, waiting out each
  429 and retrying, so edits queue up behind the limit. (discord.py mostly waits
  before sending instead of collecting the 429, with the same growing lag.)

By default time is virtual (`tests.bots.virtual_time`): asyncio sleeps and
timers behave as in real time but the clock jumps over idle waits, so 200 s of
streaming takes a second or two. `--realtime` runs on the wall clock instead,
giving the naive renderer `--naive-cap` seconds after the last token to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord

from bots.render import split_message, split_with_spans
from bots.stream import LiveMessageRenderer
from tests.bots import FakeDiscordChannel, virtual_time

LIMIT = 2000
_TOKEN = re.compile(r"[ \t]*\S{1,4}|\n|[ \t]+")


def make_answer(tokens: int, seed: int = 0) -> list[str]:
    """A markdown answer (prose, lists, code blocks) cut into `tokens` model tokens."""
    rng = random.Random(seed)
    words = ["the", "a", "model", "answer", "code", "value", "returns", "each", "line", "function", "when", "data"]
    blocks: list[str] = []
    length = 0
    while length < tokens * 4:  # about four characters a token, as BPE tokenizers give on English and code
        kind = rng.random()
        if kind < 0.55:
            block = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90))).capitalize() + ".\n\n"
        elif kind < 0.7:
            block = "".join(f"- Use `{rng.choice(words)}()` for the {rng.choice(words)}.\n" for _ in range(4)) + "\n"
        else:
            lines = [f"```{rng.choice(['python', 'js', ''])}"]
            for i in range(rng.randint(10, 40)):
                lines.append("    " * rng.randint(0, 2) + f"{rng.choice(words)}_{i} = compute({i}, {{'k': [{i}]}})")
            block = "\n".join(lines) + "\n```\n\n"
        blocks.append(block)
        length += len(block)
    out = _TOKEN.findall("".join(blocks))
    return out[:tokens]


def deltas(tokens: list[str], rate: float, every: float) -> list[tuple[float, str]]:
    """(time, text) of each delta the bot receives; the last one comes with the last token."""
    out: list[tuple[float, str]] = []
    pending: list[str] = []
    next_flush = every
    for i, token in enumerate(tokens):
        at = (i + 1) / rate
        if every and at >= next_flush and pending:
            out.append((next_flush, "".join(pending)))
            pending = []
            while next_flush <= at:
                next_flush += every
        pending.append(token)
        if not every:
            out.append((at, "".join(pending)))
            pending = []
    if pending:
        out.append((len(tokens) / rate, "".join(pending)))
    return out


class NaiveRenderer:
    """Edits on every delta, in order, retrying each 429 after retry_after (as discord.py does)."""

    def __init__(self, channel: FakeDiscordChannel) -> None:
        self.channel = channel
        self.text = ""
        self.start = 0  # where the current message's text begins
        self.handle: int | None = None
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def run(self) -> None:
        while (delta := await self.queue.get()) is not None:
            self.text += delta
            while len(self.text) - self.start > LIMIT:
                await self._write(self.text[self.start : self.start + LIMIT])
                self.start += LIMIT
                self.handle = None
            if self.text[self.start :].strip():
                await self._write(self.text[self.start :])

    async def _write(self, content: str) -> None:
        while True:
            try:
                if self.handle is None:
                    self.handle = await self.channel.send(content)
                else:
                    await self.channel.edit(self.handle, content)
                return
            except discord.RateLimited as exc:
                await asyncio.sleep(exc.retry_after)


@dataclass
class Result:
    messages: int
    edits: int
    rate_limited: int
    finish_latency: float | None  # last token -> final text visible; None if never
    intact: bool  # the text arrived byte for byte (leaving out added fence lines)
    blocks_render: bool  # no message leaves a code block open
    cpu: float


def measure(channel: FakeDiscordChannel, text: str, last_token_at: float, finished: bool, cpu: float) -> Result:
    accepted = [c for c in channel.calls if not c.rejected]
    done = max(c.done_at for c in accepted if c.done_at is not None)
    contents = channel.contents()
    return Result(
        messages=sum(c.op == "send" for c in accepted),
        edits=sum(c.op == "edit" for c in accepted),
        rate_limited=channel.rate_limited,
        finish_latency=done - last_token_at if finished else None,
        intact=contents == split_message(text) or "".join(contents) == text,
        blocks_render=all(not split_with_spans(content + "\n", 10**9)[0].closer for content in contents),
        cpu=cpu,
    )


async def run_throttled(schedule: list[tuple[float, str]], latency: float) -> Result:
    loop = asyncio.get_running_loop()
    channel = FakeDiscordChannel(latency=latency)
    renderer = LiveMessageRenderer(channel)
    start, cpu = loop.time(), time.process_time()
    for at, delta in schedule:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        renderer.feed(delta)
    last_token_at = loop.time()
    await renderer.finish()
    return measure(channel, renderer.text, last_token_at, True, time.process_time() - cpu)


async def run_naive(schedule: list[tuple[float, str]], latency: float, cap: float | None) -> Result:
    loop = asyncio.get_running_loop()
    channel = FakeDiscordChannel(latency=latency)
    renderer = NaiveRenderer(channel)
    worker = asyncio.create_task(renderer.run())
    start, cpu = loop.time(), time.process_time()
    for at, delta in schedule:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        renderer.queue.put_nowait(delta)
    last_token_at = loop.time()
    renderer.queue.put_nowait(None)
    try:
        await asyncio.wait_for(worker, cap)
        finished = True
    except TimeoutError:
        finished = False
    text = "".join(delta for _, delta in schedule)
    return measure(channel, text, last_token_at, finished, time.process_time() - cpu)


async def finish_latencies(runs: int, rate: float, every: float, latency: float, seed: int) -> list[float]:
    """Last token to final text for short answers ending at every phase of the edit cycle."""
    rng = random.Random(seed)
    out = []
    for _ in range(runs):
        tokens = make_answer(rng.randint(100, 700), seed=rng.randint(0, 10**6))
        result = await run_throttled(deltas(tokens, rate * rng.uniform(0.5, 2), every), latency)
        assert result.finish_latency is not None and result.intact
        out.append(result.finish_latency)
    return out


# -- Mode client: the real discord.py client against the stand-in ----------------------------


@dataclass
class AnswerRun:
    """One answer shown by the bot, as the stand-in recorded it."""

    messages: list[int]  # Discord message ids, in order
    text: str
    last_token_at: float  # time.monotonic() when the bot got the last delta
    exact: bool = False
    last_token_to_final: float = math.inf
    shortest_gap: float = math.inf  # between two versions of one of its messages


@dataclass
class ScenarioResult:
    answers: list[AnswerRun] = field(default_factory=list)
    rate_limited: int = 0

    def percentile(self, q: float) -> float:
        values = sorted(a.last_token_to_final for a in self.answers)
        return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] if values else math.nan


@contextlib.asynccontextmanager
async def bot_client(fake: Any) -> AsyncIterator[Any]:
    """A discord.py client logged in to ``fake`` and connected to its gateway, as ``manage.py runbot`` starts one."""
    import discord
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from bots.discord_api import follow_api_gateway, use_api

    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    use_api(fake.api_url)
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.1)
    try:
        async with client:
            await client.login("bench-token")
            await follow_api_gateway(client.http)
            task = asyncio.create_task(client.connect())
            await asyncio.wait_for(client.wait_until_ready(), 30)
            yield client
            await client.close()
            await asyncio.wait_for(task, 10)
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


async def stream_into_thread(
    client: Any, fake: Any, *, share: bool, plans: list[tuple[float, list[tuple[float, str]]]], label: str
) -> ScenarioResult:
    """Start a thread the way the bot does and show ``plans`` (start offset, delta schedule) in it at once."""
    from bots.delivery import Delivery
    from bots.targets import ChannelTarget

    asked = fake.send_message("alice", "general", f"bench {label}", mention_bot=True)
    general = client.get_channel(fake.general.id)
    thread = await general.get_partial_message(asked.id).create_thread(name=f"bench {label}")
    remembered: dict[int, list[int]] = {}

    async def remember(request_id: int, ids: list[int]) -> None:
        remembered[request_id] = ids

    async def delivered(request_id: int) -> None:
        return None

    delivery = Delivery(
        edit_interval=1.1, mark_delivered=delivered, remember_messages=remember, share_channel_budget=share
    )
    loop = asyncio.get_running_loop()
    runs: dict[int, AnswerRun] = {}

    async def one(request_id: int, start: float, schedule: list[tuple[float, str]]) -> None:
        await asyncio.sleep(start)
        delivery.track(request_id, ChannelTarget(thread))
        delivery.dispatch({"type": "request.queued", "request_id": request_id, "position": 1})
        delivery.dispatch({"type": "request.status", "request_id": request_id, "phase": "generating", "attempt": 1})
        began, offset = loop.time(), 0
        for at, delta in schedule:
            await asyncio.sleep(max(0.0, began + at - loop.time()))
            delivery.dispatch(
                {"type": "request.delta", "request_id": request_id, "offset": offset, "text": delta, "attempt": 1}
            )
            offset += len(delta)
        text = "".join(delta for _, delta in schedule)
        runs[request_id] = AnswerRun([], text, last_token_at=time.monotonic())
        done = delivery.dispatch({"type": "request.done", "request_id": request_id, "content": text, "request": {}})
        assert done is not None
        await done

    await asyncio.gather(*(one(n + 1, start, schedule) for n, (start, schedule) in enumerate(plans)))
    result = ScenarioResult(rate_limited=sum(1 for call in fake.rate_limited if call.channel_id == thread.id))
    for request_id, run in runs.items():
        messages = [fake.message(message_id) for message_id in remembered.get(request_id, [])]
        run.messages = [message.id for message in messages]
        run.exact = [message.content for message in messages] == split_message(run.text)
        run.last_token_to_final = max(0.0, max(m.history[-1].at for m in messages) - run.last_token_at)
        gaps = [b.at - a.at for message in messages for a, b in itertools.pairwise(message.history)]
        run.shortest_gap = min(gaps, default=math.inf)
        result.answers.append(run)
    return result


def answer_plans(
    rng: random.Random, count: int, rate: float, every: float
) -> list[tuple[float, list[tuple[float, str]]]]:
    """``count`` answers of 300 to 1,500 tokens at half to twice ``rate``, starting within a second of each other."""
    plans = []
    for _ in range(count):
        tokens = make_answer(rng.randint(300, 1500), seed=rng.randint(0, 10**6))
        while tokens and not tokens[-1].strip():  # end on a visible token, so the final edit has work to do
            tokens.pop()
        plans.append((rng.uniform(0.0, 1.0), deltas(tokens, rate * rng.uniform(0.5, 2.0), every)))
    return plans


async def run_client_mode(args: argparse.Namespace) -> bool:
    """Print the figures of mode ``client``; True when the shared budget meets every target."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trollama.settings")
    import django

    django.setup()
    from tests.fake_discord import FakeDiscord

    rng = random.Random(args.seed)
    results: dict[tuple[int, bool], ScenarioResult] = {}
    wall = time.perf_counter()
    with FakeDiscord() as fake:
        async with bot_client(fake) as client:
            for round_number in range(args.rounds):
                for count in (2, 4):
                    plans = answer_plans(rng, count, args.rate, args.delta_every)
                    shared, own = await asyncio.gather(
                        stream_into_thread(client, fake, share=True, plans=plans, label=f"{round_number}-{count}-s"),
                        stream_into_thread(client, fake, share=False, plans=plans, label=f"{round_number}-{count}-o"),
                    )
                    for share, result in ((True, shared), (False, own)):
                        total = results.setdefault((count, share), ScenarioResult())
                        total.answers += result.answers
                        total.rate_limited += result.rate_limited

    print(
        f"Discord rendering through the real client (discord.py {discord.__version__}) against the Discord stand-in: "
        f"{args.rounds} rounds of 2 and of 4 answers streaming at once in one thread, 300-1,500 tokens each at "
        f"{args.rate / 2:g}-{args.rate * 2:g} tokens/s, a delta every {args.delta_every:g} s; "
        f"Discord's limits (5 sends and 5 edits per 5 s per channel); bot defaults (edit interval 1.1 s)"
    )
    rows = [
        ("429 responses (target 0)", lambda r: f"{r.rate_limited}"),
        (
            "shortest time between two versions of a message (target >= 1.1 s)",
            lambda r: f"{min(a.shortest_gap for a in r.answers):.2f} s",
        ),
        ("every answer's text exact", lambda r: "yes" if all(a.exact for a in r.answers) else "NO"),
        ("last token -> final text shown, p50", lambda r: f"{r.percentile(0.5):.2f} s"),
        ("last token -> final text shown, p95 (target <= 1.5 s)", lambda r: f"{r.percentile(0.95):.2f} s"),
        ("last token -> final text shown, max", lambda r: f"{max(a.last_token_to_final for a in r.answers):.2f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    ok = True
    for count in (2, 4):
        shared, own = results[(count, True)], results[(count, False)]
        print(f"\n{count} answers at once ({len(shared.answers)} answers per budget)")
        print(f"{'':{width}}  {'one per channel':>16}  {'baseline: one per answer':>24}")
        for label, cell in rows:
            print(f"{label:{width}}  {cell(shared):>16}  {cell(own):>24}")
        ok = ok and (
            shared.rate_limited == 0
            and min(a.shortest_gap for a in shared.answers) >= 1.1 - 0.05
            and all(a.exact for a in shared.answers)
            and shared.percentile(0.95) <= 1.5
        )
    print(f"client mode wall time: {time.perf_counter() - wall:.1f} s")
    print(f"one budget per channel meets its targets: {'yes' if ok else 'NO'}")
    return ok


async def main(args: argparse.Namespace) -> int:
    if args.mode in ("client", "both"):
        await run_client_mode(args)
        if args.mode == "client":
            return 0
        print()
    tokens = make_answer(args.tokens, args.seed)
    schedule = deltas(tokens, args.rate, args.delta_every)
    text = "".join(tokens)
    clock = contextlib.nullcontext() if args.realtime else virtual_time()
    wall = time.perf_counter()
    with clock:
        if args.realtime:
            throttled, naive = await asyncio.gather(
                run_throttled(schedule, args.latency), run_naive(schedule, args.latency, args.naive_cap)
            )
            phases: list[float] = []
        else:
            throttled = await run_throttled(schedule, args.latency)
            naive = await run_naive(schedule, args.latency, None)
            phases = await finish_latencies(args.phase_runs, args.rate, args.delta_every, args.latency, args.seed)

    print(
        f"Discord rendering: {len(tokens):,} tokens ({len(text):,} characters) at {args.rate:g} tokens/s "
        f"= {len(tokens) / args.rate:.1f} s of streaming, {len(schedule):,} deltas "
        f"({'one per token' if not args.delta_every else f'one every {args.delta_every:g} s'}), "
        f"Discord latency {args.latency * 1000:.0f} ms per call, 5 edits and 5 sends per 5 s per channel, "
        f"{'real time' if args.realtime else 'virtual time'}"
    )
    # The edit interval counts from the end of a message's last write, so the final text may wait for that
    # write's call, then the interval, then its own call: 1.1 s + two calls' latency (+ the budget's margin).
    target = 1.1 + 2 * args.latency + 0.05
    rows = [
        ("messages sent", lambda r: f"{r.messages}"),
        ("edits", lambda r: f"{r.edits}"),
        ("429 responses (target 0)", lambda r: f"{r.rate_limited}"),
        (
            f"last token -> final text visible (target <= {target:.2f} s)",
            lambda r: (
                f"{r.finish_latency:.2f} s" if r.finish_latency is not None else f"> {args.naive_cap:g} s (gave up)"
            ),
        ),
        ("text delivered byte for byte", lambda r: "yes" if r.intact else "no"),
        ("every message renders its code blocks", lambda r: "yes" if r.blocks_render else "no"),
        ("CPU time", lambda r: "n/a" if args.realtime else f"{r.cpu * 1000:.0f} ms"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':{width}}  {'throttled':>12}  {'naive (edit per delta)':>22}")
    for label, cell in rows:
        print(f"{label:{width}}  {cell(throttled):>12}  {cell(naive):>22}")
    if phases:
        print(
            f"throttled, last token -> final text over {len(phases)} shorter answers (100-700 tokens at "
            f"{args.rate / 2:g}-{args.rate * 2:g} tokens/s, so ending at every phase of the edit cycle): "
            f"median {statistics.median(phases):.2f} s, max {max(phases):.2f} s"
        )
    print(f"benchmark wall time: {time.perf_counter() - wall:.1f} s")
    ok = (
        throttled.intact
        and throttled.blocks_render
        and throttled.rate_limited == 0
        and (throttled.finish_latency or 0) <= target
        and max(phases, default=0) <= target
    )
    print(f"throttled renderer meets its targets: {'yes' if ok else 'NO'}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["client", "channel", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=4, help="mode client: rounds of 2 and 4 answers at once")
    parser.add_argument("--tokens", type=int, default=10_000, help="mode channel: the long answer's tokens")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--delta-every", type=float, default=0.25, help="seconds between deltas (0: every token)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per Discord call")
    parser.add_argument("--phase-runs", type=int, default=200, help="short runs for the finish-latency spread")
    parser.add_argument("--realtime", action="store_true", help="run on the wall clock (about tokens/rate seconds)")
    parser.add_argument("--naive-cap", type=float, default=30.0, help="with --realtime: seconds the naive one gets")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
