"""The shared pools serve every account of the process: a cookie one key's answer sets never
rides on another key's request."""

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


async def test_the_async_pool_sends_no_cookie_set_for_another_key(server: CookieSetter) -> None:
    await AsyncModelsLabClient(api_key="key-a", base_url=server.base_url).chat(ASK)
    await AsyncModelsLabClient(api_key="key-b", base_url=server.base_url).chat(ASK)
    assert [h.get("authorization") for h in server.seen] == ["Bearer key-a", "Bearer key-b"]
    assert "cookie" not in server.seen[1]
