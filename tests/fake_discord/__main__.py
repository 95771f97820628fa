"""Run the fake Discord on its own: ``python -m tests.fake_discord --port 8765``.

Point a bot at it with the printed ``DISCORD_API_URL`` (any ``DISCORD_TOKEN``),
then play a user over HTTP, for example::

    curl -X POST localhost:8765/_control/messages \\
         -d '{"author": "alice", "channel": "general", "content": "hi", "mention_bot": true}'
    curl localhost:8765/_control/messages?channel=general     # what is in a channel now
    curl localhost:8765/_control/calls                         # every REST call the bot made

With ``--chat`` each line typed on stdin is sent as alice mentioning the bot in
#general, and the bot's messages are printed as they settle.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from collections.abc import Sequence

from tests.background import serve_until_stopped

from .server import FakeDiscord


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_discord", description="Serve a fake Discord until interrupted."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="the only bot token to accept (default: any)")
    parser.add_argument("--chat", action="store_true", help="send stdin lines as alice's mentions in #general")
    return parser.parse_args(argv)


def chat(fake: FakeDiscord, stopped: threading.Event) -> None:
    """Each stdin line as a mention in #general; print the bot's messages in the thread it opens (or #general)."""
    for line in sys.stdin:
        if stopped.is_set():
            return
        asked = fake.send_message(fake.alice, fake.general, line.rstrip("\n"), mention_bot=True)
        try:
            where = fake.wait_for(functools.partial(fake.thread_of, asked), timeout=30, what="a thread").id
        except TimeoutError:
            where = fake.general.id
        shown: dict[int, str] = {}
        try:
            # Print each message of the answer whenever it changes, until nothing changes for 5 s.
            while True:

                def changed(where: int = where, shown: dict[int, str] = shown) -> bool:
                    return any(shown.get(m.id) != m.content for m in fake.bot_messages(where))

                fake.wait_for(changed, timeout=5)
                for message in fake.bot_messages(where):
                    if shown.get(message.id) != message.content:
                        shown[message.id] = message.content
                        print(f"[{message.id}] {message.content}", flush=True)
        except TimeoutError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    fake = FakeDiscord(port=args.port, host=args.host, token=args.token)
    fake.start()
    print(f"Fake Discord listening: DISCORD_API_URL={fake.api_url} (gateway {fake.gateway_url})", flush=True)
    print(
        f"guild {fake.guild_id}; #general {fake.general.id}; users alice {fake.alice.id}, bob {fake.bob.id}",
        flush=True,
    )
    stopped = threading.Event()
    if args.chat:
        threading.Thread(target=chat, args=(fake, stopped), daemon=True).start()
    return serve_until_stopped(fake, "Fake Discord", stopped=stopped)


if __name__ == "__main__":
    raise SystemExit(main())
