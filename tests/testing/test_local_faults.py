"""Socket tests of scripted replies and injected faults of the local ModelsLab server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from modelslab_core.testing import LocalModelsLab, Reply
from tests.testing.reassemble import reassemble_chat, sse_data

CHAT = "/api/v7/llm/chat/completions"
COMPLETIONS = "/api/v6/completions"


def chat_body(text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    return {
        "model": "meta-llama-3-8B-instruct",
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def post(server: LocalModelsLab, body: dict[str, Any], path: str = CHAT) -> httpx.Response:
    with httpx.Client(base_url=server.url, headers={"x-api-key": "k"}, timeout=10) as http:
        return http.post(path, json=body)


# ----------------------------------------------------------------------------- answers


def test_queue_is_fifo_then_default(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.text("first"), Reply.text("second"))
    assert modelslab_server.pending_replies == 2
    with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        assert http.get("/api/v7/llm/models").status_code == 200  # does not consume
        contents = [
            http.post(CHAT, json=chat_body("default")).json()["choices"][0]["message"]["content"]
            for _ in range(3)
        ]
    assert contents == ["first", "second", "default"]


def test_text_reply_with_reasoning_usage_and_stream(modelslab_server: LocalModelsLab) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15}
    reply = Reply.text("scripted words", reasoning="hmm", finish_reason="length", usage=usage)
    modelslab_server.enqueue(reply, reply)
    plain = post(modelslab_server, chat_body()).json()
    assert plain["choices"][0]["message"] == {
        "role": "assistant",
        "content": "scripted words",
        "reasoning_content": "hmm",
    }
    assert plain["choices"][0]["finish_reason"] == "length"
    assert plain["usage"] == usage
    streamed = post(
        modelslab_server, chat_body(stream=True, stream_options={"include_usage": True})
    )
    rebuilt = reassemble_chat(streamed.text)
    assert rebuilt["choices"][0]["content"] == "scripted words"
    assert rebuilt["choices"][0]["reasoning"] == "hmm"
    assert rebuilt["usage"] == usage


def test_text_reply_on_completion_route(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.text("continued"), Reply.text("streamed"))
    body = post(modelslab_server, {"prompt": "p"}, COMPLETIONS).json()
    assert body["choices"][0]["text"] == "continued"
    streamed = post(modelslab_server, {"prompt": "p", "stream": True}, COMPLETIONS).text
    texts = [json.loads(p)["choices"][0]["text"] for p in sse_data(streamed)[:-1]]
    assert "".join(texts) == "streamed"


def test_tool_call_replies_answer_with_their_calls_plain_and_streamed(
    modelslab_server: LocalModelsLab,
) -> None:
    modelslab_server.enqueue(
        Reply.tool_call("get_weather", {"city": "Paris"}),
        Reply.tool_calls([("a", {"x": 1}), ("b", "{}")], content="calling", ids=["i1", None]),
    )
    first = post(modelslab_server, chat_body()).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    [call] = first["message"]["tool_calls"]
    assert call["id"] == "call_1"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    streamed = reassemble_chat(post(modelslab_server, chat_body(stream=True)).text)
    choice = streamed["choices"][0]
    assert choice["content"] == "calling"
    assert [(c["id"], c["name"], c["arguments"]) for c in choice["tool_calls"]] == [
        ("i1", "a", '{"x": 1}'),
        ("call_2", "b", "{}"),
    ]


# ----------------------------------------------------------------------------- error bodies

ERROR_CASES: list[tuple[Reply, int, str, Any]] = [
    (Reply.error(418, {"detail": "teapot"}, headers={"X-Extra": "1"}), 418, "json", None),
    (Reply.raw(503, "down", content_type="text/plain"), 503, "text/plain", "down"),
    (Reply.insufficient_credits(), 402, "json", None),
    (Reply.invalid_key_envelope(), 200, "json", None),
    (Reply.misspelled_error("bad thing"), 200, "json", {"status": "error", "messege": "bad thing"}),
    (
        Reply.openai_error(401, "no key", code="invalid_api_key"),
        401,
        "json",
        {
            "error": {
                "message": "no key",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
    ),
    (Reply.server_error(503), 503, "json", {"status": "error", "message": "Internal Server Error"}),
    (Reply.html_error(502), 502, "text/html", None),
    (Reply.non_json(), 200, "text/html", None),
    (Reply.processing(), 200, "json", None),
    (Reply.validation_error(), 422, "json", None),
]


@pytest.mark.parametrize(("reply", "status", "kind", "expected"), ERROR_CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_error_replies_are_sent_as_is(
    modelslab_server: LocalModelsLab,
    reply: Reply,
    status: int,
    kind: str,
    expected: Any,
    stream: bool,
) -> None:
    modelslab_server.enqueue(reply)
    response = post(modelslab_server, chat_body(stream=stream))
    assert response.status_code == status
    assert response.content == reply.body
    if kind == "json":
        assert response.headers["content-type"] == "application/json"
        if expected is not None:
            assert response.json() == expected
    else:
        assert response.headers["content-type"] == kind
        if expected is not None:
            assert response.text == expected
    for name, value in reply.headers:
        assert response.headers[name] == value


def test_named_faults_send_modelslabs_own_bodies(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(
        Reply.rate_limit(retry_after=2),
        Reply.rate_limit(retry_after=3, header=False),
        Reply.insufficient_credits(),
        Reply.invalid_key_envelope(),
        Reply.processing(id=9, eta=4),
        Reply.validation_error(),
        Reply.html_error(504),
    )
    limited = post(modelslab_server, chat_body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "status": "error",
        "message": "Rate limit exceeded. Maximum 5 queued requests allowed.",
        "retry_after": 2,
    }
    no_header = post(modelslab_server, chat_body())
    assert "retry-after" not in no_header.headers
    assert no_header.json()["retry_after"] == 3
    credits = post(modelslab_server, chat_body()).json()
    assert credits["status"] == "error" and "credit" in credits["message"].lower()
    envelope = post(modelslab_server, chat_body()).json()
    assert envelope["message"] == "Invalid Api Key" and envelope["tip"]
    processing = post(modelslab_server, chat_body()).json()
    assert (processing["status"], processing["id"], processing["eta"]) == ("processing", 9, 4)
    assert processing["fetch_result"]
    invalid = post(modelslab_server, chat_body()).json()
    assert invalid["message"] == "The messages field is required."
    assert invalid["errors"] == {"messages": ["The messages field is required."]}
    html = post(modelslab_server, chat_body())
    assert html.status_code == 504 and "<html>" in html.text


# ----------------------------------------------------------------------------- stream faults


def test_cut_stream_ends_cleanly_without_done(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.cut_stream(after_chunks=2), Reply.cut_stream(0))
    with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        response = http.post(CHAT, json=chat_body("one two three four", stream=True))
        payloads = sse_data(response.text)
        assert len(payloads) == 2
        assert "[DONE]" not in response.text
        assert json.loads(payloads[1])["choices"][0]["delta"] == {"content": "one"}
        assert sse_data(http.post(CHAT, json=chat_body(stream=True)).text) == []
        # the connection stays usable after a clean (chunked) end
        assert http.post(CHAT, json=chat_body()).status_code == 200
    assert modelslab_server.connections_opened == 1


def test_cut_non_stream_body_is_incomplete(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.cut_stream())
    with pytest.raises(httpx.RemoteProtocolError):
        post(modelslab_server, chat_body())


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("openai", {"error": {"message": "boom", "type": "server_error", "code": 502}}),
        ("modelslab", {"status": "error", "message": "boom"}),
    ],
)
def test_a_stream_error_event_comes_in_either_style_after_its_chunks(
    modelslab_server: LocalModelsLab, style: Any, expected: Any
) -> None:
    modelslab_server.enqueue(Reply.stream_error_event("boom", style=style, after_chunks=2))
    modelslab_server.enqueue(Reply.stream_error_event("boom", style=style))
    payloads = sse_data(post(modelslab_server, chat_body(stream=True)).text)
    assert len(payloads) == 4
    assert json.loads(payloads[2]) == expected
    assert payloads[3] == "[DONE]"
    immediate = post(modelslab_server, chat_body())  # streamed even for a plain request
    assert immediate.headers["content-type"] == "text/event-stream"
    assert [json.loads(p) for p in sse_data(immediate.text)[:-1]] == [expected]


@pytest.mark.parametrize(("after_bytes", "stream"), [(0, False), (40, False), (200, True)])
def test_a_reset_connection_fails_that_request_only(
    modelslab_server: LocalModelsLab, after_bytes: int, stream: bool
) -> None:
    modelslab_server.enqueue(Reply.reset_connection(after_bytes=after_bytes))
    with pytest.raises(httpx.TransportError):
        post(modelslab_server, chat_body(stream=stream))
    assert post(modelslab_server, chat_body()).status_code == 200


def test_a_slow_reply_answers_late_then_the_echo_resumes(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.slow(0.15, then=Reply.text("late")), Reply.slow(0.05))
    started = time.perf_counter()
    late = post(modelslab_server, chat_body())
    assert time.perf_counter() - started >= 0.15
    assert late.json()["choices"][0]["message"]["content"] == "late"
    default = post(modelslab_server, chat_body("own words"))
    assert default.json()["choices"][0]["message"]["content"] == "own words"


def test_slow_reply_times_out_a_client(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.slow(0.5))
    with (
        httpx.Client(
            base_url=modelslab_server.url, headers={"x-api-key": "k"}, timeout=0.1
        ) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post(CHAT, json=chat_body())


# ----------------------------------------------------------------------------- fault rate


def test_fault_rate_injects_and_turns_off(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.set_fault_rate(1.0, [Reply.server_error(500)])
    with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        assert [http.post(CHAT, json=chat_body()).status_code for _ in range(3)] == [500] * 3
        modelslab_server.enqueue(Reply.text("queued first"))
        assert http.post(CHAT, json=chat_body()).json()["choices"][0]["message"]["content"] == (
            "queued first"
        )
        modelslab_server.set_fault_rate(0)
        assert http.post(CHAT, json=chat_body()).status_code == 200


def test_fault_rate_is_seeded(modelslab_server: LocalModelsLab) -> None:
    def run() -> list[int]:
        modelslab_server.set_fault_rate(0.3, seed=7)
        with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
            return [http.post(CHAT, json=chat_body()).status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 200 in first and {429, 500} & set(first)
    assert set(first) <= {200, 429, 500}


def test_bad_fault_rates_and_non_replies_are_refused(modelslab_server: LocalModelsLab) -> None:
    with pytest.raises(ValueError):
        modelslab_server.set_fault_rate(1.5)
    with pytest.raises(ValueError):
        modelslab_server.set_fault_rate(0.5, [])
    with pytest.raises(TypeError):
        modelslab_server.enqueue("not a reply")  # type: ignore[arg-type]
