"""Socket tests of the local ModelsLab server: routes, keys, the log, answers, streams, load."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import time
from typing import Any

import httpx
import pytest

from modelslab_core import ModelsLabClient
from modelslab_core.errors import NotFoundError
from modelslab_core.testing import LocalModelsLab, Reply
from tests.testing.reassemble import (
    flatten_chat,
    flatten_text,
    reassemble_chat,
    reassemble_text,
    sse_data,
)

CHAT = "/api/v7/llm/chat/completions"
UNCENSORED_CHAT = "/api/uncensored-chat/v1/chat/completions"
COMPLETIONS = "/api/v6/completions"
UNCENSORED_COMPLETIONS = "/api/uncensored-chat/v1/completions"
INVALID_KEY = {"status": "error", "message": "Invalid Api Key"}
DEFAULT_COMPLETION_MODEL = "ModelsLab/Llama-3.1-8b-Uncensored-Dare"


def chat_body(text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    return {
        "model": "meta-llama-3-8B-instruct",
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def weather_tool() -> dict[str, Any]:
    parameters = {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    }
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


# ----------------------------------------------------------------------------- URLs and routes


def test_the_base_urls_are_the_documented_paths_on_the_servers_port(
    modelslab_server: LocalModelsLab,
) -> None:
    server = modelslab_server
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.base_url == f"{server.url}/api/v7/llm"
    assert server.completions_base_url == f"{server.url}/api/v6"
    assert server.uncensored_base_url == f"{server.url}/api/uncensored-chat/v1"


def test_chat_routes_answer_with_a_chat_completion(client: httpx.Client) -> None:
    plain = client.post(CHAT, json=chat_body("hi")).json()
    assert plain["object"] == "chat.completion"
    assert plain["id"].startswith("gen-")
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    uncensored = client.post(UNCENSORED_CHAT, json=chat_body("hi")).json()
    assert uncensored["choices"][0]["message"]["tool_calls"] == []


@pytest.mark.parametrize("path", [COMPLETIONS, UNCENSORED_COMPLETIONS])
def test_completion_routes_answer_with_a_text_completion(client: httpx.Client, path: str) -> None:
    response = client.post(
        path, json={"model": DEFAULT_COMPLETION_MODEL, "prompt": "Write a tagline"}
    )
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == " Write a tagline"
    assert body["choices"][0]["stop_reason"] is None
    assert body["usage"]["total_tokens"] == 6


@pytest.mark.parametrize("path", ["/api/v7/llm/v1/models", "/api/v7/llm/models"])
def test_both_model_list_routes_list_the_known_models(client: httpx.Client, path: str) -> None:
    body = client.get(path).json()
    assert body["object"] == "list"
    ids = [item["id"] for item in body["data"]]
    assert "meta-llama-3-8B-instruct" in ids
    assert "deepseek-ai-DeepSeek-R1-Distill-Llama-70B" in ids
    assert set(body["data"][0]) == {"id", "object", "created", "owned_by"}


@pytest.mark.parametrize("path", [CHAT, UNCENSORED_CHAT, COMPLETIONS, UNCENSORED_COMPLETIONS])
def test_an_unknown_model_is_a_404_naming_it(client: httpx.Client, path: str) -> None:
    """A misspelled or foreign model id fails offline as on ModelsLab, not only on the live API."""
    body = {"messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
    for field in ("model", "model_id"):
        response = client.post(path, json={**body, field: "gpt-4o"})
        assert response.status_code == 404
        answer = response.json()
        assert answer["status"] == "error" and "'gpt-4o'" in answer["message"]
    known = client.post(path, json={**body, "model": "META-LLAMA-3-8B-INSTRUCT"})
    assert known.status_code == 200  # ids are matched in any case
    assert client.post(path, json=body).status_code == 200  # no model: the route's default


def test_an_unknown_model_is_a_typed_error_and_allowed_ids_pass(
    modelslab_server: LocalModelsLab,
) -> None:
    client = ModelsLabClient(api_key="k", base_url=modelslab_server.base_url, max_retries=0)
    request = {"model": "my-fine-tune", "messages": [{"role": "user", "content": "hi"}]}
    with client, pytest.raises(NotFoundError, match="my-fine-tune"):
        client.chat(request)
    modelslab_server.allow_models("my-fine-tune")
    with ModelsLabClient(api_key="k", base_url=modelslab_server.base_url) as client:
        assert client.chat(request).choices[0].message.content == "hi"
    modelslab_server.reset()  # what the fixture does after each test
    client = ModelsLabClient(api_key="k", base_url=modelslab_server.base_url)
    with client, pytest.raises(NotFoundError):
        client.chat(request)
    with (
        LocalModelsLab(models=["my-fine-tune"]) as own,
        ModelsLabClient(api_key="k", base_url=own.base_url) as client,
    ):
        assert client.chat(request).choices[0].message.content == "hi"
        assert [m.id for m in client.list_models().data] == ["my-fine-tune"]
        with pytest.raises(NotFoundError):
            client.chat({**request, "model": "meta-llama-3-8B-instruct"})


def test_the_fixture_accepts_the_model_ids_of_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "modelslab_models =\n    my-fine-tune\n    other-model\n"
    )
    pytester.makepyfile(
        """
        import pytest
        from modelslab_core import ModelsLabClient
        from modelslab_core.errors import NotFoundError

        def ask(server, model):
            with ModelsLabClient(api_key="k", base_url=server.base_url, max_retries=0) as c:
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                return c.chat(body).choices[0].message.content

        def test_models(modelslab_server):
            assert ask(modelslab_server, "my-fine-tune") == "hi"
            assert ask(modelslab_server, "other-model") == "hi"
            assert ask(modelslab_server, "meta-llama-3-8B-instruct") == "hi"
            with pytest.raises(NotFoundError):
                ask(modelslab_server, "gpt-4o")
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "path",
    ["/v7/llm/chat/completions", "/v6/completions", "/api/v7/llm/chat", "/", "/api/v7/llm/v2"],
)
def test_unknown_routes_are_404(client: httpx.Client, path: str) -> None:
    response = client.post(path, json=chat_body())
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Route not found"}


