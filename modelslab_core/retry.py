"""The one retry policy, pure: whether to try again after an error, and after how long.

Retried: connection errors, timeouts, 408, 409, 429 and 5xx. Never retried: 402 (no credits),
other 4xx, authentication errors, invalid responses. Backoff is exponential with jitter, 0.5 s
doubling to 8 s; a server's ``Retry-After`` header or ``retry_after`` body field (ModelsLab's 429
body) is honoured up to ``max_retry_after``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import APIError

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait. ``attempt`` counts retries already made (0 first)."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    #: A server asking for a longer wait than this is obeyed only up to this many seconds.
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True when ``error`` is worth another try and retries remain."""
        return attempt < self.max_retries and isinstance(error, APIError) and error.retryable

    def delay(
        self, error: BaseException, attempt: int, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        retry_after = error.retry_after if isinstance(error, APIError) else None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.initial_delay * (2**attempt), self.max_delay)
        uniform = rng.uniform if rng is not None else random.uniform
        spread: float = uniform(1 - self.jitter, 1.0)
        return float(base * spread)
