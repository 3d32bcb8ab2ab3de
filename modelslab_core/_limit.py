"""The account gate's controller, pure: what a 429 message names, and how the limit of requests
admitted at once moves with answers and 429s. No I/O, no locks, no clock: ``now`` is passed in.

The local gate (:mod:`modelslab_core.flow`) runs it under a lock; the fleet gate on Redis
(:mod:`modelslab_core._fleet`) runs the same rules in a Lua script, on state shared by every
process using the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COLD_START",
    "PROBE_SLOWDOWN",
    "TRUST_NAMED_LIMIT",
    "AdaptiveLimit",
    "parse_queue_limit",
]

#: Seconds a queue limit named by a 429 message is trusted before the gate probes above it.
TRUST_NAMED_LIMIT = 600.0
#: A probe (growth soon after a 429, or with no named limit to recover to) is this many times
#: slower than a recovery: one place more per this many limits' worth of answers.
PROBE_SLOWDOWN = 8.0
#: Before the first 429 the gate lets calls out in rounds: this many at once (more than the largest
#: plan's queue, 15, so that no plan waits a round for it), one more for each answer while they
#: fill the round (so the round doubles), like TCP's slow start. A burst of 300 then costs a
#: handful of 429s, not 295 requests sent only to be turned away (each told to wait
#: ``retry_after``: 30 s on the live API).
COLD_START = 16
_QUEUE_LIMIT = re.compile(
    r"(?:maximum|max\.?|at most|limit(?: of| is)?)\s*:?\s*(\d{1,6})\s+"
    r"(?:queued|concurrent|simultaneous|parallel|pending|active|in[- ]flight)?\s*"
    r"(?:requests?|calls?|jobs?)",
    re.IGNORECASE,
)


def parse_queue_limit(message: str | None) -> int | None:
    """The queue limit a 429 message names (``Maximum 5 queued requests allowed.`` → 5), or None
    when it names none."""
    if not message:
        return None
    match = _QUEUE_LIMIT.search(message)
    if match is None:
        return None
    limit = int(match.group(1))
    return limit if limit >= 1 else None


@dataclass
class AdaptiveLimit:
    """The controller of one gate, without I/O or locks: what the limit is, and how a 429 or a
    success moves it. ``now`` is ``time.monotonic()`` seconds.

    ``limit`` is None until the first 429 (no limit known): meanwhile ``window`` requests go out
    at once, one more for each answer while they fill it (:data:`COLD_START`). ``pinned``
    overrides everything. ``named`` is the queue limit a 429 message named, trusted until
    ``named_until``.
    """

    pinned: int | None = None
    limit: float | None = None
    window: float = COLD_START
    #: Answers since the last 429.
    quiet: int = 0
    named: int | None = None
    named_until: float = 0.0
    trust: float = TRUST_NAMED_LIMIT

    def current(self) -> int | None:
        """The number of requests admitted at once; None: no limit."""
        if self.pinned is not None:
            return self.pinned
        if self.limit is None:
            return None
        return max(1, int(self.limit))

    def admits(self, in_flight: int) -> bool:
        """Whether one more request may go out with ``in_flight`` already out."""
        limit = self.current()
        return in_flight < (self.window if limit is None else limit)

    def on_success(self, in_flight: int, waiting: int, now: float) -> bool:
        """A request was answered. ``in_flight`` counts it; ``waiting`` counts callers held back.
        Grows the limit only while the requests fill it (nothing is learned otherwise). Returns
        whether :meth:`current` changed."""
        if self.pinned is not None:
            return False
        if self.limit is None:  # before the first 429: the round grows by one per answer
            self.on_accepted(in_flight, waiting)
            return False
        before = self.current()
        if waiting == 0 and in_flight < int(self.limit):
            return False
        ceiling = self.named if self.named is not None and now < self.named_until else None
        self.quiet += 1
        step = 1.0 / self.limit  # one place more per limit's worth of answers...
        if ceiling is None or self.limit >= ceiling or self.quiet < 2 * self.limit:
            # ...but slowly above a named limit, without one, or soon after a 429: a place more
            # than the account's share costs a 429 (processes sharing a key collide less often)
            step /= PROBE_SLOWDOWN
        grown = self.limit + step
        if ceiling is not None:
            grown = min(grown, float(ceiling))
        self.limit = max(self.limit, grown)
        return self.current() != before

    def on_accepted(self, in_flight: int, waiting: int) -> None:
        """A stream's first event arrived: the server took the request, which will hold its
        place until the stream ends. Before the first 429 the round grows as for an answer, so
        that many concurrent streams do not wait a whole stream's length per round."""
        if (
            self.pinned is None
            and self.limit is None
            and (waiting or in_flight >= int(self.window))
        ):
            self.window += 1

    def on_rate_limited(self, in_flight: int, named: int | None, now: float) -> bool:
        """A request was turned away with a 429. ``in_flight`` counts it: the others are what the
        server was holding of ours, an upper bound on our share of the account's queue. ``named``
        is the queue limit the message named, if any. Returns whether :meth:`current` changed."""
        if named is not None:
            self.named = named
            self.named_until = now + self.trust
        self.quiet = 0
        if self.pinned is not None:
            return False
        before = self.current()
        new = float(max(in_flight - 1, 1))
        if named is not None:
            new = min(new, float(named))
        if self.limit is not None:
            new = min(new, float(int(self.limit)))
        self.limit = new
        return self.current() != before
