"""The memory probe of ``test_rel_load.py``, run in a fresh interpreter of its own.

``python memory_probe.py BASE_URL`` (the key from ``MODELSLAB_API_KEY``) makes 10,000 streamed
calls, half through LangChain ``astream`` and half through LlamaIndex ``astream_chat``, 16 at a
time, and prints one JSON line: the wrong answers, and RSS and live objects after the 2,000th and
after the 10,000th call. In its own process the figures are what our code keeps, not the heap
history of the test session around it (a 350 MB pytest process fragments: its RSS drifted by
4-6 MB over the same calls that grow a fresh process by under 1 MB).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import os
import sys

from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM

STREAMS = 10_000
WARM_UP = 2_000
BATCH = 500
IN_FLIGHT = 16

_PAGE = os.sysconf("SC_PAGE_SIZE")
_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name) if _libc_name else None


def settled_memory() -> tuple[int, int]:
    """(RSS in bytes, live objects tracked by the garbage collector), after a full collection
    and giving freed heap back to the system, so that what remains is what is kept."""
    gc.collect()
    if _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * _PAGE
    return rss, len(gc.get_objects())


async def probe(base_url: str) -> dict[str, object]:
    chat = ChatModelsLab(base_url=base_url)
    llm = ModelsLabLLM(base_url=base_url)
    marks: dict[int, tuple[int, int]] = {}
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def lc(i: int) -> str:
        return "".join([str(c.content) async for c in chat.astream(f"stream {i}")])

    async def li(i: int) -> str:
        messages = [ChatMessage(role="user", content=f"stream {i}")]
        responses = [r async for r in await llm.astream_chat(messages)]
        return str(responses[-1].message.content)

    async def one(i: int) -> bool:
        async with gate:
            return await (lc if i % 2 else li)(i) == f"stream {i}"

    wrong = 0
    for start in range(0, STREAMS, BATCH):
        answers = await asyncio.gather(*(one(i) for i in range(start, start + BATCH)))
        wrong += answers.count(False)
        if start + BATCH in (WARM_UP, STREAMS):
            marks[start + BATCH] = settled_memory()
    return {"streams": STREAMS, "wrong": wrong, "warm_up": marks[WARM_UP], "end": marks[STREAMS]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1]))))
