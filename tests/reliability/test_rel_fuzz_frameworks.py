"""Property tests through both frameworks (``httpx`` ``MockTransport``; nothing leaves the process).

- Streamed and non-streamed answers of the same scripted response merge to the same message:
  text, tool calls, usage and reasoning, in LangChain (``invoke`` against the sum of ``stream``'s
  chunks), in LlamaIndex (``chat`` against the last ``stream_chat`` response) and in the adapter's
  accumulator. The stream splits text, reasoning and tool arguments at arbitrary points, and
  sends ``id`` and name only in a call's first fragment, as ModelsLab does.
- Malformed answers (any subtree of a valid answer or chunk replaced by arbitrary JSON) raise only
  the project's typed errors through every framework path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
from collections.abc import Callable, Coroutine
from functools import reduce
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ChatCompletion, ChatCompletionChunk, StreamAccumulator
from modelslab_core import errors as e
from tests.reliability.strategies import CHUNK_KEYS, envelopes, json_values

KEY = "fuzz-key-456"
BASE = "http://fuzz.invalid/api/v7/llm"
T = TypeVar("T")
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)
words = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
arg_values = st.one_of(st.integers(-(10**6), 10**6), st.booleans(), st.none(), texts)


def arun(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


def sse(events: list[Any]) -> bytes:
    return "".join(f"data: {json.dumps(ev)}\n\n" for ev in events).encode() + b"data: [DONE]\n\n"


class Script:
    """What the mock server answers: ``answer`` to plain requests, ``events`` to streams."""

    def __init__(self, answer: Any, events: list[Any]) -> None:
        self.answer = answer
        self.events = events

    def handler(self, request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=sse(self.events)
            )
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=json.dumps(self.answer)
        )

    def models(self) -> tuple[ChatModelsLab, ModelsLabLLM, list[Any]]:
        transport = httpx.MockTransport(self.handler)
        sync, asyn = httpx.Client(transport=transport), httpx.AsyncClient(transport=transport)
        chat = ChatModelsLab(
            api_key=KEY, base_url=BASE, max_retries=0, http_client=sync, http_async_client=asyn
        )
        llm = ModelsLabLLM(
            api_key=KEY, base_url=BASE, max_retries=0, http_client=sync, async_http_client=asyn
        )
        return chat, llm, [sync, asyn]


def close(clients: list[Any]) -> None:
    clients[0].close()
    arun(clients[1].aclose())


# ----------------------------------------------------------------------------- scripted answers


@st.composite
def pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=6)))
    edges = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


@st.composite
def scripted(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the non-streamed answer, the chunks of the same answer streamed)."""
    content = draw(st.none() | texts)
    reasoning = draw(st.none() | texts.filter(bool))
    calls: list[dict[str, Any]] = [
        {
            "id": f"call_{i}_{draw(words)}",
            "type": "function",
            "function": {
                "name": draw(words),
                "arguments": json.dumps(
                    draw(st.dictionaries(words, arg_values, max_size=3)),
                    ensure_ascii=draw(st.booleans()),
                ),
            },
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    if not calls and content is None:
        content = ""
    prompt, completion = draw(st.integers(0, 10**5)), draw(st.integers(0, 10**5))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))
    head = {"id": "gen-fuzz", "created": 1, "model": "meta-llama-3-8B-instruct"}
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    answer = {
        **head,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    chunks = [chunk({"role": "assistant", "content": "" if content is not None else None})]
    for piece in draw(pieces(reasoning or "")) if reasoning else []:
        chunks.append(chunk({"reasoning_content": piece}))
    for piece in draw(pieces(content)) if content else []:
        chunks.append(chunk({"content": piece}))
    fragments: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        parts = draw(pieces(call["function"]["arguments"]))
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": parts[0]},
        }
        fragments.append(first)
        fragments.extend({"index": index, "function": {"arguments": p}} for p in parts[1:])
    while fragments:  # one or more fragments a chunk
        take = draw(st.integers(1, min(3, len(fragments))))
        chunks.append(chunk({"tool_calls": fragments[:take]}))
        fragments = fragments[take:]
    chunks.append(chunk({}, finish))
    chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    return answer, chunks


