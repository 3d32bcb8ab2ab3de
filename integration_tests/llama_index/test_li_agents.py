"""Agents over real sockets: FunctionAgent, AgentWorkflow and ReActAgent run a tool loop."""

from __future__ import annotations

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


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_multiplies_with_the_tool(
    llm: ModelsLabLLM, server: LocalModelsLab, streaming: bool
) -> None:
    agent = FunctionAgent(
        tools=[multiply],
        llm=llm,
        streaming=streaming,
        system_prompt="Use the multiply tool for arithmetic.",
    )
    handler = agent.run("What is 17 times 23?")
    results = [
        event async for event in handler.stream_events() if isinstance(event, ToolCallResult)
    ]
    answer = await handler
    assert calls == [(17, 23)]
    assert [r.tool_output.raw_output for r in results] == [391]
    assert str(answer).strip() == "391"
    # The second request carried the assistant's tool call and the tool's result back.
    sent = (server.requests[-1].body or {})["messages"]
    call_id = sent[-2]["tool_calls"][0]["id"]
    assert sent[-1] == {"role": "tool", "content": "391", "tool_call_id": call_id}
    assert sent[0] == {"role": "system", "content": "Use the multiply tool for arithmetic."}
    assert all((r.body or {})["stream"] is streaming for r in server.requests)


async def test_function_agent_streams_deltas(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    agent = FunctionAgent(tools=[multiply], llm=llm)
    server.enqueue(Reply.tool_call("multiply", {"a": 3, "b": 4}), Reply.text("The product is 12."))
    handler = agent.run("3 times 4?")
    deltas = [e.delta async for e in handler.stream_events() if isinstance(e, AgentStream)]
    answer = await handler
    assert "".join(deltas) == "The product is 12."
    assert str(answer) == "The product is 12."
    assert calls == [(3, 4)]


async def test_agent_workflow_runs_to_the_final_answer(llm: ModelsLabLLM) -> None:
    agent = FunctionAgent(
        name="calculator", description="Does arithmetic.", tools=[multiply], llm=llm
    )
    workflow = AgentWorkflow(agents=[agent], root_agent="calculator")
    answer = await workflow.run(user_msg="multiply 6 by 9")
    assert calls == [(6, 9)]
    assert str(answer).strip() == "54"


async def test_agent_from_two_event_loops_in_a_row(llm: ModelsLabLLM) -> None:
    # pytest-asyncio gives this test its own loop; the earlier tests used others.
    agent = FunctionAgent(tools=[multiply], llm=llm)
    assert str(await agent.run("What is 2 times 21?")).strip() == "42"


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
    observation = str((server.requests[-1].body or {})["messages"])
    assert "Observation: 144" in observation


async def test_agent_surfaces_the_adapters_errors(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.openai_error(401, "Incorrect API key provided"))
    agent = FunctionAgent(tools=[multiply], llm=llm)
    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await agent.run("What is 2 times 2?")
    assert calls == []
