"""Many concurrent streams through the shared async pool never queue behind a connection cap."""

from __future__ import annotations

import asyncio

import pytest

from modelslab_core import AsyncModelsLabClient
from modelslab_core.testing import LocalModelsLab

STREAMS = 150  # more than aiohttp's default cap of 100 connections


@pytest.mark.parametrize(
    "flow_control",
    [
        False,  # the pool alone
        # the account gate's slow start before any 429 too: a stream taken by the server (its
        # first event arrived) widens the round at once, not when it ends
        True,
    ],
)
async def test_every_concurrent_stream_gets_its_own_connection(flow_control: bool) -> None:
    with LocalModelsLab(stream_delay=0.02) as server:
        client = AsyncModelsLabClient(
            api_key="k", base_url=server.base_url, timeout=30, flow_control=flow_control
        )
        prompt = " ".join(f"w{i}" for i in range(20))
        started = asyncio.Event()
        open_now = 0

        async def one() -> str:
            nonlocal open_now
            request = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
            async with await client.chat_stream(request) as stream:
                open_now += 1
                if open_now == STREAMS:
                    started.set()
                # Every stream stays open until all of them are: a capped pool would deadlock
                # here, and the wait below turns that into a failure instead of a hang.
                await asyncio.wait_for(started.wait(), 20)
                return "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )

        texts = await asyncio.gather(*(one() for _ in range(STREAMS)))
        assert all(text.split() == prompt.split() for text in texts)
        assert server.max_open_connections_seen >= STREAMS
