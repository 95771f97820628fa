"""Reading what was published on the channel layer, after the fact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

QUIET = 0.3  # seconds without a message that mean everything published so far has arrived


@contextmanager
def listening(*groups: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A channel joined to ``groups``; calling what it yields returns the events received since the last call.

    A call drains the channel within one event loop and returns once nothing
    has arrived for ``QUIET`` seconds; events are published after commit, so
    call it after the code under test has returned.
    """
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)("test.")
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)

    async def drain() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=QUIET)
            except TimeoutError:
                return received
            received.append(message["event"])

    try:
        yield async_to_sync(drain)
    finally:
        for group in groups:
            async_to_sync(layer.group_discard)(group, channel)
