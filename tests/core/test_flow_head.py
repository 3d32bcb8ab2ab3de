"""A 429 means the account is full: the turned-away call waits at the head of its account's gate
and goes out when a place frees (or when ``retry_after`` passes); a hint of 0 is no hint (the
backoff, never a hot loop); the same account however its URL is spelled; idle gates are
dropped, what they learned is kept a while."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient, flow
from modelslab_core.errors import RateLimitError
from modelslab_core.flow import FlowGate, account_of, gate_for, gate_stats, reset_gates
from modelslab_core.testing import LocalModelsLab

KEY = "sk-head-SECRET-0123456789"
MODEL = "meta-llama-3-8B-instruct"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(autouse=True)
def _fresh_gates() -> None:
    reset_gates()


# ----------------------------------------------------------------------------- Retry-After: 0


class Always429:
    """A raw-socket HTTP/1.1 server answering every request 429 with a zero wait (the header,
    the body field or both), counting the requests it receives."""

    def __init__(self, header: str | None, body_hint: str | None) -> None:
        self.header, self.body_hint = header, body_hint
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v7/llm"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                buffer = buffer[length:]
                self.requests += 1
                hint = "" if self.body_hint is None else f', "retry_after": {self.body_hint}'
                body = f'{{"status": "error", "message": "Rate limit exceeded."{hint}}}'.encode()
                headers = [
                    "HTTP/1.1 429 Too Many Requests",
                    "Content-Type: application/json",
                    f"Content-Length: {len(body)}",
                ]
                if self.header is not None:
                    headers.append(f"Retry-After: {self.header}")
                conn.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + body)

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@pytest.fixture(params=[("0", None), (None, "0"), ("-5", "-1")])
def always_429(request: pytest.FixtureRequest) -> Iterator[Always429]:
    header, body_hint = request.param
    server = Always429(header, body_hint)
    yield server
    server.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_zero_or_missing_retry_after_backs_off_instead_of_a_hot_loop(
    always_429: Always429, mode: str
) -> None:
    """A hint of 0, missing or unreadable is no floor: the call backs off exponentially instead of
    asking again at once for the whole rate-limit budget, so a budget of 1 s holds a handful of
    requests, not thousands."""
    options = {"api_key": KEY, "base_url": always_429.base_url, "rate_limit_budget": 1.0}
    with pytest.raises(RateLimitError):
        if mode == "sync":
            with ModelsLabClient(**options) as client:  # type: ignore[arg-type]
                client.chat(REQUEST)
        else:
            async with AsyncModelsLabClient(**options) as aclient:  # type: ignore[arg-type]
                await aclient.chat(REQUEST)
    assert 2 <= always_429.requests <= 6


# ----------------------------------------------------------------------------- the head


def test_a_turned_away_call_gets_the_next_freed_place_before_earlier_waiters() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    held = gate.try_acquire()
    assert held is not None
    got: list[str] = []

    def wait(name: str, retry_at: float | None) -> None:
        permit = gate.acquire(10.0, retry_at=retry_at)
        assert permit is not None
        got.append(name)
        permit.succeeded()

    queued = threading.Thread(target=wait, args=("queued first", None))
    queued.start()
    while gate.stats().waiting < 1:
        time.sleep(0.001)
    turned_away = threading.Thread(target=wait, args=("turned away", time.monotonic() + 1000))
    turned_away.start()
    while gate.stats().waiting < 2:
        time.sleep(0.001)
    held.succeeded()  # a place frees: the server has room for the call it turned away
    queued.join(10)
    turned_away.join(10)
    assert got == ["turned away", "queued first"]


def test_with_nothing_in_flight_retry_after_is_a_floor_that_holds_everyone_back() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=2)
    far = time.monotonic() + 1000
    # Nothing of the account is in flight that the gate can see: no place will free here, so
    # the turned-away call waits its retry_after, and nobody passes it meanwhile.
    assert gate.acquire(0.05, retry_at=far) is None
    waiting = threading.Thread(target=gate.acquire, args=(0.5,), kwargs={"retry_at": far})
    waiting.start()
    while gate.stats().waiting < 1:
        time.sleep(0.001)
    assert gate.try_acquire() is None
    assert gate.acquire(0.05) is None
    waiting.join(10)  # gives up after 0.5 s: nothing freed, its retry_after never came
    assert gate.stats().waiting == 0
    # A retry_after that passed lets it out at once, while the gate has room.
    permit = gate.acquire(0.0, retry_at=time.monotonic() - 1)
    assert permit is not None
    permit.release()
    assert gate.stats().in_flight == 0


async def test_an_async_turned_away_call_goes_out_when_its_retry_after_passes() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    permit = await gate.acquire_async(10.0, retry_at=time.monotonic() + 0.05)
    assert permit is not None
    # ... and a place freeing ends a far retry_after early.
    waiter = asyncio.create_task(gate.acquire_async(10.0, retry_at=time.monotonic() + 1000))
    while gate.stats().waiting < 1:
        await asyncio.sleep(0.001)
    permit.succeeded()
    second = await asyncio.wait_for(waiter, 10)
    assert second is not None
    second.succeeded()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_burst_at_retry_after_30_is_answered_on_freed_places_not_after_30_s(
    mode: str,
) -> None:
    """The server says retry_after 30 to every call it turns away. Within total_timeout=20
    every call is answered: each turned-away call went out on a place freed by an answer
    (sitting out the 30 s would end the call with APITimeoutError)."""
    calls = 12
    with LocalModelsLab(api_key=KEY, queue_limit=2, latency=0.1, retry_after=30) as server:
        options = {"api_key": KEY, "base_url": server.base_url, "total_timeout": 20.0}
        if mode == "sync":
            with ModelsLabClient(**options) as client:  # type: ignore[arg-type]
                errors: list[BaseException] = []

                def one() -> None:
                    try:
                        client.chat(REQUEST)
                    except BaseException as error:  # collected for the assert
                        errors.append(error)

                threads = [threading.Thread(target=one) for _ in range(calls)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(60)
                assert errors == []
                gate = client.flow_gate
        else:
            async with AsyncModelsLabClient(**options) as aclient:  # type: ignore[arg-type]
                await asyncio.gather(*(aclient.chat(REQUEST) for _ in range(calls)))
                gate = aclient.flow_gate
        assert server.max_queued_seen <= 2
        assert server.rate_limited_count >= 1  # the slow start met the queue
    assert gate is not None
    stats = gate.stats()
    assert (stats.limit, stats.in_flight, stats.waiting) == (2, 0, 0)


# ----------------------------------------------------------------------------- accounts


def test_one_account_however_its_url_is_spelled() -> None:
    spellings = [
        "https://ModelsLab.com/api/v7/llm",
        "https://modelslab.com:443/api/v7/llm/",
        "https://modelslab.com/api/v6",
        "HTTPS://MODELSLAB.COM/api/uncensored-chat/v1",
    ]
    accounts = {account_of(KEY, url) for url in spellings}
    assert len(accounts) == 1
    assert accounts.pop()[1] == "https://modelslab.com"
    assert account_of(KEY, "http://127.0.0.1:80/x") == account_of(KEY, "http://127.0.0.1/y")
    assert account_of(KEY, "https://modelslab.com:8443/a")[1] == "https://modelslab.com:8443"
    assert account_of(KEY, "http://[::1]:8080/a")[1] == "http://[::1]:8080"
    assert account_of(KEY, "http://modelslab.com/a") != account_of(KEY, "https://modelslab.com/a")


# ----------------------------------------------------------------------------- eviction


def test_idle_gates_are_dropped_and_their_learned_limit_is_kept() -> None:
    """20,000 per-user keys whose calls are over keep at most ``MAX_GATES`` gates; a gate with a
    call in flight stays, and what a dropped gate learned comes back with the account's next."""
    learned = gate_for(account_of("user-learned", "https://modelslab.com"))
    permits = [learned.try_acquire() for _ in range(6)]
    for permit in permits:
        assert permit is not None
    permits[0].rate_limited(5)  # the server named 5
    for permit in permits[1:]:
        permit.succeeded()
    busy = gate_for(account_of("user-busy", "https://modelslab.com"))
    held = busy.try_acquire()
    assert held is not None
    for user in range(20_000):
        gate = gate_for(account_of(f"user-{user}", "https://modelslab.com"))
        permit = gate.try_acquire()
        assert permit is not None
        permit.succeeded()
    assert len(flow._registry.gates) <= flow.MAX_GATES
    # A gate with a request in flight is never dropped.
    assert gate_for(account_of("user-busy", "https://modelslab.com")) is busy
    held.succeeded()
    # The dropped gate's learned limit comes back with the account's next gate.
    again = gate_for(account_of("user-learned", "https://modelslab.com"))
    assert again is not learned
    assert (again.stats().limit, again.stats().named_limit) == (5, 5)
    assert len(gate_stats()) == len(flow._registry.gates)