def lc_view(message: Any) -> dict[str, Any]:
    return {
        "text": message.content,
        "tool_calls": [(c["id"], c["name"], c["args"]) for c in message.tool_calls],
        "invalid_tool_calls": [(c["id"], c["name"]) for c in message.invalid_tool_calls],
        "usage": message.usage_metadata,
        "reasoning": message.additional_kwargs.get("reasoning_content"),
    }


def li_view(llm: ModelsLabLLM, response: Any) -> dict[str, Any]:
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
    return {
        "text": response.message.content,
        "tool_calls": [(c.tool_id, c.tool_name, c.tool_kwargs) for c in calls],
        "usage": {k: response.additional_kwargs.get(k) for k in ("prompt_tokens", "total_tokens")},
        "reasoning": [b.content for b in response.message.blocks if isinstance(b, ThinkingBlock)],
    }


@FUZZ
@given(scripted(), st.booleans())
def test_streamed_and_whole_answers_merge_to_the_same_message(
    script: tuple[dict[str, Any], list[dict[str, Any]]], use_async: bool
) -> None:
    answer, chunks = script
    chat, llm, clients = Script(answer, chunks).models()
    messages = [ChatMessage(role="user", content="go")]
    try:
        # The adapter: the accumulated stream is the whole answer.
        acc = StreamAccumulator()
        for item in chunks:
            acc.add(ChatCompletionChunk.model_validate(item))
        whole = ChatCompletion.model_validate(answer)
        merged = acc.completion()
        got, want = merged.choices[0].message, whole.choices[0].message
        # Empty and absent text are one answer ("" or null beside tool calls).
        assert (got.content or "", got.reasoning_content, got.tool_calls) == (
            want.content or "",
            want.reasoning_content,
            want.tool_calls,
        )
        assert merged.usage == whole.usage

        if use_async:

            async def both() -> tuple[Any, ...]:
                invoked = await chat.ainvoke("go")
                streamed = [c async for c in chat.astream("go")]
                chatted = await llm.achat(messages)
                li_streamed = [r async for r in await llm.astream_chat(messages)]
                return invoked, streamed, chatted, li_streamed

            invoked, streamed, chatted, li_streamed = arun(both())
        else:
            invoked, streamed = chat.invoke("go"), list(chat.stream("go"))
            chatted, li_streamed = llm.chat(messages), list(llm.stream_chat(messages))

        # LangChain: invoke and the sum of stream's chunks.
        expected = lc_view(invoked)
        assert lc_view(reduce(operator.add, streamed)) == expected
        assert expected["text"] == (answer["choices"][0]["message"]["content"] or "")
        assert [c[1] for c in expected["tool_calls"]] == [
            c["function"]["name"] for c in answer["choices"][0]["message"].get("tool_calls", [])
        ]
        assert expected["usage"]["input_tokens"] == answer["usage"]["prompt_tokens"]

        # LlamaIndex: chat and the last response of stream_chat.
        expected_li = li_view(llm, chatted)
        assert li_view(llm, li_streamed[-1]) == expected_li
        assert expected_li["tool_calls"] == [(c[0], c[1], c[2]) for c in expected["tool_calls"]]
    finally:
        close(clients)


# ----------------------------------------------------------------------------- malformed answers

# CHUNK_KEYS, WORDS, json_values, ERROR_FIELDS and envelopes: tests/reliability/strategies.py


