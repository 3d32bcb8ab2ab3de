"""A LlamaIndex FunctionAgent with two tools, its events streamed as it works.

Run: ``python examples/llama_index_agent.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import asyncio

from _target import modelslab_target
from llama_index.core.agent.workflow import FunctionAgent, ToolCall, ToolCallResult

from llama_index_modelslab import ModelsLabLLM


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


async def main() -> None:
    with modelslab_target() as target:
        print(f"-- talking to {target.label}")
        llm = ModelsLabLLM(
            model="meta-llama-3-8B-instruct", api_key=target.api_key, base_url=target.base_url
        )
        agent = FunctionAgent(
            tools=[multiply, add],
            llm=llm,
            system_prompt="You are a calculator. Use the tools for arithmetic.",
        )
        handler = agent.run("Please multiply 17 and 23.")
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                print("tool result:", event.tool_name, event.tool_kwargs, "->", event.tool_output)
            elif isinstance(event, ToolCall):
                print("tool call:", event.tool_name, event.tool_kwargs)
        answer = await handler
        print("answer:", str(answer).strip())


if __name__ == "__main__":
    asyncio.run(main())