def test_a_dropped_gate_still_held_sends_its_callers_to_the_accounts_gate() -> None:
    account = account_of(KEY, "https://modelslab.com")
    stale = gate_for(account)
    reset_gates()
    flow.MAX_GATES, saved = 0, flow.MAX_GATES
    try:
        current = gate_for(account)  # the registry is swept: nothing idle stays
        assert current is not stale
        stale._retired = True  # as a sweep leaves a gate dropped while a caller held it
        permit = stale.try_acquire()
        waited = stale.acquire(1)
        waited_async = asyncio.run(stale.acquire_async(1))
        assert permit is not None and waited is not None and waited_async is not None
        assert current.stats().in_flight == 3 and stale.stats().in_flight == 0
        for held in (permit, waited, waited_async):
            held.succeeded()
        assert current.stats().in_flight == 0
    finally:
        flow.MAX_GATES = saved


def test_a_turned_away_call_whose_retry_at_passed_goes_at_once_when_there_is_room() -> None:
    gate = FlowGate("https://h", "abcd1234")
    past = time.monotonic() - 1

    async def head_async() -> flow.Permit | None:
        return await gate.acquire_async(5, retry_at=past)

    for permit in (gate.acquire(5, retry_at=past), asyncio.run(head_async())):
        assert permit is not None
        permit.succeeded()
    stats = gate.stats()
    assert (stats.in_flight, stats.waiting, stats.admitted) == (0, 0, 2)


