"""LangChain's ChatModelsLab: invoke, stream, a tool call and structured output.

Run: ``python examples/langchain_quickstart.py`` (offline against a local server without a key).
"""

from __future__ import annotations

from _target import Target, modelslab_target
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_modelslab import ChatModelsLab

MODEL = "meta-llama-3-8B-instruct"


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"It is sunny in {city}."


class City(BaseModel):
    """A city and its population."""

    name: str = Field(description="The city's name")
    population: int = Field(description="Number of inhabitants")


def run(target: Target) -> None:
    llm = ChatModelsLab(
        model=MODEL, api_key=target.api_key, base_url=target.base_url, temperature=0
    )

    answer = llm.invoke("Say hello in French.")
    print("langchain invoke:", answer.content)
    print("langchain usage:", answer.usage_metadata)

    print("langchain stream:", end=" ")
    for chunk in llm.stream("Count: one two three"):
        print(chunk.content, end="", flush=True)
    print()

    called = llm.bind_tools([get_weather]).invoke("What is the weather in 'Paris'?")
    for call in called.tool_calls:
        print("langchain tool call:", call["name"], call["args"])

    city = llm.with_structured_output(City).invoke("'Paris' has about 2100000 inhabitants.")
    print("langchain structured:", repr(city))


if __name__ == "__main__":
    with modelslab_target() as target:
        print(f"-- talking to {target.label}")
        run(target)
