"""Real use of ChatModelsLab and ModelsLabLLM over real sockets against the local server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from langchain_core.exceptions import ModelAuthenticationError, ModelRateLimitError
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel, Field

import modelslab_core
from langchain_modelslab import ChatModelsLab, ModelsLabLLM
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "real-use-key"


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> Iterator[LocalModelsLab]:
    modelslab_server.api_key = KEY
    yield modelslab_server


@pytest.fixture
def chat(server: LocalModelsLab) -> ChatModelsLab:
    return ChatModelsLab(api_key=KEY, base_url=server.base_url, max_retries=0)


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelslab_core.RetryPolicy, "delay", lambda self, *a, **k: 0.0)


@tool
def get_population(city: str) -> int:
    """Return the population of a city."""
    return {"Paris": 2_100_000}.get(city, 1000)


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")


def test_lcel_chain(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You repeat what you are told."), ("human", "Say: {text}")]
    )
    chain = prompt | chat | StrOutputParser()
    answer = chain.invoke({"text": "bonjour le monde"})
    assert "bonjour le monde" in answer
    body = server.requests[-1].body
    assert body is not None
    assert body["messages"][0] == {"role": "system", "content": "You repeat what you are told."}
    streamed = "".join(chain.stream({"text": "streamed words"}))
    assert "streamed words" in streamed
    first, second = chain.batch([{"text": "one apple"}, {"text": "two pears"}])
    assert "one apple" in first and "two pears" in second


def test_structured_output_in_a_chain(chat: ChatModelsLab) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Extract the person: {text}")])
    for method in ("function_calling", "json_schema"):
        chain = prompt | chat.with_structured_output(Person, method=method)  # type: ignore[arg-type]
        person = chain.invoke({"text": "Alice is 31 years old"})
        assert isinstance(person, Person)
        assert person.age == 31
    raw_chain = prompt | chat.with_structured_output(Person, include_raw=True)
    out = raw_chain.invoke({"text": "Bob is 40"})
    assert out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage)
    assert out["parsed"].age == 40


def test_hand_written_tool_loop(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    model = chat.bind_tools([get_population])
    messages: list = [HumanMessage("What is the population of Paris?")]
    for _ in range(4):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            result = get_population.invoke(call["args"])
            messages.append(ToolMessage(str(result), tool_call_id=call["id"]))
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "2100000" in final.text
    assert any(isinstance(m, ToolMessage) for m in messages)
    body = server.requests[-1].body
    assert body is not None
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool"]
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "get_population"


def test_create_agent(chat: ChatModelsLab) -> None:
    from langchain.agents import create_agent

    agent = create_agent(chat, tools=[get_population])
    state = agent.invoke({"messages": [HumanMessage("population of Paris")]})
    messages = state["messages"]
    assert any(isinstance(m, ToolMessage) and m.content == "2100000" for m in messages)
    assert isinstance(messages[-1], AIMessage)
    assert "2100000" in messages[-1].text


def test_stream_and_invoke_agree_on_tool_calls(chat: ChatModelsLab) -> None:
    model = chat.bind_tools([get_population], tool_choice="get_population")
    invoked = model.invoke("population of Paris")
    merged: AIMessageChunk | None = None
    for piece in model.stream("population of Paris"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        (c["name"], c["args"]) for c in invoked.tool_calls
    ]
    assert merged.usage_metadata == invoked.usage_metadata


def test_several_tool_calls_in_one_answer(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    server.enqueue(
        Reply.tool_calls(
            [("get_population", {"city": "Paris"}), ("get_population", {"city": "Rome"})]
        )
    )
    server.enqueue(
        Reply.tool_calls(
            [("get_population", {"city": "Paris"}), ("get_population", {"city": "Rome"})]
        )
    )
    model = chat.bind_tools([get_population])
    invoked = model.invoke("both")
    merged: AIMessageChunk | None = None
    for piece in model.stream("both"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    expected = [{"city": "Paris"}, {"city": "Rome"}]
    assert [c["args"] for c in invoked.tool_calls] == expected
    assert [c["args"] for c in merged.tool_calls] == expected


def test_reasoning_model(server: LocalModelsLab) -> None:
    model = ChatModelsLab(
        api_key=KEY, base_url=server.base_url, model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B"
    )
    invoked = model.invoke("why is the sky blue")
    merged: AIMessageChunk | None = None
    for piece in model.stream("why is the sky blue"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    reasoning = invoked.additional_kwargs["reasoning_content"]
    assert reasoning and reasoning == merged.additional_kwargs["reasoning_content"]
    assert reasoning not in invoked.text
    assert merged.text == invoked.text
    assert invoked.content_blocks[0] == {"type": "reasoning", "reasoning": reasoning}
    assert merged.content_blocks[0]["type"] == "reasoning"


def test_two_event_loops_in_a_row(chat: ChatModelsLab) -> None:
    async def ask(text: str) -> str:
        streamed = "".join([c.text async for c in chat.astream(text)])
        invoked = await chat.ainvoke(text)
        assert streamed == invoked.text
        return invoked.text

    assert "first loop" in asyncio.run(ask("first loop"))
    assert "second loop" in asyncio.run(ask("second loop"))


async def test_abatch_and_astream_events(chat: ChatModelsLab) -> None:
    answers = await chat.abatch(["alpha", "beta"])
    assert ["alpha" in answers[0].text, "beta" in answers[1].text] == [True, True]
    tokens = [
        e["data"]["chunk"].text
        async for e in chat.astream_events("gamma delta", version="v2")
        if e["event"] == "on_chat_model_stream"
    ]
    assert "gamma delta" in "".join(tokens)


def test_rate_limit_retried(
    chat: ChatModelsLab, server: LocalModelsLab, no_retry_delay: None
) -> None:
    server.enqueue(Reply.rate_limit(retry_after=0))
    model = chat.model_copy(update={"max_retries": 1})
    assert "after a retry" in model.invoke("after a retry").text
    assert len(server.requests) == 2


def test_errors_from_the_server(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    server.enqueue(Reply.rate_limit(retry_after=0))
    with pytest.raises(ModelRateLimitError) as info:
        chat.invoke("hi")
    assert isinstance(info.value, modelslab_core.RateLimitError)
    wrong = ChatModelsLab(api_key="wrong-key", base_url=server.base_url, max_retries=0)
    with pytest.raises(ModelAuthenticationError) as auth:
        list(wrong.stream("hi"))
    assert "wrong-key" not in str(auth.value)
    server.enqueue(Reply.cut_stream(after_chunks=2))
    with pytest.raises(modelslab_core.IncompleteStreamError):
        list(chat.stream("a long enough answer to cut"))


# --- ModelsLabLLM ---------------------------------------------------------------------------


@pytest.fixture
def llm(server: LocalModelsLab) -> ModelsLabLLM:
    return ModelsLabLLM(api_key=KEY, base_url=server.completions_base_url, max_retries=0)


def test_llm_invoke_stream_batch_stop(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    text = llm.invoke("the quick brown fox")
    assert "quick brown fox" in text
    assert "".join(llm.stream("the quick brown fox")) == text
    assert llm.batch(["one", "two"]) == [llm.invoke("one"), llm.invoke("two")]
    stopped = llm.invoke("the quick brown fox", stop=["brown"])
    assert "brown" not in stopped
    body = server.requests[-1].body
    assert body is not None and body["stop"] == ["brown"]
    result = llm.generate(["hello there"])
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["total_tokens"] > 0


def test_llm_async(llm: ModelsLabLLM) -> None:
    async def run() -> tuple[str, str, list[str]]:
        text = await llm.ainvoke("async words")
        streamed = "".join([c async for c in llm.astream("async words")])
        return text, streamed, await llm.abatch(["x1", "x2"])

    first = asyncio.run(run())
    second = asyncio.run(run())
    assert first == second
    assert first[0] == first[1] and "async words" in first[0]


def test_llm_uncensored_base(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.uncensored_base_url)
    assert "uncensored path" in llm.invoke("uncensored path")
    assert server.requests[-1].path.endswith("/uncensored-chat/v1/completions")
