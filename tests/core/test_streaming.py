"""SSE decoding, pure: split anywhere, CRLF, comments, [DONE], error events, bad payloads."""

from __future__ import annotations

import json

import pytest

from modelslab_core import ChatCompletionChunk, StreamAccumulator
from modelslab_core import errors as e
from modelslab_core.streaming import decode_event, iter_sse_data


def chunk(**delta: object) -> str:
    return json.dumps({"id": "c1", "choices": [{"index": 0, "delta": delta}]})


STREAM = (
    ": keep-alive\n\n"
    f"data: {chunk(role='assistant', content='')}\n\n"
    ": OPENROUTER PROCESSING\n\n"
    f"data: {chunk(content='Hello')}\n\n"
    f"data: {chunk(content=' world')}\n\n"
    "data: [DONE]\n\n"
)


def test_events_in_order_comments_ignored() -> None:
    data = list(iter_sse_data([STREAM]))
    assert data[-1] == "[DONE]"
    assert len(data) == 4


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_split_anywhere_same_events(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert list(iter_sse_data(pieces)) == list(iter_sse_data([STREAM]))


def test_crlf_and_cr_line_endings() -> None:
    crlf = STREAM.replace("\n", "\r\n")
    cr = STREAM.replace("\n", "\r")
    assert list(iter_sse_data([crlf])) == list(iter_sse_data([STREAM]))
    assert list(iter_sse_data([cr])) == list(iter_sse_data([STREAM]))
    # A CRLF split between two network chunks.
    cut = crlf.index("\r\n", 20)
    pieces = [crlf[: cut + 1], crlf[cut + 1 :]]
    assert list(iter_sse_data(pieces)) == list(iter_sse_data([STREAM]))


def test_event_cut_off_at_the_end_is_dropped_so_the_stream_is_incomplete() -> None:
    cut = f"data: {chunk(content='Hel')}\n\ndata: {chunk(content='lo')}"[:-10]
    assert list(iter_sse_data([cut])) == [chunk(content="Hel")]


def test_last_event_without_blank_line_still_counts() -> None:
    assert list(iter_sse_data(["data: [DONE]"])) == ["[DONE]"]
    assert list(iter_sse_data(["data: [DONE]\n"])) == ["[DONE]"]


def test_retry_and_id_fields_do_not_become_data() -> None:
    text = f"retry: 1000\nid: 7\nevent: message\ndata: {chunk(content='x')}\n\n"
    assert list(iter_sse_data([text])) == [chunk(content="x")]


def test_decode_chunks_and_done() -> None:
    parsed = decode_event(chunk(content="hi"), ChatCompletionChunk)
    assert parsed is not None and parsed.choices[0].delta.content == "hi"
    assert decode_event("[DONE]", ChatCompletionChunk) is None


@pytest.mark.parametrize(
    ("payload", "cls", "text"),
    [
        ('{"error":{"message":"upstream died","code":502}}', e.StreamError, "upstream died"),
        ('{"status":"error","message":"Invalid Api Key"}', e.AuthenticationError, "Invalid Api"),
        ('{"status":"error","messege":"Rate limit exceeded"}', e.RateLimitError, "Rate limit"),
        ("not json", e.InvalidResponseError, "not JSON"),
        ("[1, 2]", e.InvalidResponseError, "not a JSON object"),
        ('{"choices": "nope"}', e.InvalidResponseError, "unexpected shape"),
    ],
)
def test_bad_events_raise_typed_errors(payload: str, cls: type, text: str) -> None:
    with pytest.raises(cls, match=text):
        decode_event(payload, ChatCompletionChunk)


def test_accumulator_merges_tool_call_fragments_by_index() -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "think"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "add", "arguments": '{"a": '},
                            },
                            {
                                "index": 1,
                                "id": "call_b",
                                "type": "function",
                                "function": {"name": "mul", "arguments": ""},
                            },
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"arguments": "1}"}},
                            {"index": 1, "function": {"arguments": '{"b": 2}'}},
                        ]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
    acc = StreamAccumulator()
    for event in events:
        acc.add(ChatCompletionChunk.model_validate(event))
    done = acc.completion()
    message = done.choices[0].message
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("call_a", "add", '{"a": 1}'),
        ("call_b", "mul", '{"b": 2}'),
    ]
    assert message.reasoning_content == "think"
    assert message.content is None
    assert done.choices[0].finish_reason == "tool_calls"
    assert done.usage is not None and done.usage.total_tokens == 7


def test_a_whole_answer_to_a_stream_request_is_one_chunk_that_merges_back_to_it() -> None:
    """A server that ignores ``stream`` answers with a whole completion: its one chunk carries
    every choice's text (content parts joined), reasoning, tool calls in order, finish reason
    and usage, so the streamed result equals the answer."""
    from modelslab_core import ChatCompletion
    from modelslab_core.streaming import answer_as_chunk

    answer = ChatCompletion.model_validate(
        {
            "id": "gen-1",
            "object": "chat.completion",
            "created": 7,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "think",
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": '{"x": 1}'}},
                            {"id": "b", "function": {"name": "g", "arguments": "{}"}},
                        ],
                    },
                    "finish_reason": "tool_calls",
                },
                {
                    "index": 1,
                    "message": {"content": [{"type": "text", "text": "he"}, {"text": "llo"}]},
                    "finish_reason": "stop",
                },
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
    )
    chunk = answer_as_chunk(answer)
    assert isinstance(chunk, ChatCompletionChunk)
    assert chunk.object == "chat.completion.chunk"
    assert [c.index for c in chunk.choices[0].delta.tool_calls or ()] == [0, 1]
    merged = StreamAccumulator()
    merged.add(chunk)
    back = merged.completion()
    first, second = back.choices
    assert (back.id, back.model, back.created, back.usage) == ("gen-1", "m", 7, answer.usage)
    assert first.message.reasoning_content == "think"
    assert [
        (c.id, c.function.name, c.function.arguments) for c in first.message.tool_calls or ()
    ] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", "{}"),
    ]
    assert (first.finish_reason, second.finish_reason) == ("tool_calls", "stop")
    assert second.message.content == "hello"
