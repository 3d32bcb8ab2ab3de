"""LlamaIndex's ModelsLabLLM: a chat, a stream, a tool call, a structured answer and an agent run
(FunctionAgent with a tool).

Run: ``python examples/llama_index_quickstart.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import asyncio

from _target import Target, modelslab_target
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from llama_index_modelslab import ModelsLabLLM

MODEL = "meta-llama-3-8B-instruct"


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"It is sunny in {city}."


class City(BaseModel):
    """A city and its population."""

    name: str = Field(description="The city's name")
    population: int = Field(description="Number of inhabitants")


def run(target: Target) -> None:
    llm = ModelsLabLLM(model=MODEL, api_key=target.api_key, base_url=target.base_url)

    response = llm.chat([ChatMessage(role="user", content="Say hello in French.")])
    print("llama-index chat:", response.message.content)

    print("llama-index stream:", end=" ")
    for part in llm.stream_chat([ChatMessage(role="user", content="Count: one two three")]):
        print(part.delta or "", end="", flush=True)
    print()

    weather = FunctionTool.from_defaults(fn=get_weather)
    called = llm.chat_with_tools([weather], user_msg="What is the weather in 'Paris'?")
    for selection in llm.get_tool_calls_from_response(called, error_on_no_tool_call=False):
        print("llama-index tool call:", selection.tool_name, selection.tool_kwargs)

    prompt = PromptTemplate("{text}")
    city = llm.structured_predict(City, prompt, text="'Paris' has about 2100000 inhabitants.")
    print("llama-index structured:", repr(city))

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
