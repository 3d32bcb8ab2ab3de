"""LlamaIndex's ModelsLabLLM: a chat, a stream and an agent run (FunctionAgent with a tool).

Run: ``python examples/llama_index_quickstart.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import asyncio

from _target import Target, modelslab_target
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage

from llama_index_modelslab import ModelsLabLLM

MODEL = "meta-llama-3-8B-instruct"


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def run(target: Target) -> None:
    llm = ModelsLabLLM(model=MODEL, api_key=target.api_key, base_url=target.base_url)

    response = llm.chat([ChatMessage(role="user", content="Say hello in French.")])
    print("llama-index chat:", response.message.content)

    print("llama-index stream:", end=" ")
    for part in llm.stream_chat([ChatMessage(role="user", content="Count: one two three")]):
        print(part.delta or "", end="", flush=True)
    print()

    agent = FunctionAgent(
        tools=[multiply], llm=llm, system_prompt="Use the multiply tool for arithmetic."
    )

    async def ask(question: str) -> str:
        return str(await agent.run(question))  # agents run inside an event loop

    print("llama-index agent:", asyncio.run(ask("What is 17 times 23?")).strip())


if __name__ == "__main__":
    with modelslab_target() as target:
        print(f"-- talking to {target.label}")
        run(target)
