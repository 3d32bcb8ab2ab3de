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
    # Streams of 400 events 0.02 s apart (8 s): none can end, and give its connection back to
    # the pool, while the 150 are being opened; each is closed after a few chunks.
    with LocalModelsLab(stream_delay=0.02) as server:
        client = AsyncModelsLabClient(
            api_key="k", base_url=server.base_url, timeout=30, flow_control=flow_control
        )
        words = [f"w{i}" for i in range(400)]
        request = {
            "model": "meta-llama-3-8B-instruct",
            "messages": [{"role": "user", "content": " ".join(words)}],
        }
        started = asyncio.Event()
        open_now = 0

        async def one() -> list[str]:
            nonlocal open_now
            async with await client.chat_stream(request) as stream:
                open_now += 1
                if open_now == STREAMS:
                    started.set()
                # Every stream stays open until all of them are: a capped pool would deadlock
                # here, and the wait below turns that into a failure instead of a hang.
                await asyncio.wait_for(started.wait(), 20)
                texts: list[str] = []
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        texts.append(chunk.choices[0].delta.content.strip())
                    if len(texts) == 3:
                        break
                return texts

        firsts = await asyncio.gather(*(one() for _ in range(STREAMS)))
        assert all(texts == words[:3] for texts in firsts)
        assert server.max_open_connections_seen >= STREAMS
