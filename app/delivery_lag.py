"""How late the shop's webhooks arrive: the moment a delivery is received minus the order's
`date_modified_gmt`.

WooCommerce does not send a webhook when the order changes: it queues an Action Scheduler action,
and the queue is run by WP-Cron, which a default WordPress host only runs when someone opens a
page (and Action Scheduler's own runner at most once a minute, on admin pages). On a quiet shop an
order therefore reaches woobird a minute or more after it was paid. Each delivery's lag goes into a
histogram (/metrics, labelled by connection) and into a short list per connection in Redis that
every web process shares (each process sends what it measured once per FLUSH_SECONDS, in one round
trip, so that measuring costs the webhook's hot path no Redis call of its own); the shop's dashboard,
`woobird status` and `woobird check` read the median of the recent ones and, when it is high, tell
the owner to run WP-Cron from a system cron (README, "Prompt deliveries").

The shop's date is outside input: a shop whose clock runs ahead gives negative lags (counted as 0),
and a date from long ago (a wrong clock, a hand-made delivery) counts as at most MAX_LAG_SECONDS,
so one odd delivery can neither push the median below zero nor make the histogram meaningless.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from babel.numbers import format_decimal

from app.constants import DELIVERY_LAG_FLUSH_SECONDS, DELIVERY_LAG_KEY, ENVIRONMENT_CONNECTION_ID
from app.i18n import N_, Language, Message
from app.metrics import DELIVERY_LAG
from app.queue import connection_key

log = structlog.get_logger("woobird.webhook")

# The recent deliveries kept (and summarised): enough for a steady median, few enough that a
# fixed shop cron shows in the median after a day of a small shop's orders.
RECENT_DELIVERIES = 30
# Deliveries older than this say nothing about how the shop delivers now.
RECENT_WINDOW_SECONDS = 7 * 24 * 3600
# A median above a minute: WP-Cron is not running on its own every minute (see the docstring).
SLOW_MEDIAN_SECONDS = 60.0
# Fewer deliveries than this are not enough to call the shop slow.
MIN_DELIVERIES = 5
MAX_LAG_SECONDS = 24 * 3600.0

ADVICE = N_(
    "the shop sends webhooks from WP-Cron, which runs only when someone visits the shop: "
    "run WP-Cron from a system cron every minute (README: Prompt deliveries); "
    "reconciliation books what arrives late in the meantime"
)


def lag_seconds(date_modified: datetime, *, received: float) -> float:
    """Seconds from the order's last change to its delivery's arrival, within [0, MAX_LAG_SECONDS]."""
    modified = date_modified if date_modified.tzinfo else date_modified.replace(tzinfo=UTC)
    try:
        lag = received - modified.timestamp()
    except (OverflowError, OSError, ValueError):  # a date the platform's clock cannot place
        lag = MAX_LAG_SECONDS
    return min(max(lag, 0.0), MAX_LAG_SECONDS)


@dataclass(frozen=True, slots=True)
class _Measured:
    connection_id: int
    order_id: int
    entry: str


def lags_key(connection_id: int) -> str:
    """One shop's list (connection 1's under the key it always had)."""
    return connection_key(DELIVERY_LAG_KEY, connection_id)


class DeliveryLags:
    """One web process's measured lags, on their way to the shared list in Redis.

    `record` observes the histogram at once and keeps the entry; a flush, FLUSH_SECONDS after the
    first entry waiting, sends every waiting entry in one pipeline. A lag is a statistic: what
    Redis refuses is logged and dropped, never retried, and at most the list's length waits.
    """

    def __init__(self, redis: Any, *, flush_seconds: float = DELIVERY_LAG_FLUSH_SECONDS) -> None:
        self._redis = redis
        self._flush_seconds = flush_seconds
        self._waiting: deque[_Measured] = deque(maxlen=RECENT_DELIVERIES)
        self._flush: asyncio.Task[None] | None = None

    def record(
        self,
        order_id: int,
        date_modified: datetime,
        *,
        received: float,
        connection_id: int = ENVIRONMENT_CONNECTION_ID,
    ) -> None:
        lag = lag_seconds(date_modified, received=received)
        DELIVERY_LAG.labels(connection=str(connection_id)).observe(lag)
        self._waiting.append(_Measured(connection_id, order_id, f"{received:.3f} {lag:.3f}"))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_later(), name="woobird-delivery-lags")

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Send what is waiting now (the dashboard does before it reads, so it sees its own)."""
        if not self._waiting:
            return
        by_connection: dict[int, list[_Measured]] = {}
        for measured in self._waiting:
            by_connection.setdefault(measured.connection_id, []).append(measured)
        self._waiting.clear()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for connection_id, measured_ones in by_connection.items():
                    key = lags_key(connection_id)
                    pipe.lpush(key, *(measured.entry for measured in measured_ones))
                    pipe.ltrim(key, 0, RECENT_DELIVERIES - 1)
                await pipe.execute()
        except Exception as exc:  # the orders are recorded and queued; only the statistic is lost
            for connection_id, measured_ones in sorted(by_connection.items()):
                named = {} if connection_id == ENVIRONMENT_CONNECTION_ID else {"connection": connection_id}
                log.warning(
                    "delivery lag not recorded",
                    order_ids=[measured.order_id for measured in measured_ones],
                    error=type(exc).__name__,
                    **named,
                )

    async def aclose(self) -> None:
        if self._flush is not None and not self._flush.done():
            self._flush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush
        await self.flush()


