"""Trying again later: the one base class of passing failures, and the one rule for when.

    TryAgainLater              `retry_at` (epoch seconds) when the other side said when
    ├── MoneybirdTransient     timeouts, broken connections, 5xx, 429 (app.moneybird.errors)
    ├── WooCommerceTransient   the same, from the shop (app.woocommerce.errors)
    └── RateLimitBusy          woobird's own limiter has no slot soon enough (app.moneybird.ratelimit)

`retry_delay` is the rule the job layer defers a failed job by; `retry_at_from_header` reads the
moment a vendor named in `Retry-After`, however it wrote it.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

# Backoff across job tries: 5 s, 10 s, 20 s … never more than 10 minutes.
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 600.0
# After a rate-limit reset, spread the waiting jobs a little so they do not all wake at once.
RATE_LIMIT_SPREAD_SECONDS = 5.0
# Epoch seconds are about 1.7e9; a smaller Retry-After is a delay in seconds.
_EPOCH_THRESHOLD = 1e9


class TryAgainLater(Exception):
    """A failure that passes: the same request later will likely succeed.

    `retry_at` is the moment (epoch seconds) the other side said to come back, when it said one.
    Subclasses set it in their constructor; the class default means "as soon as backoff allows".
    """

    retry_at: float | None = None

    def retry_after_seconds(self, now: float | None = None) -> float:
        """Seconds from `now` (default: the clock) until a retry may succeed; 0 when no time was given."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - (time.time() if now is None else now))


def retry_delay(
    *,
    job_try: int,
    error: BaseException | None,
    now: float,
    scale: float = 1.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to defer the next try of a job that failed on try `job_try` (from 1) with `error`.

    Exponential backoff with full jitter (uniform between a small floor and the capped exponential),
    so jobs that failed together do not come back together. When the other side said when to come
    back (a 429's reset, a 503's Retry-After, the limiter's next slot), never earlier than that,
    whatever the cap: waiting less would only earn another refusal. `scale` shrinks the backoff
    (tests), never the named moment.
    """
    draw = rng or random
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, job_try - 1))
    delay = draw.uniform(1.0, max(1.0, ceiling)) * scale
    if isinstance(error, TryAgainLater) and error.retry_at is not None:
        until = error.retry_after_seconds(now)
        delay = max(delay, until + draw.uniform(0.0, RATE_LIMIT_SPREAD_SECONDS) * scale)
    return delay


def retry_at_from_header(value: str | None, *, now: float) -> float | None:
    """The moment a `Retry-After` (or `RateLimit-Reset`) header names, as epoch seconds.

    Moneybird sends absolute epoch seconds (not the RFC delay); a small number is read as a delay
    and an HTTP date as a date, in case a proxy answered instead. None when it names nothing.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
    if number < 0:
        return None
    return number if number > _EPOCH_THRESHOLD else now + number
