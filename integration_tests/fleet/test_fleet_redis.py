"""One account gate for a fleet of processes, through a real ``redis-server``: processes sharing
a key never hold more than the limit at the server, a killed worker's places come back within
the lease, streams hold their place while they run, waiters are served in arrival order across
processes, Redis going away mid-burst fails no call, and neither the key nor the Redis password
leaks."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import redis

from langchain_modelslab import ChatModelsLab
from modelslab_core import AsyncModelsLabClient, ClientConfig, ModelsLabClient, _fleet, _limit
from modelslab_core._limit import AdaptiveLimit
from modelslab_core.flow import COLD_START, FlowGate, gate_stats
from modelslab_core.testing import LocalModelsLab

from .conftest import RedisServer

KEY = "sk-fleet-SECRET-0123456789abcdef"
MODEL = "meta-llama-3-8B-instruct"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
FORK = multiprocessing.get_context("fork")


def _gate(base_url: str, redis_url: str | None, pinned: int | None = None) -> FlowGate:
    client = ModelsLabClient(
        api_key=KEY, base_url=base_url, redis_url=redis_url, max_in_flight=pinned
    )
    gate = client.flow_gate
    assert gate is not None
    return gate


def _until(condition: Any, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# ----------------------------------------------------------------------------- processes


def _burst(
    base_url: str, redis_url: str, calls: int, pinned: int | None, go: Any, out: Any
) -> None:
    async def main() -> list[str]:
        async with AsyncModelsLabClient(
            api_key=KEY,
            base_url=base_url,
            redis_url=redis_url,
            max_in_flight=pinned,
            total_timeout=20,
        ) as client:
            results = await asyncio.gather(
                *(client.chat(REQUEST) for _ in range(calls)), return_exceptions=True
            )
        return [type(r).__name__ for r in results if isinstance(r, BaseException)]

    go.wait(10)
    out.put(asyncio.run(main()))


def _run_processes(server: LocalModelsLab, redis_url: str, pinned: int | None) -> list[str]:
    go, out = FORK.Event(), FORK.Queue()
    children = [
        FORK.Process(target=_burst, args=(server.base_url, redis_url, 8, pinned, go, out))
        for _ in range(3)
    ]
    for child in children:
        child.start()
    go.set()
    failures = [name for _ in children for name in out.get(timeout=60)]
    for child in children:
        child.join(10)
    return failures


def test_processes_sharing_a_key_and_a_pinned_limit_never_exceed_it(
    redis_server: RedisServer,
) -> None:
    """Three processes, each pinned at the account's 2: one fleet gate admits 2 in all, so the
    server turns nobody away (three gates of their own would hold 6 at once)."""
    with LocalModelsLab(api_key=KEY, queue_limit=2, latency=0.1, retry_after=30) as server:
        assert _run_processes(server, redis_server.url, pinned=2) == []
        assert server.rate_limited_count == 0
        assert server.max_queued_seen == 2


def test_processes_learn_the_limit_together_and_answer_everything_at_retry_after_30(
    redis_server: RedisServer,
) -> None:
    """Learned, not pinned, with ModelsLab's retry_after of 30: every call of every process is
    answered within total_timeout=20 (a turned-away call goes out on a place freed anywhere in
    the fleet), and the slow start's collisions are the only 429s."""
    with LocalModelsLab(api_key=KEY, queue_limit=2, latency=0.1, retry_after=30) as server:
        assert _run_processes(server, redis_server.url, pinned=None) == []
        assert server.rate_limited_count <= COLD_START  # at most the slow start's first round
        gate = _gate(server.base_url, redis_server.url)
        stats = gate.stats()
        assert stats.shared and (stats.limit, stats.named_limit) == (2, 2)
        assert (stats.fleet_in_flight, stats.fleet_waiting) == (0, 0)


def _hold(base_url: str, redis_url: str, ready: Any) -> None:
    gate = _gate(base_url, redis_url, pinned=2)
    held = [gate.acquire(5), gate.acquire(5)]
    assert all(p is not None and p.lease for p in held)
    ready.set()
    time.sleep(60)


