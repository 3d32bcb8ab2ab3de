"""The shared pools serve every account of the process: each request carries the headers its own
client gives it (on top of httpx's), and a cookie one key's answer sets never rides on another
key's request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient

ASK = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
ANSWER = json.dumps(
    {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
).encode()


class CookieSetter(ThreadingHTTPServer):
    """Answers every chat request and sets a session cookie named after the caller's key."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v7/llm"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CookieSetter

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(headers)
        key = headers.get("authorization", "").removeprefix("Bearer ")
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.send_header("set-cookie", f"session=of-{key}; Path=/")
        self.end_headers()
        self.wfile.write(ANSWER)

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b'{"object":"list","data":[{"id":"m"}]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CookieSetter]:
    with CookieSetter() as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        yield running
        running.shutdown()


def test_the_sync_pool_sends_no_cookie_set_for_another_key(server: CookieSetter) -> None:
    ModelsLabClient(api_key="key-a", base_url=server.base_url).chat(ASK)
    ModelsLabClient(api_key="key-b", base_url=server.base_url).chat(ASK)
    assert [h.get("authorization") for h in server.seen] == ["Bearer key-a", "Bearer key-b"]
    assert "cookie" not in server.seen[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_async_pool_sends_no_cookie_set_for_another_key(
    server: CookieSetter, host: str
) -> None:
    """Neither httpx nor aiohttp under it keeps the cookie (aiohttp's own jar would take one from
    a named host, never from an IP address)."""
    url = server.base_url.replace("127.0.0.1", host)
    await AsyncModelsLabClient(api_key="key-a", base_url=url).chat(ASK)
    await AsyncModelsLabClient(api_key="key-b", base_url=url).chat(ASK)
    assert [h.get("authorization") for h in server.seen] == ["Bearer key-a", "Bearer key-b"]
    assert "cookie" not in server.seen[1]


@pytest.mark.parametrize("is_async", [False, True])
async def test_each_client_on_the_shared_pool_sends_its_own_headers(
    server: CookieSetter, is_async: bool
) -> None:
    """Two clients with different settings, one after the other on one pool: each request has
    httpx's defaults, then the client's own headers (which win), the key where it belongs."""
    url = server.base_url
    first = {"api_key": "key-a", "base_url": url, "default_headers": {"User-Agent": "mine/1"}}
    second = {"api_key": "key-b", "base_url": url, "key_placement": "body"}
    for settings in (first, second, first):
        if is_async:
            client = AsyncModelsLabClient(**settings)
            await client.chat(ASK)
            await client.list_models()
        else:
            sync_client = ModelsLabClient(**settings)
            sync_client.chat(ASK)
            sync_client.list_models()
    chat_a, models_a, chat_b, models_b, chat_a2, models_a2 = server.seen
    for headers in server.seen:
        assert "gzip" in headers["accept-encoding"] and headers["host"].startswith("127.0.0.1:")
        assert headers["accept"] == "application/json, text/event-stream"
    for headers in (chat_a, models_a, chat_a2, models_a2):
        assert headers["user-agent"] == "mine/1" and headers["authorization"] == "Bearer key-a"
        assert "x-api-key" not in headers
    assert chat_b["user-agent"].startswith("modelslab-integrations/")
    assert chat_a["content-type"] == chat_b["content-type"] == "application/json"
    assert "authorization" not in chat_b and "x-api-key" not in chat_b  # the key is in the body
    assert models_b["x-api-key"] == "key-b" and "authorization" not in models_b
