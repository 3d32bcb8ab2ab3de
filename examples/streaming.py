"""Streaming to the terminal: tokens are printed as they arrive, sync and async, with LangChain
and LlamaIndex; the last LangChain chunk carries the token usage.

Run: ``python examples/streaming.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import asyncio

from _target import Target, modelslab_target
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM

MODEL = "meta-llama-3-8B-instruct"
QUESTION = "Write one sentence about the sea, please."


def langchain_sync(llm: ChatModelsLab) -> None:
    print("langchain stream:", end=" ")
    chunks = []
    for chunk in llm.stream(QUESTION):
        print(chunk.content, end="", flush=True)
        chunks.append(chunk)
    print()
    merged = sum(chunks[1:], chunks[0])  # chunks add up to the whole message
    print(f"langchain chunks: {len(chunks)}, usage: {merged.usage_metadata}")


async def langchain_async(llm: ChatModelsLab) -> None:
    print("langchain astream:", end=" ")
    async for chunk in llm.astream(QUESTION):
        print(chunk.content, end="", flush=True)
    print()


def llama_index_sync(llm: ModelsLabLLM) -> None:
    print("llama-index stream_chat:", end=" ")
    for response in llm.stream_chat([ChatMessage(role="user", content=QUESTION)]):
        print(response.delta or "", end="", flush=True)
    print()


def run(target: Target) -> None:
    chat = ChatModelsLab(model=MODEL, api_key=target.api_key, base_url=target.base_url)
    langchain_sync(chat)
    asyncio.run(langchain_async(chat))
    llama_index_sync(ModelsLabLLM(model=MODEL, api_key=target.api_key, base_url=target.base_url))


if __name__ == "__main__":
    with modelslab_target() as target:
        if target.server is not None:
            target.server.stream_delay = 0.02  # pace the local server's words, as a model would
        print(f"-- talking to {target.label}")
        run(target)