@dataclass(frozen=True, slots=True)
class LagSummary:
    """The recent deliveries' lags, newest first."""

    lags: tuple[float, ...]
    last_received: datetime | None

    @property
    def deliveries(self) -> int:
        return len(self.lags)

    @property
    def median(self) -> float | None:
        return statistics.median(self.lags) if self.lags else None

    @property
    def slowest(self) -> float | None:
        return max(self.lags) if self.lags else None

    @property
    def slow(self) -> bool:
        median = self.median
        return self.deliveries >= MIN_DELIVERIES and median is not None and median > SLOW_MEDIAN_SECONDS

    def describe(self) -> Message:
        if self.median is None or self.slowest is None:
            return Message("no webhook deliveries measured in the last 7 days")
        times = {"median": seconds_text(self.median), "slowest": seconds_text(self.slowest)}
        if self.deliveries == 1:
            return Message("median %(median)s, slowest %(slowest)s over the last delivery", **times)
        return Message(
            "median %(median)s, slowest %(slowest)s over the last %(count)s deliveries",
            count=self.deliveries,
            **times,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "median_seconds": self.median,
            "slowest_seconds": self.slowest,
            "last_received": self.last_received.isoformat() if self.last_received else None,
            "slow": self.slow,
            "slow_above_seconds": SLOW_MEDIAN_SECONDS,
        }


async def recent_lags(
    redis: Any, *, connection_id: int = ENVIRONMENT_CONNECTION_ID, now: float | None = None
) -> LagSummary:
    """The lags of one shop's recent deliveries (a malformed entry is passed over, never trusted)."""
    entries = await redis.lrange(lags_key(connection_id), 0, RECENT_DELIVERIES - 1)
    oldest = (time.time() if now is None else now) - RECENT_WINDOW_SECONDS
    lags: list[float] = []
    newest: float | None = None
    for entry in entries:
        try:
            received_text, lag_text = (entry.decode() if isinstance(entry, bytes) else str(entry)).split()
            received, lag = float(received_text), float(lag_text)
        except ValueError:
            continue
        if not received >= oldest or not 0 <= lag <= MAX_LAG_SECONDS:  # also refuses NaN
            continue
        lags.append(lag)
        newest = received if newest is None else max(newest, received)
    moment = datetime.fromtimestamp(newest, UTC) if newest is not None else None
    return LagSummary(lags=tuple(lags), last_received=moment)


def seconds_text(seconds: float, language: Language = "en") -> str:
    if seconds < 10:  # the one figure with a decimal: `1,2 s` in Dutch
        return f"{format_decimal(round(seconds, 1), '0.0', locale=language)} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
