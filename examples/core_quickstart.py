"""The adapter used directly: a chat answer, a streamed answer, a tool call, a structured answer.

Run: ``python examples/core_quickstart.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import json

from _target import Target, modelslab_target

from modelslab_core import ModelsLabClient

MODEL = "meta-llama-3-8B-instruct"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def run(target: Target) -> None:
    with ModelsLabClient(api_key=target.api_key, base_url=target.base_url) as client:
        answer = client.chat(
            {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in French."}]}
        )
        print("core chat:", answer.choices[0].message.content)

        print("core stream:", end=" ")
        with client.chat_stream(
            {"model": MODEL, "messages": [{"role": "user", "content": "Count: one two three"}]}
        ) as stream:
            for chunk in stream:
                for choice in chunk.choices:
                    print(choice.delta.content or "", end="", flush=True)
        print()

        called = client.chat(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "What is the weather in 'Paris'?"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": "auto",
            }
        )
        for call in called.choices[0].message.tool_calls or []:
            print("core tool call:", call.function.name, call.function.arguments)

        structured = client.chat(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "'Paris' has about 2100000 inhabitants."}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "City", "schema": CITY_SCHEMA},
                },
            }
        )
        print("core structured:", json.loads(structured.choices[0].message.content or "{}"))


if __name__ == "__main__":
    with modelslab_target() as target:
        print(f"-- talking to {target.label}")
        run(target)
