"""The retry policy, pure: what is retried, and after how long."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from modelslab_core import errors as e
from modelslab_core.retry import RetryPolicy, parse_retry_after


def test_only_retryable_errors_are_retried_and_only_within_max_retries() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.should_retry(e.ServerError("x", status_code=500), 0)
    assert policy.should_retry(e.RateLimitError("x", status_code=429), 1)
    assert not policy.should_retry(e.RateLimitError("x", status_code=429), 2)
    assert not policy.should_retry(e.InsufficientCreditsError("x", status_code=402), 0)
    assert not policy.should_retry(e.AuthenticationError("x", status_code=401), 0)
    assert not policy.should_retry(ValueError("x"), 0)
    assert not RetryPolicy(max_retries=0).should_retry(e.APIConnectionError("x"), 0)


def test_the_backoff_doubles_up_to_its_cap_and_jitter_spreads_it_below() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=4.0, jitter=0.5)
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0, 4.0, 4.0]):
        delays = [
            policy.delay(e.ServerError("x"), attempt, rng=random.Random(seed)) for seed in range(50)
        ]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempt, delays)
        assert max(delays) - min(delays) > ceiling / 4  # callers do not come back at once


def test_a_server_hint_is_a_floor_up_to_the_cap_with_jitter_on_top() -> None:
    policy = RetryPolicy(max_retry_after=60)  # the hint, with up to the jitter on top
    top = 1 + policy.jitter
    assert 30 <= policy.delay(e.RateLimitError("x", retry_after=30), 0) <= 30 * top
    assert 60 <= policy.delay(e.RateLimitError("x", retry_after=600), 0) <= 60 * top
    assert 2 <= policy.delay(e.ServerError("x", retry_after=2), 3) <= 2 * top


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0.25", 0.25), ("-3", None), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds_is_read_and_a_negative_or_garbage_one_is_none(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date_is_the_seconds_until_then() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=10), usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(10)
