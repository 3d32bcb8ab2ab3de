"""The one retry policy, pure: whether to try again after an error, and after how long.

Retried: connection errors, timeouts, 408, 409, 429 and 5xx. Never retried: 402 (no credits),
other 4xx, authentication errors, invalid responses. Backoff is exponential with jitter, 0.5 s
doubling to 8 s. A server's ``Retry-After`` header or ``retry_after`` body field (ModelsLab's 429
body) replaces the backoff: the next attempt is never earlier than it asks, with jitter on top. A
server asking for more than ``max_retry_after`` seconds is not waited out: the error is raised at
once, carrying the server's message and the wait it asked for (``retry_after``), as openai-python
refuses to wait more than 60 s.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import APIError, retry_after_seconds

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date.

    None (no hint: the normal backoff applies) for a missing, empty, NaN, negative or unreadable
    value; a date in the past is 0; ``inf`` (or a number too large for a float) is infinity, a
    wait above any cap.
    """
    if not value:
        return None
    value = value.strip()
    seconds = retry_after_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait. ``attempt`` counts retries already made (0 first).

    ``max_retries=0`` means no retry of any kind.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    #: A server asking for a longer wait than this is not waited out: the error is raised at once.
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True when ``error`` is worth another try, retries remain, and the wait the server asked
        for (if any) is within ``max_retry_after``."""
        if attempt >= self.max_retries or not isinstance(error, APIError) or not error.retryable:
            return False
        return not self.exceeds_cap(error)

    def exceeds_cap(self, error: BaseException) -> bool:
        """True when the server asked for a wait longer than ``max_retry_after``."""
        retry_after = error.retry_after if isinstance(error, APIError) else None
        return retry_after is not None and not retry_after <= self.max_retry_after

    def delay(
        self, error: BaseException, attempt: int, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1``: never less than the server's
        ``retry_after`` (up to ``max_retry_after``), with up to ``jitter`` of it on top so that
        clients told the same wait do not all come back at once."""
        uniform = rng.uniform if rng is not None else random.uniform
        retry_after = error.retry_after if isinstance(error, APIError) else None
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            hint = min(retry_after, self.max_retry_after)
            return float(hint * uniform(1.0, 1.0 + self.jitter))
        base = min(self.initial_delay * (2**attempt), self.max_delay)
        spread: float = uniform(1 - self.jitter, 1.0)
        return float(base * spread)
