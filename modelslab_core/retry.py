"""The one retry policy, pure: whether to try again after an error, and after how long
(:class:`RetryPolicy`), applied to one call under the account's gate, the rate-limit budget and
the whole-call deadline (:class:`CallPlan`)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .config import DEFAULT_MAX_RETRIES, DEFAULT_RATE_LIMIT_BUDGET
from .errors import APIError, APITimeoutError, RateLimitError, retry_after_seconds

__all__ = ["CallPlan", "RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date.

    None (no hint: the normal backoff applies) for a missing, empty, NaN, negative or unreadable
    value; a date in the past is 0; ``inf`` (or a number too large for a float) is infinity, a
    wait above any cap.
    """
    if not value:
        return None
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

    Retried: connection errors, timeouts, 408, 409, 429 and 5xx (``APIError.retryable``); never
    402, other 4xx or invalid responses. Backoff doubles from 0.5 s to 8 s, with jitter. A server's
    ``Retry-After`` / ``retry_after`` is a floor (jitter on top); a wait above
    ``max_retry_after`` is not waited out: the error is raised at once, as openai-python does.
    ``max_retries=0`` means no retry of any kind.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0
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
        clients told the same wait do not all come back at once. A hint of 0 (or a date in the
        past), a negative, missing or unreadable one is no hint: the exponential backoff, so
        that a server answering ``Retry-After: 0`` is not asked again in a hot loop."""
        uniform = rng.uniform if rng is not None else random.uniform
        retry_after = error.retry_after if isinstance(error, APIError) else None
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            return min(retry_after, self.max_retry_after) * uniform(1.0, 1.0 + self.jitter)
        base = min(self.initial_delay * 2.0**attempt, self.max_delay)
        return base * uniform(1 - self.jitter, 1.0)


class CallPlan:
    """One call's retry decisions, without I/O, under the retry count, the rate-limit budget
    and the whole-call deadline.

    With the gate on (``gated``) a 429 spends no retry: the account is full, so the call waits
    at the head of its account's gate (:attr:`retry_at`) until a place frees or the server's
    ``retry_after`` passes (jitter on top; the backoff without a usable hint), within
    ``rate_limit_budget`` seconds of its first 429. A wait above the policy's
    ``max_retry_after`` is not waited out, and ``max_retries=0`` retries nothing, 429 included:
    the 429 is raised at once. Other retryable errors spend one of ``policy.max_retries``.
    Past ``deadline`` (monotonic seconds) the call ends with :class:`APITimeoutError`.
    """

    __slots__ = (
        "budget",
        "deadline",
        "expired",
        "gated",
        "last_rate_limit",
        "policy",
        "rate_limited_since",
        "rate_limits",
        "retries",
        "retry_at",
        "total_timeout",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        gated: bool = True,
        rate_limit_budget: float = DEFAULT_RATE_LIMIT_BUDGET,
        total_timeout: float | None = None,
        now: float | None = None,
    ) -> None:
        self.policy = policy
        self.gated = gated
        self.budget = rate_limit_budget
        self.total_timeout = total_timeout
        start = time.monotonic() if now is None else now
        self.deadline = None if total_timeout is None else start + total_timeout
        self.retries = 0
        self.rate_limits = 0
        self.rate_limited_since: float | None = None
        self.last_rate_limit: RateLimitError | None = None
        #: After a gated 429: the monotonic time until which the call waits at the head of the
        #: gate unless a place frees first (taken by the next admission, see :meth:`take_retry_at`).
        self.retry_at: float | None = None
        #: The error that ended the call at its deadline, once it did.
        self.expired: APITimeoutError | None = None

    def admission_timeout(self, now: float) -> float | None:
        """How long the gate may hold this call back (None: as long as it takes): until the
        deadline, and after a 429 until the rate-limit budget is spent."""
        bounds = []
        if self.deadline is not None:
            bounds.append(self.deadline - now)
        if self.rate_limited_since is not None:
            bounds.append(self.rate_limited_since + self.budget - now)
        return max(min(bounds), 0.0) if bounds else None

    def timeout_error(self, cause: BaseException | None = None) -> APITimeoutError:
        """The error that ends a call past its deadline."""
        detail = f"; last error: {type(cause).__name__}: {cause}" if cause is not None else ""
        limit = f"{self.total_timeout:g}" if self.total_timeout is not None else "?"
        self.expired = APITimeoutError(
            f"the call did not finish within total_timeout={limit} s{detail}"
        )
        return self.expired

    def admission_error(self, now: float) -> APIError:
        """The error that ends a call the gate held back past its admission timeout."""
        if self.deadline is not None and now >= self.deadline - 1e-9:
            return self.timeout_error(self.last_rate_limit)
        assert self.last_rate_limit is not None
        return self.last_rate_limit

    def take_retry_at(self) -> float | None:
        """The head-of-gate wait a gated 429 asked for, once (None: an ordinary admission)."""
        retry_at, self.retry_at = self.retry_at, None
        return retry_at

    def after_error(
        self, error: APIError, now: float, *, rng: random.Random | None = None
    ) -> float | APIError:
        """After ``error``: seconds to sleep before the next attempt, or the error to raise.
        A gated 429 sleeps 0 s: the wait happens at the gate, at its head (:attr:`retry_at`)."""
        if self.deadline is not None and now >= self.deadline:
            return error if error is self.expired else self.timeout_error(error)
        if isinstance(error, RateLimitError) and self.gated:
            if self.policy.max_retries == 0:
                return error
            self.last_rate_limit = error
            if self.rate_limited_since is None:
                self.rate_limited_since = now
            if self.policy.exceeds_cap(error):  # as openai-python: the typed error at once
                return error
            # The wait happens at the gate: it may end long before ``retry_after`` (a place of
            # the account frees), so the budget and the deadline bound it there, as
            # admission_timeout, not here.
            self.retry_at = now + self.policy.delay(error, self.rate_limits, rng=rng)
            self.rate_limits += 1
            return 0.0
        if not self.policy.should_retry(error, self.retries):
            return error
        wait = self.policy.delay(error, self.retries, rng=rng)
        self.retries += 1
        if self.deadline is not None and now + wait >= self.deadline:
            return self.timeout_error(error)
        return wait
