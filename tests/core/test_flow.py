"""The account gate without a server: the pure controller, one call's retry plan, and the
thread-safe gate across threads and event loops."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient, flow
from modelslab_core.errors import APITimeoutError, RateLimitError, ServerError
from modelslab_core.flow import (
    AdaptiveLimit,
    FlowGate,
    account_of,
    gate_for,
    gate_stats,
    parse_queue_limit,
    reset_gates,
)
from modelslab_core.retry import CallPlan, RetryPolicy

KEY = "sk-flow-SECRET-0123456789"


@pytest.fixture(autouse=True)
def _fresh_gates() -> None:
    reset_gates()


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        ("Rate limit exceeded. Maximum 5 queued requests allowed.", 5),
        ("Rate limit exceeded. Maximum 15 queued requests allowed.", 15),
        ("maximum 10 concurrent requests", 10),
        ("You can have at most 3 requests in the queue", 3),
        ("Max: 7 queued requests", 7),
        ("Rate limit exceeded.", None),
        ("Too many requests, retry after 30 seconds", None),
        ("Maximum 0 queued requests allowed.", None),
        ("", None),
        (None, None),
    ],
)
def test_the_queue_limit_is_read_from_any_wording_of_it_and_nothing_else(
    message: str | None, limit: int | None
) -> None:
    assert parse_queue_limit(message) == limit


# ----------------------------------------------------------------------------- the controller


def test_no_limit_until_the_first_429_only_a_slow_start() -> None:
    control = AdaptiveLimit()
    assert control.current() is None
    assert control.admits(flow.COLD_START - 1) and not control.admits(flow.COLD_START)
    # Each answer while the round is full lets one more out: the round doubles.
    for _ in range(flow.COLD_START):
        assert not control.on_success(in_flight=flow.COLD_START, waiting=100, now=0.0)
    assert control.admits(2 * flow.COLD_START - 1) and not control.admits(2 * flow.COLD_START)
    for _ in range(1000):
        control.on_success(in_flight=1, waiting=0, now=0.0)  # not full: nothing learned
    assert not control.admits(2 * flow.COLD_START)
    assert control.current() is None


def test_a_named_limit_is_learned_at_the_first_429() -> None:
    control = AdaptiveLimit()
    assert control.on_rate_limited(in_flight=300, named=5, now=0.0)
    assert control.current() == 5
    # The rest of the burst's 429s do not push it lower than what the server holds.
    for in_flight in range(299, 5, -1):
        control.on_rate_limited(in_flight=in_flight, named=5, now=0.0)
    assert control.current() == 5
    # Successes never raise it above the named limit while it is trusted.
    for _ in range(1000):
        control.on_success(in_flight=5, waiting=10, now=1.0)
    assert control.current() == 5


def test_without_a_named_limit_it_drops_to_what_the_server_held() -> None:
    control = AdaptiveLimit()
    # A burst of 300 against a queue of 7: 293 turned away while 7 stay in service.
    for in_flight in range(300, 7, -1):
        control.on_rate_limited(in_flight=in_flight, named=None, now=0.0)
    assert control.current() == 7


def _answers_until(
    control: AdaptiveLimit, done: Callable[[], bool], in_flight: int, now: float
) -> int:
    """Answer calls while ``in_flight`` fill the limit and more wait, until ``done()``; returns
    how many answers it took (at most 10,000)."""
    for answers in range(1, 10_001):
        control.on_success(in_flight=in_flight, waiting=3, now=now)
        if done():
            return answers
    raise AssertionError(f"not done after 10,000 answers: limit {control.current()}")


def test_growth_only_while_the_limit_is_filled() -> None:
    control = AdaptiveLimit()
    control.on_rate_limited(in_flight=6, named=None, now=0.0)
    assert control.current() == 5
    for _ in range(1000):
        control.on_success(in_flight=2, waiting=0, now=1.0)  # idle: nothing learned
    assert control.current() == 5
    answers = _answers_until(control, lambda: control.current() != 5, in_flight=5, now=1.0)
    assert control.current() == 6  # one place more at a time
    assert answers > 5  # a probe: slower than a place per limit's worth of answers


def test_a_named_limit_is_probed_after_its_trust_runs_out() -> None:
    control = AdaptiveLimit(trust=600.0)
    control.on_rate_limited(in_flight=50, named=5, now=0.0)
    control.limit = 4.0  # a race (or another process) left it below the named limit
    _answers_until(control, lambda: control.current() != 4, in_flight=4, now=1.0)
    assert control.current() == 5  # back to the named limit, no further while it is trusted
    for _ in range(1000):
        control.on_success(in_flight=5, waiting=1, now=599.0)
    assert control.current() == 5
    _answers_until(control, lambda: control.current() != 5, in_flight=5, now=601.0)
    assert control.current() == 6  # a plan that grew is found


def test_pinned_ignores_429s_but_remembers_the_named_limit() -> None:
    control = AdaptiveLimit(pinned=3)
    assert not control.on_rate_limited(in_flight=3, named=10, now=0.0)
    assert control.current() == 3
    assert control.named == 10


def _simulate(
    queue: int, controllers: list[AdaptiveLimit], named: bool, rounds: int = 400
) -> tuple[list[int], int]:
    """A server holding at most ``queue`` requests, each answered after one round; every
    controller has many callers waiting. Returns the answers per round and the 429s."""
    held: list[list[int]] = [[] for _ in controllers]  # the round each request was admitted
    answered: list[int] = []
    rejected = 0
    for now in range(rounds):
        done = 0
        for index, control in enumerate(controllers):
            for _ in [r for r in held[index] if r < now]:
                control.on_success(len(held[index]), waiting=1, now=float(now))
                held[index].remove(min(held[index]))
                done += 1
        answered.append(done)
        for index, control in enumerate(controllers):
            while control.admits(len(held[index])):
                if sum(len(h) for h in held) >= queue:
                    rejected += 1
                    held[index].append(now)  # counted in flight when the 429 comes back
                    control.on_rate_limited(len(held[index]), queue if named else None, now)
                    held[index].pop()
                    break
                held[index].append(now)
    return answered, rejected


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("queue", [5, 10])
def test_one_process_settles_at_the_queue(queue: int, named: bool) -> None:
    answered, rejected = _simulate(queue, [AdaptiveLimit()], named, rounds=400)
    steady = answered[20:]
    assert sum(steady) >= 0.95 * queue * len(steady)
    # A named limit is trusted: no probe. Otherwise a probe now and then: at most one round in
    # four turns a call away (a probe as fast as a recovery turns one away every other round).
    assert rejected <= (1 if named else 400 / 4)


@pytest.mark.parametrize("named", [True, False])
def test_two_processes_sharing_a_key_settle_without_talking(named: bool) -> None:
    queue = 10
    answered, _ = _simulate(queue, [AdaptiveLimit(), AdaptiveLimit()], named)
    steady = answered[20:]
    assert sum(steady) >= 0.9 * queue * len(steady)


# ----------------------------------------------------------------------------- one call's plan


def _rate_limit(retry_after: float | None = 1.0) -> RateLimitError:
    return RateLimitError("Rate limit exceeded.", status_code=429, retry_after=retry_after)


def test_a_429_spends_no_retry_while_the_budget_lasts() -> None:
    policy = RetryPolicy(max_retries=2)
    plan = CallPlan(policy, rate_limit_budget=10.0, now=0.0)
    now = 0.0
    for _ in range(7):
        assert plan.after_error(_rate_limit(1.0), now) == 0.0  # the wait is at the gate
        retry_at = plan.take_retry_at()
        assert retry_at is not None and 1.0 <= retry_at - now <= 1.0 * (1 + policy.jitter)
        assert plan.take_retry_at() is None  # taken once
        now = retry_at
    assert plan.retries == 0
    # A server error still spends the retry count.
    assert isinstance(plan.after_error(ServerError("boom", status_code=500), now), float)
    assert isinstance(plan.after_error(ServerError("boom", status_code=500), now), float)
    error = ServerError("boom", status_code=500)
    assert plan.after_error(error, now) is error


def test_the_budget_ends_with_the_servers_rate_limit_error() -> None:
    plan = CallPlan(RetryPolicy(), rate_limit_budget=5.0, now=0.0)
    assert isinstance(plan.after_error(_rate_limit(3.0), 0.0), float)
    last = _rate_limit(3.0)
    assert plan.after_error(last, 3.5) == 0.0  # a place may free before the 3 s: wait at the gate
    assert plan.admission_timeout(3.5) == 1.5  # ... for what is left of the budget
    assert plan.admission_error(5.0) is last
    # A wait longer than the whole budget is not waited out at all.
    fresh = CallPlan(RetryPolicy(), rate_limit_budget=5.0, now=0.0)
    long = _rate_limit(600.0)
    assert fresh.after_error(long, 0.0) is long


def test_max_retries_zero_raises_a_429_at_once() -> None:
    plan = CallPlan(RetryPolicy(max_retries=0), now=0.0)
    error = _rate_limit(0.0)
    assert plan.after_error(error, 0.0) is error


def test_without_the_gate_a_429_spends_a_retry() -> None:
    plan = CallPlan(RetryPolicy(max_retries=1), gated=False, now=0.0)
    assert isinstance(plan.after_error(_rate_limit(0.0), 0.0), float)
    error = _rate_limit(0.0)
    assert plan.after_error(error, 0.0) is error


def test_the_deadline_ends_the_call_with_a_timeout_error() -> None:
    plan = CallPlan(RetryPolicy(), total_timeout=2.0, now=0.0)
    assert plan.after_error(_rate_limit(5.0), 0.5) == 0.0  # the wait is at the gate...
    assert plan.admission_timeout(0.5) == 1.5  # ... up to the deadline
    outcome = plan.admission_error(2.0)
    assert isinstance(outcome, APITimeoutError)
    assert "total_timeout=2 s" in str(outcome) and "RateLimitError" in str(outcome)


def test_admission_timeout_is_the_nearer_of_deadline_and_budget() -> None:
    plan = CallPlan(RetryPolicy(), rate_limit_budget=10.0, total_timeout=30.0, now=0.0)
    assert plan.admission_timeout(1.0) == 29.0
    plan.after_error(_rate_limit(1.0), 2.0)
    assert plan.admission_timeout(3.0) == 9.0
    assert isinstance(plan.admission_error(12.0), RateLimitError)
    assert isinstance(plan.admission_error(30.0), APITimeoutError)
    assert CallPlan(RetryPolicy(), now=0.0).admission_timeout(5.0) is None


# ----------------------------------------------------------------------------- the gate


def test_one_gate_per_account_and_host() -> None:
    one = gate_for(account_of(KEY, "https://modelslab.com/api/v7/llm"))
    assert gate_for(account_of(KEY, "https://modelslab.com/api/v6")) is one
    assert gate_for(account_of(KEY, "https://other.example/api/v7/llm")) is not one
    assert gate_for(account_of("another-key", "https://modelslab.com/api/v7/llm")) is not one
    assert KEY not in repr(one) and KEY not in repr(one.stats())
    assert one.stats().account == account_of(KEY, "x://y")[0][:8]


def test_pinned_gate_admits_at_most_n_and_hands_places_on_in_order() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=2)
    first, second = gate.try_acquire(), gate.try_acquire()
    assert first is not None and second is not None
    assert gate.try_acquire() is None
    assert gate.acquire(timeout=0.01) is None
    first.succeeded()
    first.succeeded()  # released exactly once
    first.release()
    stats = gate.stats()
    assert (stats.in_flight, stats.limit, stats.pinned, stats.waiting) == (1, 2, True, 0)
    third = gate.try_acquire()
    assert third is not None and gate.try_acquire() is None
    second.release()
    third.release()
    assert gate.stats().in_flight == 0


def test_threads_share_one_gate() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=3)
    running = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def work() -> None:
        nonlocal running, peak
        barrier.wait()
        for _ in range(20):
            permit = gate.acquire()
            assert permit is not None
            with lock:
                running += 1
                peak = max(peak, running)
            with lock:
                running -= 1
            permit.succeeded()

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = gate.stats()
    assert peak <= 3 and stats.peak_in_flight <= 3
    assert stats.admitted == 240 and stats.in_flight == 0 and stats.waiting == 0


def test_two_event_loops_in_two_threads_share_one_gate() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=2)
    held = gate.try_acquire(), gate.try_acquire()
    results: list[str] = []

    def loop_thread(name: str) -> None:
        async def main() -> None:
            permit = await gate.acquire_async()
            assert permit is not None
            results.append(name)
            await asyncio.sleep(0)
            permit.succeeded()

        asyncio.run(main())

    threads = [threading.Thread(target=loop_thread, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    while gate.stats().waiting < 3:
        threading.Event().wait(0.005)
    assert results == []  # every loop waits; none of them is blocked
    for permit in held:
        assert permit is not None
        permit.release()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["a", "b", "c"]
    assert gate.stats().in_flight == 0


async def test_an_async_waiter_does_not_block_its_loop() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    held = gate.try_acquire()
    assert held is not None
    waiter = asyncio.create_task(gate.acquire_async())
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not waiter.done()
    held.release()
    permit = await waiter
    assert permit is not None
    permit.release()


async def test_cancelling_a_waiter_gives_back_a_place_granted_meanwhile() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    held = gate.try_acquire()
    assert held is not None
    waiter = asyncio.create_task(gate.acquire_async())
    await asyncio.sleep(0)
    held.release()  # the place goes to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.stats().in_flight == 0
    permit = gate.try_acquire()
    assert permit is not None
    permit.release()


async def test_an_async_wait_times_out() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    held = gate.try_acquire()
    assert held is not None
    assert await gate.acquire_async(timeout=0.01) is None
    assert gate.stats().waiting == 0
    held.release()


def test_a_closed_loops_waiter_does_not_keep_a_place() -> None:
    gate = FlowGate("https://h", "abcd1234", pinned=1)
    held = gate.try_acquire()
    assert held is not None
    loop = asyncio.new_event_loop()
    task = loop.create_task(gate.acquire_async())
    loop.run_until_complete(asyncio.sleep(0))
    assert gate.stats().waiting == 1
    loop.close()  # the waiter's loop goes away with the waiter still queued
    held.release()
    assert gate.stats().in_flight == 0
    assert not task.done()


def test_a_limit_change_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    gate = gate_for(account_of(KEY, "https://modelslab.com/api/v7/llm"))
    caplog.set_level(logging.INFO, logger="modelslab_core.flow")
    permits = [gate.try_acquire() for _ in range(8)]
    for permit in permits[:3]:
        assert permit is not None
        permit.rate_limited(5)
    lines = [r.getMessage() for r in caplog.records]
    assert any("queue limit none -> 5" in line for line in lines), lines
    assert all(KEY not in line for line in lines)
    assert all("modelslab.com" in line for line in lines)
    stats = gate.stats()
    assert (stats.limit, stats.named_limit, stats.rate_limited) == (5, 5, 3)
    for permit in permits[3:]:
        assert permit is not None
        permit.succeeded()


def test_a_burst_of_429s_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    gate = FlowGate("https://h", "abcd1234")
    caplog.set_level(logging.INFO, logger="modelslab_core.flow")
    permits = [gate.try_acquire() for _ in range(8)]  # the first round of the slow start
    for permit in permits[:-4]:
        assert permit is not None
        permit.rate_limited(None)
    assert not caplog.records
    for permit in permits[-4:]:
        assert permit is not None
        permit.succeeded()
    assert len(caplog.records) == 1
    assert "none -> 4 (after 4 rate-limited requests)" in caplog.records[0].getMessage()


def test_gate_stats_lists_every_gate() -> None:
    gate_for(account_of(KEY, "https://a.example"))
    gate_for(account_of(KEY, "https://b.example"))
    assert sorted(s.host for s in gate_stats()) == ["https://a.example", "https://b.example"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_no_gates() -> None:
    gate = gate_for(account_of(KEY, "https://a.example"))
    permit = gate.try_acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        fresh = gate_for(account_of(KEY, "https://a.example"))
        ok = fresh is not gate and fresh.stats().in_flight == 0 and len(gate_stats()) == 1
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
    assert gate_for(account_of(KEY, "https://a.example")) is gate
    assert permit is not None
    permit.release()


def test_an_endless_wait_is_never_waited() -> None:
    plan = CallPlan(RetryPolicy(), now=0.0)
    error = _rate_limit(float("inf"))
    assert plan.after_error(error, 0.0) is error


def test_past_the_deadline_every_error_ends_the_call() -> None:
    plan = CallPlan(RetryPolicy(max_retries=5), total_timeout=1.0, now=0.0)
    outcome = plan.after_error(ServerError("boom", status_code=503), 1.5)
    assert isinstance(outcome, APITimeoutError) and outcome is plan.expired
    assert plan.after_error(outcome, 1.6) is outcome  # the deadline's own error is final


# ----------------------------------------------------------------------------- the clients


def _clients(handler: Any, **options: Any) -> tuple[ModelsLabClient, AsyncModelsLabClient]:
    import httpx

    options.setdefault("api_key", KEY)
    transport = httpx.MockTransport(handler)
    sync = ModelsLabClient(http_client=httpx.Client(transport=transport), **options)
    async_ = AsyncModelsLabClient(http_client=httpx.AsyncClient(transport=transport), **options)
    return sync, async_


def _scripted(statuses: list[int]) -> tuple[Any, list[int]]:
    import httpx

    seen: list[int] = []

    def handler(request: Any) -> httpx.Response:
        status = statuses[len(seen)] if len(seen) < len(statuses) else 200
        seen.append(status)
        if status == 429:
            body = {
                "status": "error",
                "message": "Maximum 3 queued requests allowed.",
                "retry_after": 0.01,  # short (0 would be no hint: the backoff)
            }
            return httpx.Response(429, json=body)
        if status >= 500:
            return httpx.Response(status, json={"status": "error", "message": "down"})
        answer = {
            "id": "x",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        }
        return httpx.Response(200, json=answer)

    return handler, seen


REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_clients_a_429_spends_no_retry(mode: str) -> None:
    handler, seen = _scripted([429, 429, 429, 429, 503, 429])
    sync, async_ = _clients(handler, max_retries=1)
    answer = sync.chat(REQUEST) if mode == "sync" else await async_.chat(REQUEST)
    assert answer.choices[0].message.content == "ok"
    assert seen == [429, 429, 429, 429, 503, 429, 200]
    gate = sync.flow_gate
    assert gate is not None and gate is async_.flow_gate
    stats = gate.stats()
    # Each 429 left the limit at what the server held of ours (nothing else: 1).
    assert (stats.limit, stats.named_limit, stats.rate_limited, stats.in_flight) == (1, 3, 5, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_clients_without_the_gate_a_429_spends_a_retry(mode: str) -> None:
    handler, seen = _scripted([429, 429, 429])
    sync, async_ = _clients(handler, max_retries=1, flow_control=False)
    with pytest.raises(RateLimitError, match="Maximum 3 queued requests"):
        sync.chat(REQUEST) if mode == "sync" else await async_.chat(REQUEST)
    assert seen == [429, 429]
    assert sync.flow_gate is None and gate_stats() == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_clients_max_in_flight_pins_the_account(mode: str) -> None:
    handler, _ = _scripted([])
    sync, async_ = _clients(handler, max_in_flight=2)
    sync.chat(REQUEST) if mode == "sync" else await async_.chat(REQUEST)
    [stats] = gate_stats()
    assert (stats.limit, stats.pinned, stats.admitted) == (2, True, 1)
