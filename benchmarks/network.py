"""What decided the async transport, and many concurrent streams.

- ``transports``: async calls per second and CPU per call through ``httpx.AsyncClient`` on
  httpx's own pool against the same client on the ``httpx-aiohttp`` transport, at 1, 16, 64
  and 1,000 requests in flight (both without a connection cap, as our shared pools are).
- ``many_streams``: 1,000 streams at once, each paced by the server at 20 chunks a second for
  10 seconds, through our async client and ``ChatModelsLab.astream``, with ``ChatOpenAI`` as
  the anchor: the ideal is 10 s; the target is 12 s.

The local server runs in its own process (``--stream-delay`` paces the streams).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ._server import API_KEY, ServerProcess

MODEL = "meta-llama-3-8B-instruct"
IN_FLIGHT = (1, 16, 64, 1000)


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _client(kind: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100_000, max_keepalive_connections=1024)
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    if kind == "httpx-aiohttp":
        from httpx_aiohttp import HttpxAiohttpClient

        return HttpxAiohttpClient(limits=limits, headers=headers, timeout=60)
    return httpx.AsyncClient(limits=limits, headers=headers, timeout=60)


async def _calls(kind: str, url: str, in_flight: int, calls: int) -> tuple[float, float]:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    async with _client(kind) as client:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                response = await client.post(url, content=body)
                response.raise_for_status()
                response.json()

        await asyncio.gather(*(one() for _ in range(min(in_flight, 64))))  # open the connections
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(calls)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return calls / wall, cpu / calls * 1e6


def transports(base_url: str, scale: float = 1.0) -> dict[str, Any]:
    """``{kind: [{"in_flight", "calls_per_s", "cpu_us_per_call"}, ...]}``, best of two runs."""
    _raise_file_limit()
    url = f"{base_url}/chat/completions"
    out: dict[str, Any] = {}
    for in_flight in IN_FLIGHT:
        calls = max(int((300 if in_flight == 1 else 2000) * scale), in_flight)
        for kind in ("httpx", "httpx-aiohttp"):
            print(f"transport {kind} at {in_flight} in flight ...", file=sys.stderr, flush=True)
            runs = [asyncio.run(_calls(kind, url, in_flight, calls)) for _ in range(2)]
            best = max(runs)
            out.setdefault(kind, []).append(
                {"in_flight": in_flight, "calls_per_s": best[0], "cpu_us_per_call": best[1]}
            )
    return out


async def _raw_stream(client: httpx.AsyncClient, base_url: str, prompt: str) -> int:
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    )
    count = 0
    async with client.stream("POST", f"{base_url}/chat/completions", content=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                json.loads(line[6:])
                count += 1
    return count - 2  # the role chunk and the finish chunk carry no text


def _stream_subjects(base_url: str) -> dict[str, Callable[[str], Awaitable[int]]]:
    from langchain_openai import ChatOpenAI

    from langchain_modelslab import ChatModelsLab
    from modelslab_core import AsyncModelsLabClient

    core = AsyncModelsLabClient(api_key=API_KEY, base_url=base_url, timeout=60, max_retries=0)
    chat = ChatModelsLab(model=MODEL, api_key=API_KEY, base_url=base_url, timeout=60, max_retries=0)
    anchor = ChatOpenAI(
        model=MODEL,
        api_key=API_KEY,
        base_url=base_url,
        timeout=60,
        max_retries=0,  # type: ignore[arg-type]
    )

    raw: dict[str, httpx.AsyncClient] = {}

    async def via_raw(prompt: str) -> int:
        # One client for the run, created in its event loop and closed by the last stream.
        if "client" not in raw:
            raw["client"] = _client("httpx-aiohttp")
        client = raw["client"]
        raw["users"] = raw.get("users", 0) + 1
        try:
            return await _raw_stream(client, base_url, prompt)
        finally:
            raw["users"] -= 1
            if raw["users"] == 0:
                await raw.pop("client").aclose()

    async def via_core(prompt: str) -> int:
        request = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        count = 0
        async with await core.chat_stream(request) as stream:
            async for chunk in stream:
                count += bool(chunk.choices and chunk.choices[0].delta.content)
        return count

    async def via_lc(prompt: str) -> int:
        return sum([bool(c.content) async for c in chat.astream(prompt)])

    async def via_openai(prompt: str) -> int:
        return sum([bool(c.content) async for c in anchor.astream(prompt)])

    return {
        "raw httpx-aiohttp": via_raw,
        "AsyncModelsLabClient": via_core,
        "ChatModelsLab": via_lc,
        "ChatOpenAI": via_openai,
    }


def many_streams(streams: int = 1000, seconds: float = 10.0, per_s: int = 20) -> dict[str, Any]:
    """Seconds until every one of ``streams`` concurrent streams has ended, per subject."""
    _raise_file_limit()
    words = int(seconds * per_s)
    prompt = " ".join(f"w{i}" for i in range(words))
    out: dict[str, Any] = {"streams": streams, "ideal_s": seconds, "chunks": words, "subjects": {}}
    with ServerProcess(args=("--stream-delay", str(1 / per_s))) as server:
        for name, stream in _stream_subjects(server.base_url).items():
            print(f"{streams} streams through {name} ...", file=sys.stderr, flush=True)

            async def run(stream: Callable[[str], Awaitable[int]] = stream) -> tuple[float, int]:
                started = time.perf_counter()
                counts = await asyncio.gather(
                    *(stream(prompt) for _ in range(streams)), return_exceptions=True
                )
                elapsed = time.perf_counter() - started
                complete = sum(1 for c in counts if isinstance(c, int) and c >= words)
                return elapsed, complete

            elapsed, complete = asyncio.run(run())
            out["subjects"][name] = {"seconds": elapsed, "complete": complete}
    return out


def markdown(results: dict[str, Any]) -> str:
    """The transport and many-streams tables, as printed and as written into the docs."""
    lines: list[str] = []
    transport = results.get("transports")
    if transport:
        kinds = list(transport)
        lines += [
            "Async transport under `httpx.AsyncClient` (raw calls, no framework): calls/s "
            "(CPU µs per call):",
            "",
            "| in flight | " + " | ".join(kinds) + " | aiohttp / httpx |",
            "| ---: |" + " ---: |" * (len(kinds) + 1),
        ]
        for i, in_flight in enumerate(IN_FLIGHT):
            cells = [transport[k][i] for k in kinds]
            ratio = cells[-1]["calls_per_s"] / cells[0]["calls_per_s"]
            lines.append(
                f"| {in_flight:,} | "
                + " | ".join(
                    f"{c['calls_per_s']:,.0f} ({c['cpu_us_per_call']:,.0f})" for c in cells
                )
                + f" | {ratio:.1f}x |"
            )
    streams = results.get("many_streams")
    if streams:
        if lines:
            lines.append("")
        lines += [
            f"{streams['streams']:,} concurrent streams of {streams['chunks']} chunks at "
            f"{streams['chunks'] / streams['ideal_s']:.0f} chunks/s (ideal "
            f"{streams['ideal_s']:.0f} s, target <= 12 s):",
            "",
            "| client | seconds | complete |",
            "| --- | ---: | ---: |",
        ]
        for name, row in streams["subjects"].items():
            lines.append(f"| {name} | {row['seconds']:.1f} | {row['complete']:,} |")
    return "\n".join(lines)


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The many-streams target: every stream complete within 12 s, for ours."""
    out = []
    streams = results.get("many_streams")
    if streams:
        for name in ("AsyncModelsLabClient", "ChatModelsLab"):
            row = streams["subjects"][name]
            out.append(
                {
                    "what": f"{streams['streams']:,} concurrent streams, {name}: seconds / ideal",
                    "ratio": row["seconds"] / streams["ideal_s"],
                    "target": "<= 1.2, all complete",
                    "met": row["seconds"] <= 1.2 * streams["ideal_s"]
                    and row["complete"] == streams["streams"],
                }
            )
    return out
