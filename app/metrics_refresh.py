"""The gauges /metrics shows, read fresh at each scrape, and the Moneybird response hook.

Counters are counted where things happen; gauges describe a state held elsewhere (Redis, the
ledger), so they are read when Prometheus asks rather than kept in step by every writer.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from app.alerts import parse_moment
from app.constants import QUEUE_NAME
from app.metrics import (
    LAST_RECONCILE,
    MONEYBIRD_CALLS,
    MONEYBIRD_SECONDS,
    MONEYBIRD_THROTTLED,
    ORDERS_BY_STATE,
    QUEUE_DEPTH,
)
from app.sync import ledger

log = structlog.get_logger("woobird.metrics")


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
    except Exception as exc:
        log.warning("ledger gauges not measured", error=f"{type(exc).__name__}: {exc}")
        return
    for order_state in ledger.OrderState:
        ORDERS_BY_STATE.labels(state=order_state.value).set(counts[order_state.value])
    moment = parse_moment(last)
    if moment is not None:
        LAST_RECONCILE.set(moment.timestamp())


def record_moneybird_response(method: str, route: str, status: int, seconds: float) -> None:
    """MoneybirdClient's `on_response` hook; status 0 means no answer arrived."""
    MONEYBIRD_CALLS.labels(method=method, status=str(status)).inc()
    MONEYBIRD_SECONDS.observe(seconds)
    if status == 429:
        MONEYBIRD_THROTTLED.inc()
