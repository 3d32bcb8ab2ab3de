"""Every script in examples/ runs offline against the local server it starts, and prints what the
local model answers: the echo of the user's words, the tool calls those words ask for, the
structured objects they describe, the agents' products.

With ``MODELSLAB_API_KEY`` set, the ``live`` tests also run every example against the live API and
check that each labelled line is there (a live model's wording varies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: These tests wait for scripts that run in the background, many at once (each may take up to
#: conftest.TIMEOUT): longer than the suite's default timeout.
pytestmark = pytest.mark.timeout(300)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Runs = Any  # conftest.Runs: the session's background runs (conftest is not importable here)

LOCAL = "-- talking to the local server at http://127.0.0.1:"

CORE = [
    "core chat: Say hello in French.",
    "core stream: Count: one two three",
    'core tool call: get_weather {"city": "Paris"}',
    "core structured: {'city': 'Paris', 'population': 2100000}",
]
LANGCHAIN = [
    "langchain invoke: Say hello in French.",
    "langchain usage: {'input_tokens': 4, 'output_tokens': 4, 'total_tokens': 8}",
    "langchain stream: Count: one two three",
    "langchain tool call: get_weather {'city': 'Paris'}",
    "langchain structured: City(name='Paris', population=2100000)",
]
LLAMA_INDEX = [
    "llama-index chat: Say hello in French.",
    "llama-index stream: Count: one two three",
    "llama-index tool call: get_weather {'city': 'Paris'}",
    "llama-index structured: City(name='Paris', population=2100000)",
    "llama-index agent: 391",
]

#: For each example, lines its output must hold, in this order (each a whole line).
EXPECTED: dict[str, list[str]] = {
    "core_quickstart.py": [LOCAL, *CORE],
    "langchain_quickstart.py": [LOCAL, *LANGCHAIN],
    "llama_index_quickstart.py": [LOCAL, *LLAMA_INDEX],
    "demo.py": [
        "Talking to the local server at http://127.0.0.1:",
        "== modelslab_core (the adapter) ==",
        *CORE,
        "== LangChain: ChatModelsLab ==",
        *LANGCHAIN,
        "== LlamaIndex: ModelsLabLLM ==",
        *LLAMA_INDEX,
    ],
    "lcel_chain.py": [
        LOCAL,
        "invoke: Good morning, my friend",
        "stream: See you tomorrow",
        "batch: Thank you",
        "batch: Good night",
    ],
    "structured_extraction.py": [
        LOCAL,
        "tool calling: Person(name='Alice', age=31, city='Lyon')",
        "tool calling: Person(name='Bob', age=45, city='Oslo')",
        "json schema: Person(name='Alice', age=31, city='Lyon')",
        "include_raw: Person(name='Bob', age=45, city='Oslo') | parsing error: None",
    ],
    "langchain_agent.py": [
        LOCAL,
        "tool call: count_stock {'fruit': 'apples'}",
        "tool result: 42",
        "answer: 42",
    ],
    "llama_index_rag.py": [
        LOCAL,
        "documents: ['bridge.txt', 'festival.txt', 'otters.txt']",
        "sources: ['bridge.txt', 'festival.txt', 'otters.txt']",
        "answer: ",
        "streamed answer: ",
    ],
    "llama_index_agent.py": [
        LOCAL,
        "tool call: multiply {'a': 17, 'b': 23}",
        "tool result: multiply {'a': 17, 'b': 23} -> 391",
        "answer: 391",
    ],
    "streaming.py": [
        LOCAL,
        "langchain stream: Write one sentence about the sea, please.",
        "langchain chunks: ",
        "langchain astream: Write one sentence about the sea, please.",
        "llama-index stream_chat: Write one sentence about the sea, please.",
    ],
    "concurrency.py": [
        LOCAL,
        "langchain abatch: 20 answers in ",
        "langchain abatch: first answer: Question number 1",
        "langchain max_in_flight: 20 answers in ",
        "langchain max_in_flight: first answer: Question number 1",
        "core max_in_flight: 20 answers in ",
        "core max_in_flight: first answer: Question number 1",
    ],
}


def lines_in_order(output: str, expected: list[str]) -> list[str]:
    """The output's lines matching ``expected`` in order (a line matches an expected entry that
    it equals or, for entries ending in ``:`` or a space, starts with); fails on the first
    missing one."""
    lines = output.splitlines()
    found: list[str] = []
    position = 0
    for wanted in expected:
        prefix = wanted.endswith((" ", ":"))
        for index in range(position, len(lines)):
            line = lines[index]
            if line == wanted or (prefix and line.startswith(wanted)):
                found.append(line)
                position = index + 1
                break
        else:
            raise AssertionError(f"missing line {wanted!r} (in order) in:\n{output}")
    return found


def check_clean(run: object) -> None:
    assert run.returncode == 0, run.explain()  # type: ignore[attr-defined]
    assert "Traceback" not in run.stderr, run.explain()  # type: ignore[attr-defined]
    assert "ResourceWarning" not in run.stderr, run.explain()  # type: ignore[attr-defined]


def test_every_example_is_checked() -> None:
    scripts = [p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")]
    assert sorted(EXPECTED) == sorted(scripts)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(offline_runs: Runs, name: str) -> None:
    run = offline_runs.get(name)
    check_clean(run)
    lines_in_order(run.stdout, EXPECTED[name])


def _named(run: object, label: str) -> str:
    return next(line for line in run.stdout.splitlines() if line.startswith(label))  # type: ignore[attr-defined]


def test_demo_shares_one_server(offline_runs: Runs) -> None:
    run = offline_runs.get("demo.py")
    check_clean(run)
    assert run.stdout.count("Talking to the local server") == 1
    assert "-- talking to" not in run.stdout  # no section started a server of its own


def test_demo_says_once_that_offline_answers_come_from_an_echo_model(offline_runs: Runs) -> None:
    run = offline_runs.get("demo.py")
    check_clean(run)
    lines = run.stdout.splitlines()
    assert lines[1].startswith("No MODELSLAB_API_KEY is set, so the answers below come from")
    assert run.stdout.count("echo model") == 1
    assert "Set MODELSLAB_API_KEY" in run.stdout


def test_rag_answer_comes_from_the_files(offline_runs: Runs) -> None:
    run = offline_runs.get("llama_index_rag.py")
    check_clean(run)
    # The local model echoes its prompt: the retrieved text reached the model.
    assert "It is painted teal" in _named(run, "answer: ")
    assert "What colour is the Zorblat bridge painted?" in _named(run, "answer: ")
    assert "third Friday of October" in _named(run, "streamed answer: ")


def test_streaming_came_in_pieces_with_usage(offline_runs: Runs) -> None:
    run = offline_runs.get("streaming.py")
    check_clean(run)
    match = re.fullmatch(
        r"langchain chunks: (\d+), usage: \{'input_tokens': 7, 'output_tokens': 7, "
        r"'total_tokens': 14\}",
        _named(run, "langchain chunks: "),
    )
    assert match is not None, run.stdout
    assert int(match[1]) > 7  # a role chunk, a chunk per word, a finish chunk, a usage chunk


def test_concurrency_cap_holds(offline_runs: Runs) -> None:
    run = offline_runs.get("concurrency.py")
    check_clean(run)
    for label in ("langchain abatch: 20", "langchain max_in_flight: 20", "core max_in_flight: 20"):
        line = _named(run, label)
        match = re.search(r"at most (\d+) in flight at the server", line)
        assert match is not None, line
        # 20 requests of 50 ms each: they overlapped, and never more than the cap of 5.
        assert 2 <= int(match[1]) <= 5, line


live = pytest.mark.skipif(
    not os.environ.get("MODELSLAB_API_KEY"), reason="MODELSLAB_API_KEY is not set"
)

#: The labels of each example's lines: what a live run must print, whatever the wording.
LIVE_LABELS = {
    name: [line.split(":", 1)[0] + ":" for line in expected[1:]]
    for name, expected in EXPECTED.items()
    if name != "demo.py"
}
LIVE_LABELS["demo.py"] = [
    line if line.startswith("==") else line.split(":", 1)[0] + ":"
    for line in EXPECTED["demo.py"][1:]
]


@pytest.mark.live
@live
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_live(python_runner: Callable[..., Any], name: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # the key, and any base URLs, as they are
    run = python_runner(f"examples/{name}", env=env)
    check_clean(run)
    assert "the live ModelsLab API" in run.stdout or "Talking to" in run.stdout, run.stdout
    for label in LIVE_LABELS[name]:
        assert any(line.startswith(label) for line in run.stdout.splitlines()), (label, run.stdout)