def mutate(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one subtree replaced by arbitrary JSON."""
    holder: Any = None
    key: Any = None
    node = value
    for _ in range(draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(0, len(node) - 1))
        else:
            break
        holder, node = node, node[key]
    replacement = draw(
        json_values
        | envelopes
        | st.dictionaries(st.sampled_from(CHUNK_KEYS), json_values, max_size=4)
    )
    if holder is None:
        return replacement
    holder[key] = replacement
    return value


def details(name: str) -> st.SearchStrategy[Any]:
    """A usage details field (OpenAI's ``*_tokens_details``), well-formed or not."""
    return st.fixed_dictionaries({}, optional={name: json_values}) | json_values


usage_extras = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens_details": details("cached_tokens"),
        "completion_tokens_details": details("reasoning_tokens"),
    },
)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    answer, chunks = draw(scripted())
    extras = draw(usage_extras)  # the usage fields the converters read most deeply
    answer["usage"].update(extras)
    chunks[-1]["usage"].update(extras)
    if draw(st.booleans()):
        answer = mutate(draw, answer)
    position = draw(st.integers(0, len(chunks) - 1))
    chunks[position] = mutate(draw, chunks[position])
    return answer, chunks


PATHS: dict[str, Callable[[ChatModelsLab, ModelsLabLLM], Any]] = {
    "lc.invoke": lambda chat, llm: chat.invoke("go"),
    "lc.stream": lambda chat, llm: list(chat.stream("go")),
    "lc.ainvoke": lambda chat, llm: arun(chat.ainvoke("go")),
    "lc.astream": lambda chat, llm: arun(_drain(chat.astream("go"))),
    "li.chat": lambda chat, llm: llm.chat([ChatMessage(role="user", content="go")]),
    "li.stream_chat": lambda chat, llm: list(
        llm.stream_chat([ChatMessage(role="user", content="go")])
    ),
    "li.achat": lambda chat, llm: arun(llm.achat([ChatMessage(role="user", content="go")])),
    "li.astream_chat": lambda chat, llm: arun(_drain_li(llm)),
    "li tool calls": lambda chat, llm: llm.get_tool_calls_from_response(
        llm.chat([ChatMessage(role="user", content="go")]), error_on_no_tool_call=False
    ),
}


async def _drain(gen: Any) -> list[Any]:
    return [item async for item in gen]


async def _drain_li(llm: ModelsLabLLM) -> list[Any]:
    return [r async for r in await llm.astream_chat([ChatMessage(role="user", content="go")])]


@FUZZ
@given(malformed(), st.sampled_from(sorted(PATHS)))
def test_malformed_answers_raise_only_typed_errors(
    script: tuple[Any, list[Any]], path: str
) -> None:
    answer, chunks = script
    chat, llm, clients = Script(answer, chunks).models()
    try:
        PATHS[path](chat, llm)
    except e.ModelsLabError:
        pass
    finally:
        close(clients)


# ----------------------------------------------------------------------------- bad input
# Bad numbers and nameless tools refused before any request on every path; the JSON-mode
# fallback of structured output triggered by a refused response format and nothing else.


