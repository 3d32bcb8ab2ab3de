"""Real use of ChatModelsLab and ModelsLabLLM over real sockets against the local server.

The model's answers are scripted (``Reply``) wherever a test looks at them: the tests check the
requests we sent and the LangChain objects we built. Concurrent batches keep the demo model's echo
(it tells which answer belongs to which input); one agent test runs on the demo model on purpose,
as ``make demo`` and ``examples/langchain_agent.py`` do.
"""

from __future__ import annotations

import asyncio
import json
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


#: The tool message that carries get_population's result for the scripted call back.
PARIS_RESULT = {"role": "tool", "content": "2100000", "tool_call_id": "call_paris"}


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")


def test_an_lcel_chain_invokes_streams_and_batches_through_the_model(
    chat: ChatModelsLab, server: LocalModelsLab
) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You repeat what you are told."), ("human", "Say: {text}")]
    )
    chain = prompt | chat | StrOutputParser()
    server.enqueue(Reply.text("Bonjour le monde !"), Reply.text("Streamed words, one by one."))
    answer = chain.invoke({"text": "bonjour le monde"})
    assert answer == "Bonjour le monde !"
    body = server.requests[-1].body
    assert body is not None
    assert body["messages"] == [
        {"role": "system", "content": "You repeat what you are told."},
        {"role": "user", "content": "Say: bonjour le monde"},
    ]
    chunks = list(chain.stream({"text": "streamed words"}))
    assert len(chunks) > 1
    assert "".join(chunks) == "Streamed words, one by one."
    assert (server.requests[-1].body or {})["stream"] is True
    assert server.pending_replies == 0
    # batch runs its inputs concurrently: the echo shows each answer came back to its input.
    first, second = chain.batch([{"text": "one apple"}, {"text": "two pears"}])
    assert "one apple" in first and "two pears" in second