def test_a_killed_worker_gives_its_places_back_within_the_lease(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fleet, "LEASE_SECONDS", 1.0)  # the forked worker's too
    base_url = "https://modelslab.com/api/v7/llm"  # no request is sent
    ready = FORK.Event()
    worker = FORK.Process(target=_hold, args=(base_url, redis_server.url, ready))
    worker.start()
    assert ready.wait(20)
    gate = _gate(base_url, redis_server.url, pinned=2)
    assert gate.stats().fleet_in_flight == 2
    assert gate.acquire(0.1) is None  # the fleet is full
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)
    permit = gate.acquire(10)  # the dead worker's leases expire after 1 s
    assert permit is not None and permit.lease
    permit.succeeded()
    assert gate.stats().fleet_in_flight == 0


def _wait_turn(base_url: str, redis_url: str, name: str, out: Any) -> None:
    gate = _gate(base_url, redis_url, pinned=1)
    permit = gate.acquire(20)
    assert permit is not None
    out.put(name)
    time.sleep(0.05)
    permit.succeeded()


def test_waiters_of_several_processes_are_served_in_arrival_order(
    redis_server: RedisServer,
) -> None:
    base_url = "https://modelslab.com/api/v7/llm"
    gate = _gate(base_url, redis_server.url, pinned=1)
    held = gate.acquire(5)
    assert held is not None
    out = FORK.Queue()
    workers = []
    for count, name in enumerate(["first", "second", "third"], start=1):
        worker = FORK.Process(target=_wait_turn, args=(base_url, redis_server.url, name, out))
        worker.start()
        workers.append(worker)
        _until(lambda count=count: gate.stats().fleet_waiting == count)
    held.succeeded()
    assert [out.get(timeout=20) for _ in workers] == ["first", "second", "third"]
    for worker in workers:
        worker.join(10)


def test_a_cancelled_fleet_waiter_leaves_the_queue_and_gives_back_a_place_granted_to_it(
    redis_server: RedisServer,
) -> None:
    gate = _gate("https://modelslab.com/api/v7/llm", redis_server.url, pinned=1)

    async def cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def scenario() -> None:
        held = await gate.acquire_async(5)
        assert held is not None and held.lease
        waiting = asyncio.ensure_future(gate.acquire_async(30))
        while gate.stats().fleet_waiting != 1:
            await asyncio.sleep(0.005)
        await cancel(waiting)  # while it waits: it leaves the queue
        assert gate.stats().fleet_waiting == 0
        granted = asyncio.ensure_future(gate.acquire_async(30))
        while gate.stats().fleet_waiting != 1:
            await asyncio.sleep(0.005)
        held.succeeded()
        gate._link.flush(5)  # the release ran: the place is the waiter's in Redis
        assert gate.stats().fleet_in_flight == 1
        await cancel(granted)  # before it took the place: the place goes back

    asyncio.run(scenario())
    stats = gate.stats()
    assert (stats.fleet_in_flight, stats.fleet_waiting, stats.in_flight) == (0, 0, 0)
    permit = gate.acquire(5)
    assert permit is not None and permit.lease
    permit.succeeded()