def test_a_pinned_limit_below_one_is_refused() -> None:
    gate = FlowGate("https://h", "abcd1234")
    with pytest.raises(ValueError, match="pinned limit must be >= 1"):
        gate.pin(0)
    gate.pin(2)
    assert gate.stats().limit == 2 and gate.stats().pinned


# ----------------------------------------------------------------------------- redis_url


def test_a_redis_url_is_checked_before_any_request_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelslab_core import ClientConfig
    from modelslab_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="scheme 'http'") as caught:
        ClientConfig.build(KEY, redis_url="http://:hunter2@cache:6379")
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("MODELSLAB_REDIS_URL", "rediss://:hunter2@cache:6380/0")
    config = ClientConfig.build(KEY)
    assert config.redis_url == "rediss://:hunter2@cache:6380/0"
    assert "hunter2" not in repr(config)
    monkeypatch.delenv("MODELSLAB_REDIS_URL")
    assert ClientConfig.build(KEY).redis_url is None


@pytest.mark.parametrize("redis_url", [5, b"redis://cache:6379", ["redis://cache:6379"]])
def test_a_redis_url_that_is_no_string_is_a_setting_error_naming_it(redis_url: object) -> None:
    from modelslab_core import ClientConfig, InvalidSettingError

    for make in (ClientConfig.build, ModelsLabClient):
        with pytest.raises(InvalidSettingError, match="redis_url") as caught:
            make(KEY, redis_url=redis_url)
        assert caught.value.field == "redis_url"


def test_without_redis_py_a_redis_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelslab_core import _fleet
    from modelslab_core.errors import ConfigurationError

    monkeypatch.setattr(_fleet, "redis", None)
    monkeypatch.setattr(_fleet, "_links", {})
    client = ModelsLabClient(api_key=KEY, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match=r"modelslab-integrations\[redis\]"):
        client.chat(REQUEST)
