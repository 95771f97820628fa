"""Run the fake Ollama on its own: ``python -m tests.fake_ollama --port 11435``.

Useful for demos and benchmarks where the bot runs in another process; script
it over HTTP with ``POST /_fake/script`` and friends.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tests.background import serve_until_stopped

from .server import FakeOllama
from .specs import Rule


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_ollama",
        description="Serve a fake Ollama API until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11435, help="0 picks a free port")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        help="stream pacing for unscripted replies (default: instant)",
    )
    parser.add_argument(
        "--load-delay",
        type=float,
        default=0.0,
        help="seconds the first request to each model waits (cold load)",
    )
    parser.add_argument(
        "--reply",
        default=None,
        help="fixed reply text (default: echo the user message)",
    )
    parser.add_argument("--version", default="0.12.0", help="what /api/version reports")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default = Rule(
        reply=args.reply,
        tokens_per_second=args.tokens_per_second,
        load_delay=args.load_delay,
    )
    fake = FakeOllama(port=args.port, host=args.host, version=args.version, default=default)
    fake.start()
    print(f"Fake Ollama listening on {fake.url}", flush=True)
    return serve_until_stopped(fake, "Fake Ollama")


if __name__ == "__main__":
    raise SystemExit(main())