def test_wrong_method_is_405(client: httpx.Client) -> None:
    assert client.get(CHAT).status_code == 405
    assert client.post("/api/v7/llm/models", json={}).status_code == 405


def test_bad_bodies_get_modelslabs_400_or_422_with_its_message(client: httpx.Client) -> None:
    not_json = client.post(CHAT, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["status"] == "error"
    assert client.post(CHAT, json=[1, 2]).status_code == 400
    for body in ({"model": "m"}, {"model": "m", "messages": []}):
        response = client.post(CHAT, json=body)
        assert response.status_code == 422
        assert response.json()["message"] == "The messages field is required."
    missing_prompt = client.post(COMPLETIONS, json={"model": "m"})
    assert missing_prompt.status_code == 422
    assert missing_prompt.json()["message"] == "The prompt field is required."


# ----------------------------------------------------------------------------- keys and the log


@pytest.mark.parametrize(
    ("placement", "headers", "extra"),
    [
        ("bearer", {"Authorization": "Bearer test-key"}, {}),
        ("x-api-key", {"x-api-key": "test-key"}, {}),
        ("body", {}, {"key": "test-key"}),
    ],
)
def test_key_in_each_place(
    keyed_server: LocalModelsLab, placement: str, headers: dict[str, str], extra: dict[str, str]
) -> None:
    with httpx.Client(base_url=keyed_server.url, headers=headers) as http:
        assert "choices" in http.post(CHAT, json=chat_body(**extra)).json()
        models = http.get("/api/v7/llm/v1/models").json()
    assert keyed_server.requests[0].key_placement == placement
    if placement == "body":  # a GET has no body to carry the key
        assert models["message"] == "Invalid Api Key"
    else:
        assert models["object"] == "list"


@pytest.mark.parametrize("stream", [False, True])
def test_missing_or_wrong_key_gets_the_envelope(keyed_server: LocalModelsLab, stream: bool) -> None:
    with httpx.Client(base_url=keyed_server.url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = http.post(CHAT, json=chat_body(stream=stream), headers=headers)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert {k: body[k] for k in ("status", "message")} == INVALID_KEY
            assert body["tip"]
        assert http.get("/api/v7/llm/models").json()["message"] == "Invalid Api Key"


def test_any_non_empty_key_when_no_key_is_set(modelslab_server: LocalModelsLab) -> None:
    with httpx.Client(base_url=modelslab_server.url) as http:
        assert "choices" in http.post(CHAT, json=chat_body(key="anything")).json()
        assert http.post(CHAT, json=chat_body(key="")).json()["message"] == "Invalid Api Key"
    assert [r.key_placement for r in modelslab_server.requests] == ["body", None]


def test_request_log_hides_keys(keyed_server: LocalModelsLab) -> None:
    secret = "test-key"
    headers = {"Authorization": f"Bearer {secret}", "x-api-key": secret, "X-Trace": "t1"}
    with httpx.Client(base_url=keyed_server.url, headers=headers) as http:
        http.post(CHAT, json=chat_body(key=secret), params={"q": "1"})
    [recorded] = keyed_server.requests
    assert recorded.method == "POST"
    assert recorded.path == CHAT
    assert recorded.query == "q=1"
    assert recorded.headers["authorization"] == "***"
    assert recorded.headers["x-api-key"] == "***"
    assert recorded.headers["x-trace"] == "t1"
    assert recorded.body is not None and recorded.body["key"] == "***"
    assert recorded.body["messages"][0]["content"] == "Hello there"
    assert secret not in repr(keyed_server.requests)
    assert keyed_server.last_request == recorded


# ----------------------------------------------------------------------------- default answers


def test_echo_stop_max_tokens_n_over_http(client: httpx.Client) -> None:
    body = client.post(CHAT, json=chat_body("alpha beta gamma delta", stop=["gamma"], n=2)).json()
    assert [c["message"]["content"] for c in body["choices"]] == ["alpha beta "] * 2
    assert [c["index"] for c in body["choices"]] == [0, 1]
    cut = client.post(CHAT, json=chat_body("alpha beta gamma", max_tokens=1)).json()
    assert cut["choices"][0]["message"]["content"] == "alpha"
    assert cut["choices"][0]["finish_reason"] == "length"
    aliased = client.post(
        CHAT, json={"model_id": "gemini-2.5-pro", "messages": chat_body()["messages"]}
    )
    aliased = aliased.json()
    assert aliased["model"] == "gemini-2.5-pro"


def test_tool_call_then_tool_result(client: httpx.Client) -> None:
    question = chat_body("What is the weather in San Francisco, CA?", tools=[weather_tool()])
    first = client.post(CHAT, json=question).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    [call] = first["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco"}
    history = [
        *question["messages"],
        first["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "It's sunny."},
    ]
    second = client.post(CHAT, json={**question, "messages": history}).json()["choices"][0]
    assert second["message"]["content"] == "It's sunny."
    assert second["finish_reason"] == "stop"


def test_json_schema_over_http(client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
        "required": ["setup", "punchline"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "Joke", "schema": schema}}
    body = client.post(CHAT, json=chat_body("Tell a joke", response_format=response_format))
    content = json.loads(body.json()["choices"][0]["message"]["content"])
    assert set(content) == {"setup", "punchline"}


STREAM_REQUESTS: list[dict[str, Any]] = [
    chat_body("Hello there, world!"),
    chat_body("think hard", model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B"),
    chat_body("Weather in Paris and Rome?", tools=[weather_tool()], n=2),
    chat_body("a b c d e", max_tokens=3),
    chat_body("x", response_format={"type": "json_object"}),
]


@pytest.mark.parametrize("request_body", STREAM_REQUESTS)
@pytest.mark.parametrize("alias", ["stream", "streaming"])
def test_stream_equals_non_stream(
    client: httpx.Client, request_body: dict[str, Any], alias: str
) -> None:
    plain = client.post(CHAT, json=request_body).json()
    streamed = client.post(
        CHAT, json={**request_body, alias: True, "stream_options": {"include_usage": True}}
    )
    assert streamed.headers["content-type"] == "text/event-stream"
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.text.startswith(": keep-alive\n\n")
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert reassemble_chat(streamed.text) == flatten_chat(plain)


def test_stream_usage_only_when_asked(client: httpx.Client) -> None:
    text = client.post(CHAT, json=chat_body(stream=True)).text
    assert '"usage"' not in text
    with_usage = client.post(
        CHAT, json=chat_body(stream=True, stream_options={"include_usage": True})
    ).text
    last = json.loads(sse_data(with_usage)[-2])
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


@pytest.mark.parametrize("path", [COMPLETIONS, UNCENSORED_COMPLETIONS])
def test_completion_stream_equals_non_stream(client: httpx.Client, path: str) -> None:
    request_body = {"prompt": ["one two three", "four"], "n": 2, "max_tokens": 2}
    plain = client.post(path, json=request_body).json()
    streamed = client.post(
        path, json={**request_body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert reassemble_text(streamed.text) == flatten_text(plain)


def test_long_stream_arrives_whole(client: httpx.Client) -> None:
    words = " ".join(f"w{index}" for index in range(2000))
    with client.stream("POST", CHAT, json=chat_body(words, stream=True)) as response:
        payloads = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert len(payloads) == 2000 + 3
    pieces = [json.loads(p[6:])["choices"][0]["delta"].get("content") for p in payloads[:-1]]
    assert "".join(piece or "" for piece in pieces) == words


def test_stream_delay_paces_events(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.stream_delay = 0.01
    try:
        with (
            httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http,
            http.stream("POST", CHAT, json=chat_body("a b c", stream=True)) as response,
        ):
            chunks = list(response.iter_bytes())
    finally:
        modelslab_server.stream_delay = 0.0
    assert len(chunks) > 3


# ----------------------------------------------------------------------------- connections


def test_keep_alive_reuses_one_connection(modelslab_server: LocalModelsLab) -> None:
    with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        for _ in range(10):
            assert http.post(CHAT, json=chat_body()).status_code == 200
        http.post(CHAT, json=chat_body(stream=True))
        http.get("/api/v7/llm/models")
        http.post("/nowhere", json={})
    assert modelslab_server.connections_opened == 1
    assert modelslab_server.request_count == 13


def test_connection_close_is_honoured(modelslab_server: LocalModelsLab) -> None:
    headers = {"x-api-key": "k", "Connection": "close"}
    with httpx.Client(base_url=modelslab_server.url, headers=headers) as http:
        first = http.post(CHAT, json=chat_body())
        assert first.headers["connection"] == "close"
        http.post(CHAT, json=chat_body())
    assert modelslab_server.connections_opened == 2


def _raw_exchange(server: LocalModelsLab, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_http10_chunked_request_body_and_malformed_requests(
    modelslab_server: LocalModelsLab,
) -> None:
    body = json.dumps({**chat_body("chunked body"), "key": "k"}).encode()
    request = (
        f"POST {CHAT} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = _raw_exchange(modelslab_server, request)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in head
    assert json.loads(payload)["choices"][0]["message"]["content"] == "chunked body"
    assert _raw_exchange(modelslab_server, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    bad_length = b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"
    assert _raw_exchange(modelslab_server, bad_length).startswith(b"HTTP/1.1 400")


def test_a_body_over_the_limit_is_413_and_odd_statuses_have_a_reason(
    modelslab_server: LocalModelsLab, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelslab_core.testing._webserver._MAX_BODY", 1000)
    assert client.post(CHAT, json=chat_body("x" * 2000)).status_code == 413
    modelslab_server.enqueue(Reply.raw(599, "odd"))
    odd = client.post(CHAT, json=chat_body())
    assert (odd.status_code, odd.reason_phrase, odd.text) == (599, "Unknown", "odd")


async def test_64_concurrent_requests_all_answered(modelslab_server: LocalModelsLab) -> None:
    async with httpx.AsyncClient(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        responses = await asyncio.gather(
            *(http.post(CHAT, json=chat_body(f"request number {i}")) for i in range(64))
        )
    contents = [r.json()["choices"][0]["message"]["content"] for r in responses]
    assert contents == [f"request number {i}" for i in range(64)]
    assert modelslab_server.request_count == 64


async def test_in_flight_counts_concurrent_requests(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(*[Reply.slow(0.3) for _ in range(8)])
    async with httpx.AsyncClient(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        pending = [asyncio.create_task(http.post(CHAT, json=chat_body())) for _ in range(8)]
        for _ in range(50):
            await asyncio.sleep(0.005)
            if modelslab_server.in_flight == 8:
                break
        assert modelslab_server.in_flight == 8
        await asyncio.gather(*pending)
    assert modelslab_server.in_flight == 0
    assert modelslab_server.max_in_flight_seen == 8
    modelslab_server.reset_stats()
    assert modelslab_server.max_in_flight_seen == 0
    assert modelslab_server.request_count == 0


# ----------------------------------------------------------------------------- lifecycle


def test_lifecycle_errors_and_stop_closes_connections() -> None:
    server = LocalModelsLab()
    assert "not started" in repr(server)
    with pytest.raises(RuntimeError):
        _ = server.port
    with server:
        with pytest.raises(RuntimeError):
            server.start()
        http = httpx.Client(base_url=server.url, headers={"x-api-key": "k"})
        try:
            assert http.post(CHAT, json=chat_body()).status_code == 200
            server.stop()
            with pytest.raises(httpx.TransportError):
                http.post(CHAT, json=chat_body())
        finally:
            http.close()
    server.stop()


def test_stop_ends_the_answers_still_being_played() -> None:
    server = LocalModelsLab().start()
    server.enqueue(Reply.slow(60), Reply.keep_alive())
    http = httpx.Client(base_url=server.url, headers={"x-api-key": "k"})
    with http, concurrent.futures.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(http.post, CHAT, json=chat_body()) for _ in range(2)]
        for _ in range(1000):
            if server.in_flight == 2:
                break
            time.sleep(0.01)
        assert server.in_flight == 2
        server.stop()
        for call in calls:
            with pytest.raises(httpx.TransportError):
                call.result(timeout=10)
    assert server.in_flight == 0


def test_a_reply_it_cannot_play_is_a_500_and_the_server_goes_on(
    modelslab_server: LocalModelsLab, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    modelslab_server.enqueue(Reply())
    failed = client.post(CHAT, json=chat_body())
    assert failed.status_code == 500
    assert failed.json()["message"].startswith("Local server error: TypeError('not a reply")
    assert "local ModelsLab server failed on POST" in caplog.text
    assert (
        client.post(CHAT, json=chat_body("still here")).json()["choices"][0]["message"]["content"]
        == "still here"
    )


def test_port_in_use_raises(modelslab_server: LocalModelsLab) -> None:
    with pytest.raises(OSError):
        LocalModelsLab(port=modelslab_server.port).start()


def test_reset_clears_queue_faults_log(modelslab_server: LocalModelsLab) -> None:
    modelslab_server.enqueue(Reply.text("x"))
    modelslab_server.set_fault_rate(1.0)
    with httpx.Client(base_url=modelslab_server.url, headers={"x-api-key": "k"}) as http:
        http.get("/api/v7/llm/models")
        modelslab_server.reset()
        assert modelslab_server.requests == []
        assert modelslab_server.pending_replies == 0
        assert (
            http.post(CHAT, json=chat_body("fine")).json()["choices"][0]["message"]["content"]
            == "fine"
        )