class Recorder:
    """A mock server that counts requests and answers each with the next scripted response."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.seen = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def models(self, **li: Any) -> tuple[ChatModelsLab, ModelsLabLLM, list[Any]]:
        transport = httpx.MockTransport(self.handler)
        sync, asyn = httpx.Client(transport=transport), httpx.AsyncClient(transport=transport)
        chat = ChatModelsLab(
            api_key=KEY, base_url=BASE, max_retries=0, http_client=sync, http_async_client=asyn
        )
        llm = ModelsLabLLM(
            api_key=KEY,
            base_url=BASE,
            max_retries=0,
            http_client=sync,
            async_http_client=asyn,
            **li,
        )
        return chat, llm, [sync, asyn]


def _answer(content: str) -> httpx.Response:
    message = {"role": "assistant", "content": content}
    return httpx.Response(
        200,
        json={"id": "a", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]},
    )


CALL_PATHS: dict[str, Callable[[ChatModelsLab, ModelsLabLLM, dict[str, Any]], Any]] = {
    "lc.invoke": lambda chat, llm, kw: chat.invoke("go", **kw),
    "lc.astream": lambda chat, llm, kw: arun(_drain(chat.astream("go", **kw))),
    "li.chat": lambda chat, llm, kw: llm.chat([ChatMessage(role="user", content="go")], **kw),
    "li.astream_complete": lambda chat, llm, kw: arun(
        _drain_coro(llm.astream_complete("go", **kw))
    ),
}


async def _drain_coro(coro: Any) -> list[Any]:
    return [item async for item in await coro]


NUMBER_FIELDS = ["temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens",
                 "top_k", "seed", "n", "repetition_penalty"]  # fmt: skip
bad_numbers = st.sampled_from([True, False, float("nan"), float("inf"), float("-inf")])


@FUZZ
@given(st.sampled_from(NUMBER_FIELDS), bad_numbers, st.sampled_from(sorted(CALL_PATHS)))
def test_bad_numbers_are_refused_on_every_path_before_any_request(
    field: str, value: Any, path: str
) -> None:
    recorder = Recorder(_answer("never"))
    chat, llm, clients = recorder.models()
    try:
        CALL_PATHS[path](chat, llm, {field: value})
    except e.ParameterError as error:
        assert error.field == field
    else:
        raise AssertionError(f"{field}={value!r} was accepted")
    finally:
        close(clients)
    assert recorder.seen == 0


@FUZZ
@given(st.integers(1, 5), st.data())
def test_a_nameless_tool_is_named_by_its_position(count: int, data: st.DataObject) -> None:
    from llama_index.core.tools import FunctionTool, ToolMetadata

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    position = data.draw(st.integers(0, count - 1))
    nameless = data.draw(st.sampled_from([None, "", " "]))
    lc_tools: list[Any] = [
        {"type": "function", "function": {"name": f"tool_{i}", "parameters": {}}}
        for i in range(count)
    ]
    lc_tools[position] = {"type": "function", "function": {"name": nameless, "parameters": {}}}
    li_tools = [FunctionTool.from_defaults(fn=add, name=f"tool_{i}") for i in range(count)]
    li_tools[position] = FunctionTool(fn=add, metadata=ToolMetadata(description="x", name=nameless))
    recorder = Recorder(_answer("never"))
    chat, llm, clients = recorder.models()
    try:
        for call in (
            lambda: chat.bind_tools(lc_tools),
            lambda: llm.chat_with_tools(li_tools, "go"),
        ):
            try:
                call()
            except e.ParameterError as error:
                assert f"tools[{position}]" in str(error)
            else:
                raise AssertionError("a nameless tool was accepted")
    finally:
        close(clients)
    assert recorder.seen == 0


HINTS = ["response_format", "Response Format", "json_schema", "JSON schema"]
refusal_messages = st.one_of(
    texts,
    st.tuples(texts, st.sampled_from(HINTS), texts).map("".join),
    st.sampled_from(["This model's maximum context length is 8192 tokens",
                     "The model `x` does not exist", "Invalid Api Key"]),
)  # fmt: skip


@FUZZ
@given(refusal_messages, st.sampled_from([400, 422]), st.sampled_from(["lc", "li"]))
def test_structured_output_falls_back_only_on_a_refused_response_format(
    message: str, status: int, framework: str
) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    refusal = httpx.Response(status, json={"error": {"message": message}})
    error = e.error_from_body(status, {"error": {"message": message}})
    assert error is not None
    falls_back = e.names_response_format(error)
    recorder = Recorder(refusal, _answer(json.dumps({"name": "Paris"})))
    chat, llm, clients = recorder.models(is_function_calling_model=False)
    try:
        if framework == "lc":
            result = chat.with_structured_output(City, method="json_schema").invoke("Paris")
        else:
            from llama_index.core.prompts import PromptTemplate

            result = llm.structured_predict(City, PromptTemplate("{text}"), text="Paris")
    except e.ModelsLabError as raised:
        assert not falls_back, f"a refused format was raised: {raised}"
        assert recorder.seen == 1
    else:
        assert falls_back, "another error was answered in JSON mode"
        assert result == City(name="Paris")
        assert recorder.seen == 2
    finally:
        close(clients)
