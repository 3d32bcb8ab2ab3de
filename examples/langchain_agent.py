"""A LangChain tool-calling agent: ``create_agent`` (from the ``langchain`` package) drives
ChatModelsLab through a tool loop until it can answer.

Run: ``python examples/langchain_agent.py`` (offline against a local server without a key).
The ``[langchain]`` extra installs ``langchain`` along with ``langchain-core``.
"""

from __future__ import annotations

from _target import modelslab_target
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from langchain_modelslab import ChatModelsLab

STOCK = {"apples": 42, "pears": 7}


@tool
def count_stock(fruit: str) -> int:
    """How many of a fruit are in stock."""
    return STOCK.get(fruit.lower(), 0)


with modelslab_target() as target:
    print(f"-- talking to {target.label}")
    llm = ChatModelsLab(
        model="meta-llama-3-8B-instruct",
        api_key=target.api_key,
        base_url=target.base_url,
        temperature=0,
    )
    agent = create_agent(
        llm, tools=[count_stock], system_prompt="Answer questions about the shop's stock."
    )

    result = agent.invoke(
        {"messages": [{"role": "user", "content": "How many 'apples' are in stock?"}]}
    )
    for message in result["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print("tool call:", call["name"], call["args"])
        elif isinstance(message, ToolMessage):
            print("tool result:", message.content)
    print("answer:", result["messages"][-1].content)
