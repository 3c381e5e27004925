"""Which lane a Moneybird request waits in at the shared rate limiter: fresh or backlog.

The limiter (app.moneybird.ratelimit) serves fresh requests first: today's orders, refunds, notes,
settlements, the dashboard and the wizard. Backlog requests are those of orders the history import
(app.booking.backfill) queued; they take what fresh ones leave. The lane travels with the work
in a context variable, so nothing between a job and the HTTP layer passes it along: each arq job
runs in a task of its own, and what a job sets here is seen by every request it makes and by
nothing else.

`waiter` names the job to the limiter (its arq job id, which carries the connection), so that its
successive requests share one claim or one appointment; outside a job each request is its own.
`gives_way`: what a backlog job awaits before each request, to let its worker's fresh orders go
first (app.jobs.BacklogSlots.give_way).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum


class Lane(StrEnum):
    FRESH = "fresh"
    BACKLOG = "backlog"


@dataclass(slots=True)
class RequestLane:
    lane: Lane = Lane.FRESH
    waiter: str | None = None  # None: a name of its own per request
    under_way: bool = False  # a backlog run that was granted a request: it needs one slot, not room
    gives_way: Callable[[], Awaitable[None]] | None = None


_FRESH = RequestLane()
_current: contextvars.ContextVar[RequestLane | None] = contextvars.ContextVar(
    "woobird_moneybird_lane", default=None
)


def current_lane() -> RequestLane:
    return _current.get() or _FRESH


@contextmanager
def requests_in(
    lane: Lane, *, waiter: str | None = None, gives_way: Callable[[], Awaitable[None]] | None = None
) -> Iterator[None]:
    """Every Moneybird request made inside waits in `lane`, as `waiter` (default: the one set
    outside, if any), after `gives_way` (default: the one set outside, in the same lane)."""
    outside = current_lane()
    if gives_way is None and outside.lane == lane:
        gives_way = outside.gives_way
    token = _current.set(RequestLane(lane, waiter or outside.waiter, gives_way=gives_way))
    try:
        yield
    finally:
        _current.reset(token)
