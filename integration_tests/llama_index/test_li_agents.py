"""Agents over real sockets: FunctionAgent, AgentWorkflow and ReActAgent run a tool loop.

The model's turns are scripted (``Reply``): each test checks what our adapter sent (the tools,
the assistant's tool call and the tool's result going back) and how it turned the scripted
answers into LlamaIndex objects. One test runs on the demo model on purpose: the offline story of
``make demo`` and ``examples/llama_index_agent.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.agent.workflow import (
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
    ToolCallResult,
)

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import AuthenticationError
from modelslab_core.testing import LocalModelsLab, Reply

calls: list[tuple[int, int]] = []


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    calls.append((a, b))
    return a * b


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def sent_messages(server: LocalModelsLab, index: int = -1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (server.requests[index].body or {})["messages"]
    return messages


def check_tool_turn(
    server: LocalModelsLab, call_id: str, arguments: dict[str, int], result: str
) -> None:
    """The last request carried the assistant's scripted call and the tool's result back."""
    *_, assistant, tool = sent_messages(server)
    assert assistant["role"] == "assistant"
    (call,) = assistant["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == (call_id, "function", "multiply")
    assert json.loads(call["function"]["arguments"]) == arguments
    assert tool == {"role": "tool", "content": result, "tool_call_id": call_id}


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_multiplies_with_the_tool(
    llm: ModelsLabLLM, server: LocalModelsLab, streaming: bool
) -> None:
    server.enqueue(
        Reply.tool_call("multiply", {"a": 17, "b": 23}, id="call_17x23"),
        Reply.text("17 times 23 is 391."),
    )
    agent = FunctionAgent(
        tools=[multiply],
        llm=llm,
        streaming=streaming,
        system_prompt="Use the multiply tool for arithmetic.",
    )
    handler = agent.run("What is 17 times 23?")
    results = [e async for e in handler.stream_events() if isinstance(e, ToolCallResult)]
    answer = await handler
    assert [(e.tool_name, e.tool_kwargs, e.tool_id) for e in results] == [
        ("multiply", {"a": 17, "b": 23}, "call_17x23")
    ]
    assert calls == [(17, 23)]
    assert [r.tool_output.raw_output for r in results] == [391]
    assert str(answer) == "17 times 23 is 391."
    # The first request offered the tool; the second carried the call and its result back.
    assert len(server.requests) == 2
    first = server.requests[0].body or {}
    (offered,) = first["tools"]
    assert offered["function"]["name"] == "multiply"
    assert offered["function"]["parameters"]["required"] == ["a", "b"]
    assert first["messages"] == [
        {"role": "system", "content": "Use the multiply tool for arithmetic."},
        {"role": "user", "content": "What is 17 times 23?"},
    ]
    check_tool_turn(server, "call_17x23", {"a": 17, "b": 23}, "391")
    assert sent_messages(server)[:2] == first["messages"]
    assert all((r.body or {})["stream"] is streaming for r in server.requests)
    assert server.pending_replies == 0


async def test_function_agent_streams_deltas(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    agent = FunctionAgent(tools=[multiply], llm=llm)
    server.enqueue(
        Reply.tool_call("multiply", {"a": 3, "b": 4}, id="call_3x4"),
        Reply.text("The product is 12."),
    )
    handler = agent.run("3 times 4?")
    deltas = [e.delta async for e in handler.stream_events() if isinstance(e, AgentStream)]
    answer = await handler
    assert len(deltas) > 1
    assert "".join(deltas) == "The product is 12."
    assert str(answer) == "The product is 12."
    assert calls == [(3, 4)]
    check_tool_turn(server, "call_3x4", {"a": 3, "b": 4}, "12")
    assert len(server.requests) == 2 and server.pending_replies == 0


async def test_agent_workflow_runs_to_the_final_answer(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    server.enqueue(
        Reply.tool_call("multiply", {"a": 6, "b": 9}, id="call_6x9"), Reply.text("6 by 9 is 54.")
    )
    agent = FunctionAgent(
        name="calculator", description="Does arithmetic.", tools=[multiply], llm=llm
    )
    workflow = AgentWorkflow(agents=[agent], root_agent="calculator")
    answer = await workflow.run(user_msg="multiply 6 by 9")
    assert calls == [(6, 9)]
    assert str(answer) == "6 by 9 is 54."
    offered = [t["function"]["name"] for t in (server.requests[0].body or {})["tools"]]
    assert "multiply" in offered
    check_tool_turn(server, "call_6x9", {"a": 6, "b": 9}, "54")
    assert {"role": "user", "content": "multiply 6 by 9"} in sent_messages(server)
    assert len(server.requests) == 2 and server.pending_replies == 0


async def test_agent_from_two_event_loops_in_a_row(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    # pytest-asyncio gives this test its own loop; the earlier tests used others.
    server.enqueue(Reply.tool_call("multiply", {"a": 2, "b": 21}, id="call_2x21"), Reply.text("42"))
    agent = FunctionAgent(tools=[multiply], llm=llm)
    assert str(await agent.run("What is 2 times 21?")) == "42"
    assert calls == [(2, 21)]
    check_tool_turn(server, "call_2x21", {"a": 2, "b": 21}, "42")
    assert server.pending_replies == 0


async def test_react_agent_runs_a_tool_loop(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(
        Reply.text(
            "Thought: I need to use a tool to help me answer the question.\n"
            "Action: multiply\n"
            'Action Input: {"a": 12, "b": 12}'
        ),
        Reply.text("Thought: I can answer without using any more tools.\nAnswer: 144"),
    )
    agent = ReActAgent(tools=[multiply], llm=llm)
    answer = await agent.run("What is 12 squared?")
    assert calls == [(12, 12)]
    assert str(answer).strip() == "144"
    # ReAct is a text protocol: the tools are described in the prompt, not sent as tools.
    first = server.requests[0].body or {}
    assert "tools" not in first
    assert "multiply" in first["messages"][0]["content"]
    observation = str(sent_messages(server))
    assert "Observation: 144" in observation
    assert len(server.requests) == 2 and server.pending_replies == 0


async def test_agent_surfaces_the_adapters_errors(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.openai_error(401, "Incorrect API key provided"))
    agent = FunctionAgent(tools=[multiply], llm=llm)
    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await agent.run("What is 2 times 2?")
    assert calls == []
    assert len(server.requests) == 1 and server.pending_replies == 0


async def test_function_agent_with_the_demo_model(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    """On purpose unscripted: the demo model picks the tool and its arguments from the user's
    words, as in ``make demo`` and ``examples/llama_index_agent.py``."""
    agent = FunctionAgent(tools=[multiply], llm=llm)
    answer = await agent.run("What is 17 times 23?")
    assert calls == [(17, 23)]
    assert str(answer).strip() == "391"
    assert sent_messages(server)[-1]["role"] == "tool"