def test_structured_output_in_a_chain(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Extract the person: {text}")])
    alice = {"name": "Alice", "age": 31}
    answers = {
        "function_calling": Reply.tool_call("Person", alice),
        "json_schema": Reply.text(json.dumps(alice)),
        "json_mode": Reply.text(json.dumps(alice)),
    }
    for method, answer in answers.items():
        server.enqueue(answer)
        chain = prompt | chat.with_structured_output(Person, method=method)  # type: ignore[arg-type]
        person = chain.invoke({"text": "Alice is 31 years old"})
        assert person == Person(name="Alice", age=31), method
    bodies = [r.body or {} for r in server.requests]
    assert [b["messages"] for b in bodies] == [
        [{"role": "user", "content": "Extract the person: Alice is 31 years old"}]
    ] * 3
    calling, schema, json_mode = bodies
    assert [t["function"]["name"] for t in calling["tools"]] == ["Person"]
    assert calling["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
    assert "response_format" not in calling
    assert schema["response_format"]["type"] == "json_schema"
    assert schema["response_format"]["json_schema"]["name"] == "Person"
    assert schema["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]
    assert "tools" not in schema
    assert json_mode["response_format"] == {"type": "json_object"}

    server.enqueue(Reply.tool_call("Person", {"name": "Bob", "age": 40}, id="call_bob"))
    raw_chain = prompt | chat.with_structured_output(Person, include_raw=True)
    out = raw_chain.invoke({"text": "Bob is 40"})
    assert out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage)
    calls = [(c["name"], c["args"], c["id"]) for c in out["raw"].tool_calls]
    assert calls == [("Person", {"name": "Bob", "age": 40}, "call_bob")]
    assert out["parsed"] == Person(name="Bob", age=40)
    assert len(server.requests) == 4 and server.pending_replies == 0


def test_hand_written_tool_loop(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    server.enqueue(
        Reply.tool_call("get_population", {"city": "Paris"}, id="call_paris"),
        Reply.text("Paris has 2100000 inhabitants."),
    )
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
    assert final.text == "Paris has 2100000 inhabitants."
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    calls = [(c["name"], c["args"], c["id"]) for c in messages[1].tool_calls]
    assert calls == [("get_population", {"city": "Paris"}, "call_paris")]
    offered = (server.requests[0].body or {})["tools"]
    assert [t["function"]["name"] for t in offered] == ["get_population"]
    body = server.requests[-1].body
    assert body is not None
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool"]
    (call,) = body["messages"][1]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("call_paris", "get_population")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert body["messages"][2] == PARIS_RESULT
    assert len(server.requests) == 2 and server.pending_replies == 0


def test_create_agent_calls_the_tool_and_answers_with_its_result(
    chat: ChatModelsLab, server: LocalModelsLab
) -> None:
    from langchain.agents import create_agent

    server.enqueue(
        Reply.tool_call("get_population", {"city": "Paris"}, id="call_paris"),
        Reply.text("About 2100000 people live in Paris."),
    )
    agent = create_agent(chat, tools=[get_population])
    state = agent.invoke({"messages": [HumanMessage("population of Paris")]})
    messages = state["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert [(c["name"], c["args"], c["id"]) for c in messages[1].tool_calls] == [
        ("get_population", {"city": "Paris"}, "call_paris")
    ]
    assert (messages[2].content, messages[2].tool_call_id) == ("2100000", "call_paris")
    assert messages[-1].text == "About 2100000 people live in Paris."
    offered = (server.requests[0].body or {})["tools"]
    assert [t["function"]["name"] for t in offered] == ["get_population"]
    sent = (server.requests[-1].body or {})["messages"]
    assert sent[-1] == PARIS_RESULT
    assert len(server.requests) == 2 and server.pending_replies == 0


def test_create_agent_with_the_demo_model(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    """On purpose unscripted: the demo model picks the tool and the city from the user's words,
    as in ``make demo`` and ``examples/langchain_agent.py``."""
    from langchain.agents import create_agent

    agent = create_agent(chat, tools=[get_population])
    state = agent.invoke({"messages": [HumanMessage("population of Paris")]})
    messages = state["messages"]
    assert any(isinstance(m, ToolMessage) and m.content == "2100000" for m in messages)
    assert isinstance(messages[-1], AIMessage)
    assert "2100000" in messages[-1].text
    assert (server.requests[-1].body or {})["messages"][-1]["role"] == "tool"


class CityPopulation(BaseModel):
    """A city and how many people live there."""

    name: str
    population: int


def test_create_agent_with_a_response_format_on_the_demo_model(
    chat: ChatModelsLab, server: LocalModelsLab
) -> None:
    """Unscripted, as a user's offline test would run it: after the tool's result the agent
    forces a tool call (its structured-output tool), and the demo model makes it, so the agent
    ends with a structured response built from the tool's result."""
    from langchain.agents import create_agent

    agent = create_agent(chat, tools=[get_population], response_format=CityPopulation)
    state = agent.invoke({"messages": [HumanMessage("population of Paris")]})
    assert state["structured_response"] == CityPopulation(name="Paris", population=2_100_000)
    forced = [(r.body or {}).get("tool_choice") for r in server.requests]
    assert forced == ["required", "required"]  # the second request came after the tool result
    assert (server.requests[-1].body or {})["messages"][-1]["role"] == "tool"


def test_stream_and_invoke_agree_on_tool_calls(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    answer = Reply.tool_call("get_population", {"city": "Paris"}, id="call_paris")
    server.enqueue(answer, answer)
    model = chat.bind_tools([get_population], tool_choice="get_population")
    invoked = model.invoke("population of Paris")
    merged: AIMessageChunk | None = None
    for piece in model.stream("population of Paris"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    expected = [("get_population", {"city": "Paris"}, "call_paris")]
    assert [(c["name"], c["args"], c["id"]) for c in invoked.tool_calls] == expected
    assert [(c["name"], c["args"], c["id"]) for c in merged.tool_calls] == expected
    assert merged.usage_metadata is not None
    assert merged.usage_metadata == invoked.usage_metadata
    forced = {"type": "function", "function": {"name": "get_population"}}
    assert [(r.body or {})["tool_choice"] for r in server.requests] == [forced, forced]
    assert [(r.body or {})["stream"] for r in server.requests] == [False, True]
    assert server.pending_replies == 0


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
    assert server.pending_replies == 0


def test_a_reasoning_models_thought_is_a_reasoning_block_invoked_or_streamed(
    server: LocalModelsLab,
) -> None:
    model = ChatModelsLab(
        api_key=KEY, base_url=server.base_url, model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B"
    )
    thought = "Short wavelengths scatter more in the air, so blue light is everywhere."
    answer = Reply.text("Because of Rayleigh scattering.", reasoning=thought)
    server.enqueue(answer, answer)
    invoked = model.invoke("why is the sky blue")
    merged: AIMessageChunk | None = None
    for piece in model.stream("why is the sky blue"):
        merged = piece if merged is None else merged + piece
    assert merged is not None
    reasoning = invoked.additional_kwargs["reasoning_content"]
    assert reasoning == thought
    assert merged.additional_kwargs["reasoning_content"] == thought
    assert invoked.text == "Because of Rayleigh scattering."
    assert merged.text == invoked.text
    assert invoked.content_blocks[0] == {"type": "reasoning", "reasoning": thought}
    assert merged.content_blocks[0] == {"type": "reasoning", "reasoning": thought}
    assert [(r.body or {})["stream"] for r in server.requests] == [False, True]
    assert server.pending_replies == 0


def test_two_event_loops_in_a_row(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    async def ask(text: str) -> str:
        answer = Reply.text(f"answered in the {text}")
        server.enqueue(answer, answer)
        streamed = "".join([c.text async for c in chat.astream(text)])
        invoked = await chat.ainvoke(text)
        assert streamed == invoked.text
        return invoked.text

    assert asyncio.run(ask("first loop")) == "answered in the first loop"
    assert asyncio.run(ask("second loop")) == "answered in the second loop"
    assert len(server.requests) == 4 and server.pending_replies == 0


async def test_abatch_and_astream_events(chat: ChatModelsLab, server: LocalModelsLab) -> None:
    # abatch runs its inputs concurrently: the echo shows each answer came back to its input.
    answers = await chat.abatch(["alpha", "beta"])
    assert ["alpha" in answers[0].text, "beta" in answers[1].text] == [True, True]
    server.enqueue(Reply.text("Gamma and delta, streamed."))
    tokens = [
        e["data"]["chunk"].text
        async for e in chat.astream_events("gamma delta", version="v2")
        if e["event"] == "on_chat_model_stream"
    ]
    assert len(tokens) > 1
    assert "".join(tokens) == "Gamma and delta, streamed."
    assert server.pending_replies == 0


def test_a_rate_limit_is_retried_with_the_same_request(
    chat: ChatModelsLab, server: LocalModelsLab, no_retry_delay: None
) -> None:
    server.enqueue(Reply.rate_limit(retry_after=0), Reply.text("answered after a retry"))
    model = chat.model_copy(update={"max_retries": 1})
    assert model.invoke("hello").text == "answered after a retry"
    assert len(server.requests) == 2 and server.pending_replies == 0
    assert server.requests[0].body == server.requests[1].body


def test_server_errors_are_langchain_and_adapter_errors_without_the_key(
    chat: ChatModelsLab, server: LocalModelsLab
) -> None:
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


def test_text_model_async_calls_agree_across_event_loops(llm: ModelsLabLLM) -> None:
    async def run() -> tuple[str, str, list[str]]:
        text = await llm.ainvoke("async words")
        streamed = "".join([c async for c in llm.astream("async words")])
        return text, streamed, await llm.abatch(["x1", "x2"])

    first = asyncio.run(run())
    second = asyncio.run(run())
    assert first == second
    assert first[0] == first[1] and "async words" in first[0]


def test_the_text_model_completes_on_the_uncensored_endpoint(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.uncensored_base_url)
    server.enqueue(Reply.text(" went down the uncensored path."))
    assert llm.invoke("The request") == " went down the uncensored path."
    (request,) = server.requests
    assert request.path.endswith("/uncensored-chat/v1/completions")
    assert (request.body or {})["prompt"] == "The request"
    assert server.pending_replies == 0
