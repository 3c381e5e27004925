"""The gauges /metrics shows, read when Prometheus asks, and the Moneybird response hook.

Counters are counted where things happen; gauges describe a state held elsewhere (Redis, the
ledger), so they are read when Prometheus asks rather than kept in step by every writer — at most
once per GAUGE_CACHE_SECONDS, however often /metrics is asked (it may be public), and by one
scrape at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import structlog

from app import schema
from app.alerts import parse_moment
from app.booking import ledger
from app.constants import QUEUE_NAME
from app.metrics import (
    LAST_RECONCILE,
    LAST_REDIS_LOSS,
    MONEYBIRD_CALLS,
    MONEYBIRD_SECONDS,
    MONEYBIRD_THROTTLED,
    ORDERS_BY_STATE,
    QUEUE_DEPTH,
)

log = structlog.get_logger("woobird.metrics")

# Prometheus scrapes every 15-60 s; a scrape in between is answered from the last reading.
GAUGE_CACHE_SECONDS = 10.0


class _State(Protocol):
    @property
    def redis(self) -> Any: ...

    @property
    def sessions(self) -> Any: ...


async def refresh_gauges(state: _State) -> None:
    """Queue depth, orders by state, last reconciliation; a part that is down keeps its old value."""
    try:
        QUEUE_DEPTH.set(int(await state.redis.zcard(QUEUE_NAME)))
    except Exception as exc:
        log.warning("queue depth not measured", error=f"{type(exc).__name__}: {exc}")
    try:
        async with state.sessions() as session:
            counts = await ledger.counts_by_state(session)
            last = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
            lost = await ledger.get_state(session, ledger.REDIS_LOST_AT)
    except Exception as exc:
        log.warning("ledger gauges not measured", error=f"{type(exc).__name__}: {exc}")
        return
    for order_state in schema.OrderState:
        ORDERS_BY_STATE.labels(state=order_state.value).set(counts[order_state.value])
    moment = parse_moment(last)
    if moment is not None:
        LAST_RECONCILE.set(moment.timestamp())
    lost_at = parse_moment(lost)
    if lost_at is not None:
        LAST_REDIS_LOSS.set(lost_at.timestamp())


class CachedGauges:
    """Refreshes the gauges when the last reading is older than GAUGE_CACHE_SECONDS."""

    def __init__(self, *, max_age: float = GAUGE_CACHE_SECONDS) -> None:
        self.max_age = max_age
        self.refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, state: _State) -> None:
        async with self._lock:  # concurrent scrapes wait for one reading instead of each making one
            now = time.monotonic()
            if self.refreshed_at is not None and now - self.refreshed_at < self.max_age:
                return
            await refresh_gauges(state)
            self.refreshed_at = time.monotonic()


def record_moneybird_response(method: str, route: str, status: int, seconds: float) -> None:
    """MoneybirdClient's `on_response` hook; status 0 means no answer arrived."""
    MONEYBIRD_CALLS.labels(method=method, status=str(status)).inc()
    MONEYBIRD_SECONDS.observe(seconds)
    if status == 429:
        MONEYBIRD_THROTTLED.inc()
