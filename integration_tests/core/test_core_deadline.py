"""``total_timeout``, the whole-call deadline, over real sockets.

``timeout`` bounds each network step: a server that keeps sending a byte now and then never
trips it. ``total_timeout`` bounds the whole call (retries, waits at the account gate and the
whole stream included) and ends it with :class:`APITimeoutError`. Against a raw-socket server
that trickles one byte every 0.1 s and against the local server sending keep-alives forever;
sync and async, streamed and not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import AsyncModelsLabClient, ModelsLabClient
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-DEADLINE-SECRET-KEY-0099"
MODEL = "meta-llama-3-8B-instruct"
DEADLINE = 1.0
#: Far longer than the deadline: what ends the calls below is the deadline, never this.
STEP_TIMEOUT = 30.0
#: A call that ran past this would have waited for ``STEP_TIMEOUT`` (or forever).
WELL_BEFORE_STEP_TIMEOUT = 15.0


def ask(text: str = "hello") -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


class Trickle:
    """A raw-socket HTTP server that answers 200 at once, then sends one byte every
    ``interval`` seconds and never finishes: spaces before a JSON body, or (``stream``) one
    whole event and then comment bytes."""

    def __init__(self, stream: bool, interval: float = 0.1) -> None:
        self.stream = stream
        self.interval = interval
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/v7/llm"
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            if self.stream:
                event = (
                    b'data: {"id":"t","object":"chat.completion.chunk","created":1,"model":"m",'
                    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
                )
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%b\r\n" % (len(event), event)
                )
                tick = b"1\r\n:\r\n"
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000\r\n\r\n"
                )
                tick = b" "
            while not self.stopping.wait(self.interval):
                conn.sendall(tick)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture(params=[False, True], ids=["json", "stream"])
def trickle(request: pytest.FixtureRequest) -> Iterator[Trickle]:
    server = Trickle(stream=request.param)
    try:
        yield server
    finally:
        server.close()


def options(**extra: Any) -> dict[str, Any]:
    return {"api_key": KEY, "timeout": STEP_TIMEOUT, "total_timeout": DEADLINE, **extra}


def call_sync(client: ModelsLabClient, stream: bool) -> Any:
    if not stream:
        return client.chat(ask())
    with client.chat_stream(ask()) as chunks:
        return list(chunks)


async def call_async(client: AsyncModelsLabClient, stream: bool) -> Any:
    if not stream:
        return await client.chat(ask())
    async with await client.chat_stream(ask()) as chunks:
        return [chunk async for chunk in chunks]


def check(error: BaseException, started: float) -> None:
    assert isinstance(error, e.APITimeoutError)
    assert f"total_timeout={DEADLINE:g} s" in str(error)
    assert KEY not in str(error)
    assert time.monotonic() - started < WELL_BEFORE_STEP_TIMEOUT


# ----------------------------------------------------------------------------- trickling bytes


def test_a_trickle_ends_at_the_deadline_sync(trickle: Trickle) -> None:
    client = ModelsLabClient(base_url=trickle.url, **options())
    started = time.monotonic()
    with pytest.raises(e.APITimeoutError) as caught:
        call_sync(client, trickle.stream)
    check(caught.value, started)


async def test_a_trickle_ends_at_the_deadline_async(trickle: Trickle) -> None:
    client = AsyncModelsLabClient(base_url=trickle.url, **options())
    started = time.monotonic()
    with pytest.raises(e.APITimeoutError) as caught:
        await call_async(client, trickle.stream)
    check(caught.value, started)


def test_without_a_deadline_a_trickle_is_not_a_timeout(trickle: Trickle) -> None:
    """The control: the per-step ``timeout`` alone does not end a trickle (it would end the
    call only if a single read waited that long)."""
    client = ModelsLabClient(base_url=trickle.url, api_key=KEY, timeout=0.5, max_retries=0)
    result: list[Any] = []

    def run() -> None:
        with contextlib.suppress(Exception):
            result.append(call_sync(client, trickle.stream))
        result.append("ended")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(2.5)  # five times the step timeout
    assert worker.is_alive() and not result
    trickle.close()  # the server hangs up: the call ends
    worker.join(10)
    assert result[-1] == "ended"


# ----------------------------------------------------------------------------- keep-alives


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    modelslab_server.api_key = KEY
    return modelslab_server


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_keep_alives_forever_end_at_the_deadline_sync(server: LocalModelsLab, stream: bool) -> None:
    server.enqueue(Reply.keep_alive(interval=0.1))
    client = ModelsLabClient(base_url=server.base_url, **options())
    started = time.monotonic()
    with pytest.raises(e.APITimeoutError) as caught:
        call_sync(client, stream)
    check(caught.value, started)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_keep_alives_forever_end_at_the_deadline_async(
    server: LocalModelsLab, stream: bool
) -> None:
    server.enqueue(Reply.keep_alive(interval=0.1))
    client = AsyncModelsLabClient(base_url=server.base_url, **options())
    started = time.monotonic()
    with pytest.raises(e.APITimeoutError) as caught:
        await call_async(client, stream)
    check(caught.value, started)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_keep_alives_that_end_in_time_are_an_answer(server: LocalModelsLab, stream: bool) -> None:
    server.enqueue(Reply.keep_alive(seconds=0.3, interval=0.1, then=Reply.text("made it")))
    client = ModelsLabClient(base_url=server.base_url, **options(total_timeout=20))
    result = call_sync(client, stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in result if c.choices) == "made it"
    else:
        assert result.choices[0].message.content == "made it"


def test_the_frameworks_end_at_the_deadline(server: LocalModelsLab) -> None:
    server.enqueue(Reply.keep_alive(interval=0.1), Reply.keep_alive(interval=0.1))
    model = ChatModelsLab(model=MODEL, base_url=server.base_url, **options())
    with pytest.raises(e.APITimeoutError):
        model.invoke("hello")
    llm = ModelsLabLLM(model=MODEL, base_url=server.base_url, **options())
    with pytest.raises(e.APITimeoutError):
        asyncio.run(llm.achat([ChatMessage(role="user", content="hello")]))


# ----------------------------------------------------------------------------- retries and waits


def test_the_deadline_covers_retries(server: LocalModelsLab) -> None:
    server.enqueue(*[Reply.server_error(503)] * 10)
    client = ModelsLabClient(base_url=server.base_url, **options(max_retries=10))
    with pytest.raises(e.APITimeoutError) as caught:
        client.chat(ask())
    assert isinstance(caught.value.__cause__, e.ServerError)
    assert server.request_count < 10


async def test_the_deadline_covers_the_wait_at_the_gate(server: LocalModelsLab) -> None:
    holder = AsyncModelsLabClient(base_url=server.base_url, api_key=KEY, max_in_flight=1)
    waiter = AsyncModelsLabClient(base_url=server.base_url, **options(max_in_flight=1))
    stream = await holder.chat_stream(ask("one two three"))  # holds the account's one place
    try:
        with pytest.raises(e.APITimeoutError, match="total_timeout"):
            await waiter.chat(ask())
        assert waiter.flow_gate is not None and waiter.flow_gate.stats().waiting == 0
    finally:
        await stream.aclose()
    assert (await waiter.chat(ask("now"))).choices[0].message.content == "now"