def test_the_fleet_script_moves_the_limit_as_the_local_controller_does(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lua script repeats AdaptiveLimit's rules; its constants come from the same module
    (a probe slowdown other than the default shows a copy written into the script)."""
    monkeypatch.setattr(_limit, "PROBE_SLOWDOWN", 2.0)
    monkeypatch.setattr(_fleet, "PROBE_SLOWDOWN", 2.0)
    gate = _gate("https://modelslab.com/api/v7/llm", redis_server.url)
    control = AdaptiveLimit()
    held = [gate.acquire(5) for _ in range(5)]
    assert all(p is not None and p.lease for p in held)
    held[0].rate_limited()
    control.on_rate_limited(5, None, 0.0)
    for permit in held[1:]:
        permit.release()
    for _ in range(40):  # rounds that fill the limit: each answer may raise it
        limit = control.current()
        assert limit is not None and gate.stats().limit == limit
        round_ = [gate.acquire(5) for _ in range(limit)]
        for count, permit in enumerate(round_):
            assert permit is not None
            permit.succeeded()
            control.on_success(limit - count, 0, 0.0)
    assert gate.stats().limit == control.current() and control.current() > 4


# ----------------------------------------------------------------------------- streams


def test_a_stream_holds_its_fleet_place_while_it_runs_and_renews_its_lease(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fleet, "LEASE_SECONDS", 0.3)
    with LocalModelsLab(api_key=KEY, stream_delay=0.05) as server:
        client = ModelsLabClient(api_key=KEY, base_url=server.base_url, redis_url=redis_server.url)
        gate = client.flow_gate
        assert gate is not None
        request = {**REQUEST, "messages": [{"role": "user", "content": " ".join(["w"] * 30)}]}
        started = time.monotonic()
        chunks = 0
        with client.chat_stream(request) as stream:
            for _ in stream:
                chunks += 1
                assert gate.stats().fleet_in_flight == 1
        assert time.monotonic() - started > 1.0  # the stream outlived its lease several times
        assert gate.stats().fleet_in_flight == 0
        # A stream dropped half-read gives its place back.
        dropped = client.chat_stream(request)
        next(iter(dropped))
        assert gate.stats().fleet_in_flight == 1
        del dropped
        gc.collect()
        _until(lambda: gate.stats().fleet_in_flight == 0)


# ----------------------------------------------------------------------------- outages


async def test_redis_stopped_mid_burst_fails_no_call_and_sharing_resumes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fleet, "RETRY_REDIS_AFTER", 0.2)
    caplog.set_level(logging.WARNING, logger="modelslab_core.flow")
    with LocalModelsLab(api_key=KEY, queue_limit=3, latency=0.05, retry_after=1) as server:
        client = AsyncModelsLabClient(
            api_key=KEY, base_url=server.base_url, redis_url=redis_server.url
        )
        calls = [asyncio.create_task(client.chat(REQUEST)) for _ in range(60)]
        while server.request_count < 10:
            await asyncio.sleep(0.005)
        redis_server.stop()
        count = server.request_count
        while server.request_count < count + 15:
            await asyncio.sleep(0.005)
        redis_server.start()  # the same port, empty: a restart
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        outages = [r for r in caplog.records if "does not answer" in r.getMessage()]
        assert len(outages) == 1
        await asyncio.sleep(0.3)
        await client.chat(REQUEST)  # shared again
        gate = client.flow_gate
        assert gate is not None and gate.stats().shared
        assert any("answers again" in r.getMessage() for r in caplog.records)
        keys = redis.Redis.from_url(redis_server.url).keys("modelslab:*")
        assert keys


def test_with_no_redis_at_all_calls_go_through_the_local_gate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="modelslab_core.flow")
    from integration_tests.fleet.conftest import free_port

    nowhere = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"
    with LocalModelsLab(api_key=KEY) as server:
        client = ModelsLabClient(api_key=KEY, base_url=server.base_url, redis_url=nowhere)
        for _ in range(3):
            client.chat(REQUEST)
        gate = client.flow_gate
        assert gate is not None
        stats = gate.stats()
        assert not stats.shared and stats.admitted == 3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "hunter2" not in messages[0] and "***" in messages[0]


# ----------------------------------------------------------------------------- secrets


def test_neither_the_key_nor_its_digest_reaches_redis_nor_the_password_a_repr(
    redis_server: RedisServer,
) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.config_set("requirepass", "hunter2-password")
    url = f"redis://:hunter2-password@127.0.0.1:{redis_server.port}/0"
    with LocalModelsLab(api_key=KEY, queue_limit=2, latency=0.05, retry_after=1) as server:
        model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, redis_url=url)
        answers = model.batch(["a", "b", "c", "d", "e"])
        assert len(answers) == 5
        gate = ModelsLabClient(api_key=KEY, base_url=server.base_url, redis_url=url).flow_gate
        assert gate is not None and gate.stats().shared
        texts = [repr(model), str(model), model.model_dump_json(), repr(gate), repr(gate.stats())]
        texts.append(repr(ClientConfig.build(KEY, redis_url=url)))
        assert all("hunter2" not in text for text in texts)
    authed = redis.Redis(port=redis_server.port, password="hunter2-password")
    secret, digest = KEY.encode(), hashlib.sha256(KEY.encode()).hexdigest().encode()
    names = list(authed.scan_iter("*"))
    assert names and all(name.startswith(b"modelslab:{") for name in names)
    for name in names:
        dumped = authed.dump(name) or b""
        for text in (name, dumped):
            assert secret not in text and digest not in text
            assert digest[:16] not in text


def test_gate_stats_say_whether_a_gate_is_shared(redis_server: RedisServer) -> None:
    base_url = "https://modelslab.com/api/v7/llm"
    shared = _gate(base_url, redis_server.url, pinned=3)
    local = _gate(base_url, None)
    assert shared is not local
    permit = shared.acquire(5)
    assert permit is not None
    by_kind = {s.shared: s for s in gate_stats()}
    assert by_kind[True].fleet_in_flight == 1 and by_kind[True].limit == 3
    assert by_kind[False].fleet_in_flight is None
    permit.release()


def test_a_redis_that_never_answers_holds_no_call(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw socket that accepts and never answers (a hung Redis): the first call waits out
    the Redis timeout, then every call goes through the local gate; one WARNING."""
    monkeypatch.setattr(_fleet, "REDIS_TIMEOUT", 0.2)
    monkeypatch.setattr(_fleet, "BLOCK_SECONDS", 0.2)
    monkeypatch.setattr(_fleet, "RETRY_REDIS_AFTER", 60.0)
    caplog.set_level(logging.WARNING, logger="modelslab_core.flow")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        hung.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(hung.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        with LocalModelsLab(api_key=KEY) as server:
            client = ModelsLabClient(api_key=KEY, base_url=server.base_url, redis_url=url)
            for _ in range(3):
                client.chat(REQUEST)
            assert server.request_count == 3
        assert accepted  # the client did reach the hung "Redis"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        hung.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "does not answer (TimeoutError)" in messages[0]


def test_before_the_first_429_the_fleet_round_grows_by_one_per_accepted_stream_and_answer(
    redis_server: RedisServer,
) -> None:
    gate = _gate("https://modelslab.com/api/v7/llm", redis_server.url)
    held = [gate.acquire(5) for _ in range(COLD_START)]
    assert all(permit is not None for permit in held)
    assert gate.acquire(0.05) is None  # the first round is full
    first = held[0]
    assert first is not None
    first.accepted()  # a stream's first event, with the round full: one place more
    held.append(gate.acquire(5))
    assert held[-1] is not None
    assert gate.acquire(0.05) is None
    first.succeeded()  # an answer, with the round full: one place more, and its own back
    held += [gate.acquire(5), gate.acquire(5)]
    assert all(permit is not None for permit in held)
    assert gate.acquire(0.05) is None
    assert gate.stats().fleet_in_flight == COLD_START + 2
    for permit in held:
        assert permit is not None
        permit.release()


_EXIT_AFTER_RELEASES = """
import asyncio, sys
from modelslab_core import ModelsLabClient

async def main() -> None:
    client = ModelsLabClient(
        api_key=sys.argv[1], base_url=sys.argv[2], redis_url=sys.argv[3], max_in_flight=100
    )
    gate = client.flow_gate
    permits = [await gate.acquire_async(5) for _ in range(100)]
    assert all(p is not None and p.lease for p in permits)
    print("HELD", gate.stats().fleet_in_flight, flush=True)
    for permit in permits:
        permit.succeeded()  # from the loop: handed to the sender thread

asyncio.run(main())
"""


def test_releases_handed_to_the_sender_reach_redis_before_the_process_exits(
    redis_server: RedisServer,
) -> None:
    # A worker whose last calls end as it exits (a batch script, a benchmark child) must not
    # leave their places held in Redis until the lease expires: the fleet would run short.
    base_url = "https://modelslab.com/api/v7/llm"  # no request is sent
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_AFTER_RELEASES, KEY, base_url, redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["HELD", "100"]
    gate = _gate(base_url, redis_server.url, pinned=100)
    assert gate.stats().fleet_in_flight == 0
