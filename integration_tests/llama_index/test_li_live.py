"""The live ModelsLab API: run only when ``MODELSLAB_API_KEY`` is set (skipped cleanly otherwise).

``MODELSLAB_LIVE_MODEL`` picks the model (default: a small Llama). Assertions check shape, not
wording: a live model's answers vary.
"""

from __future__ import annotations

import os

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from llama_index_modelslab import ModelsLabLLM

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("MODELSLAB_API_KEY"), reason="MODELSLAB_API_KEY is not set"
    ),
]

MODEL = os.environ.get("MODELSLAB_LIVE_MODEL", "meta-llama-3-8B-instruct")


@pytest.fixture
def live_llm() -> ModelsLabLLM:
    return ModelsLabLLM(MODEL, temperature=0, max_tokens=200)


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


class City(BaseModel):
    name: str
    country: str


def test_live_chat_and_stream(live_llm: ModelsLabLLM) -> None:
    messages = [ChatMessage(role="user", content="Reply with the single word: pong")]
    whole = live_llm.chat(messages)
    assert whole.message.content
    assert whole.additional_kwargs.get("total_tokens", 0) > 0
    streamed = list(live_llm.stream_chat(messages))
    assert streamed[-1].message.content == "".join(r.delta or "" for r in streamed)


async def test_live_async_complete(live_llm: ModelsLabLLM) -> None:
    response = await live_llm.acomplete("Say hello in French, one word.")
    assert response.text


async def test_live_function_agent(live_llm: ModelsLabLLM) -> None:
    agent = FunctionAgent(tools=[multiply], llm=live_llm)
    answer = await agent.run("Use the multiply tool: what is 17 times 23?")
    assert "391" in str(answer)


def test_live_structured_output(live_llm: ModelsLabLLM) -> None:
    prompt = PromptTemplate("Name the capital of {country} as a city record.")
    city = live_llm.structured_predict(City, prompt, country="France")
    assert city.name.lower() == "paris"
