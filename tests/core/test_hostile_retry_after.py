"""Hostile ``Retry-After`` values and the retry budget, over real sockets.

Every value a server may send has a defined outcome: NaN, negative and garbage hints are ignored
(the normal backoff applies), infinity and any wait above ``max_retry_after`` (60 s, as
openai-python) raise the typed error at once with the server's message and the wait it asked for.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient
from modelslab_core import errors as e
from modelslab_core.retry import RetryPolicy, parse_retry_after
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "retry-test-key"
REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = "Rate limit exceeded. Maximum 5 queued requests allowed."


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    """The plugin's session server, reset for this test, checking this suite's key."""
    modelslab_server.api_key = KEY
    return modelslab_server


def limited(
    header: str | None = None, body_field: Any = None, status: int = 429, message: str = MESSAGE
) -> Reply:
    body: dict[str, Any] = {"status": "error", "message": message}
    if body_field is not None:
        body["retry_after"] = body_field
    headers = {"Retry-After": header} if header is not None else None
    return Reply.raw(status, json.dumps(body), "application/json", headers)


def sync_chat(server: LocalModelsLab, **kwargs: Any) -> str:
    with ModelsLabClient(api_key=KEY, base_url=server.base_url, timeout=1, **kwargs) as client:
        return client.chat(REQUEST).choices[0].message.content or ""


def async_chat(server: LocalModelsLab, **kwargs: Any) -> str:
    async def run() -> str:
        client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, timeout=1, **kwargs)
        # A NaN hint must not sleep "until some other timer fires": bound the whole call.
        answer = await asyncio.wait_for(client.chat(REQUEST), 20)
        return answer.choices[0].message.content or ""

    return asyncio.run(run())


CALLS = {"sync": sync_chat, "async": async_chat}


# --- parsing: a defined outcome for every value -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nan", None),
        ("NaN", None),
        ("-nan", None),
        ("-3", None),
        ("-inf", None),
        ("soon", None),
        ("1_000", None),
        ("0x10", None),
        ("", None),
        ("   ", None),
        ("5", 5.0),
        (" 0.25 ", 0.25),
        ("0", 0.0),
    ],
)
def test_retry_after_header_values_have_defined_outcomes(
    value: str, expected: float | None
) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400"])
def test_an_infinite_wait_is_kept_so_it_exceeds_any_cap(value: str) -> None:
    assert parse_retry_after(value) == float("inf")


def test_http_dates_past_future_and_broken() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    future = format_datetime(now + timedelta(seconds=90), usegmt=True)
    past = format_datetime(now - timedelta(days=1), usegmt=True)
    assert parse_retry_after(future, now=now) == pytest.approx(90)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("Mon, 99 Foo 9999 99:99:99 GMT", now=now) is None


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (30, 30.0),
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("nan", None),
        ("NaN", None),
        (-5, None),
        ("-5", None),
        ("soon", None),
        (True, None),
        ([30], None),
        ({"seconds": 30}, None),
        ("inf", float("inf")),
        pytest.param("30\x1f", None, id="a-separator-strip-drops-but-float-refuses"),
        pytest.param(10**400, float("inf"), id="int-too-large-for-a-float"),
    ],
)
def test_body_retry_after_values_have_defined_outcomes(field: Any, expected: float | None) -> None:
    body = {"status": "error", "message": MESSAGE, "retry_after": field}
    error = e.error_from_response(429, json.dumps(body).encode())
    assert isinstance(error, e.RateLimitError)
    assert error.retry_after == expected
    assert error.message == MESSAGE


def test_a_garbage_header_falls_back_to_the_body_field() -> None:
    error = e.error_from_response(
        429,
        json.dumps({"message": MESSAGE, "retry_after": "7"}).encode(),
        retry_after_header=parse_retry_after("nan"),
    )
    assert error.retry_after == 7.0


# --- the policy ---------------------------------------------------------------------------------


def test_a_wait_above_the_cap_is_not_retried() -> None:
    policy = RetryPolicy(max_retries=5, max_retry_after=60)
    assert policy.should_retry(e.RateLimitError("x", retry_after=60), 0)
    assert not policy.should_retry(e.RateLimitError("x", retry_after=60.5), 0)
    assert not policy.should_retry(e.ServerError("x", retry_after=3600), 0)
    assert not policy.should_retry(e.RateLimitError("x", retry_after=float("inf")), 0)
    assert not RetryPolicy(max_retries=0).should_retry(e.RateLimitError("x", retry_after=0), 0)


def test_the_next_attempt_is_never_earlier_than_the_hint_jitter_on_top() -> None:
    policy = RetryPolicy(max_retry_after=60, initial_delay=0.5, jitter=0.25)
    rng = random.Random(3)
    delays = [policy.delay(e.RateLimitError("x", retry_after=10), 0, rng=rng) for _ in range(50)]
    assert all(10 <= d <= 12.5 for d in delays)
    assert len(set(delays)) > 1  # spread: clients told the same wait do not come back together
    # A hint of 0 is no hint: the backoff (0.5 s with jitter below it), never a hot loop.
    assert 0.375 <= policy.delay(e.RateLimitError("x", retry_after=0), 0) <= 0.5


def test_delay_is_a_finite_number_whatever_the_error_holds() -> None:
    policy = RetryPolicy(initial_delay=0.5)
    for hint in (float("nan"), float("inf"), -1.0):
        delay = policy.delay(e.RateLimitError("x", retry_after=hint), 1, rng=random.Random(0))
        assert 0 < delay <= 1.0  # the backoff, 1 s with jitter below it


# --- over real sockets --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("header", ["nan", "-1", "soon", "Mon, 99 Foo 9999 99:99:99 GMT"])
def test_a_meaningless_hint_is_retried_with_the_normal_backoff(
    server: LocalModelsLab, mode: str, header: str
) -> None:
    """A hint that is no number of seconds (``nan``, negative, garbage) falls back to the normal
    backoff, sync and async: no bare ValueError from ``time.sleep``, no wait on another timer."""
    server.enqueue(limited(header=header), Reply.text("after the backoff"))
    assert CALLS[mode](server, max_retries=1) == "after the backoff"
    assert server.request_count == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_nan_body_field_as_a_string_is_ignored_too(server: LocalModelsLab, mode: str) -> None:
    server.enqueue(limited(body_field="nan"), Reply.text("ok"))
    assert CALLS[mode](server, max_retries=1) == "ok"
    assert server.request_count == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("header", "body_field", "asked"),
    [
        ("3600", None, 3600.0),
        (None, "3600", 3600.0),
        (None, 400, 400.0),  # above the cap, and above the rate-limit budget (300 s)
        ("inf", None, float("inf")),
        ("Wed, 01 Jan 2099 00:00:00 GMT", None, None),
    ],
)
def test_a_wait_above_the_cap_raises_at_once_with_message_and_wait(
    server: LocalModelsLab, mode: str, header: str | None, body_field: Any, asked: float | None
) -> None:
    """A wait above the cap (``Retry-After: 3600``) is raised after the first request, not
    waited for (capped) once per retry."""
    server.enqueue(limited(header=header, body_field=body_field), Reply.text("never reached"))
    with pytest.raises(e.RateLimitError) as caught:
        CALLS[mode](server, max_retries=2)
    assert server.request_count == 1
    assert caught.value.message == MESSAGE
    assert caught.value.status_code == 429
    if asked is None:  # an HTTP date decades ahead
        assert caught.value.retry_after is not None and caught.value.retry_after > 60
    else:
        assert caught.value.retry_after == asked
    assert "retry after" in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_503_with_a_long_wait_is_raised_at_once(server: LocalModelsLab, mode: str) -> None:
    server.enqueue(limited(header="600", status=503, message="down for maintenance"))
    with pytest.raises(e.ServerError, match="down for maintenance") as caught:
        CALLS[mode](server, max_retries=3)
    assert caught.value.retry_after == 600
    assert server.request_count == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_wait_within_the_cap_is_still_obeyed(server: LocalModelsLab, mode: str) -> None:
    server.enqueue(limited(header="0", body_field=0), Reply.text("second try"))
    assert CALLS[mode](server, max_retries=1) == "second try"
    assert server.request_count == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("header", ["61", "120", "299"])
@pytest.mark.parametrize("flow_control", [False, True])
def test_a_429_above_60_s_raises_at_once_with_or_without_the_gate(
    server: LocalModelsLab, mode: str, header: str, flow_control: bool
) -> None:
    """The policy's cap (60 s, as openai-python's) holds for every 429: the account gate waits
    out a 429 within ``rate_limit_budget`` only when its wait is within the cap."""
    server.enqueue(limited(header=header), Reply.text("never reached"))
    with pytest.raises(e.RateLimitError) as caught:
        CALLS[mode](server, max_retries=2, flow_control=flow_control)
    assert caught.value.retry_after == float(header)
    assert server.request_count == 1
