"""Noticing that Redis lost its data, and queueing again at once what it lost.

Redis holds the queue; the ledger (SQL) holds what must be done. A Redis restart without
persistence, a FLUSHALL or a failover to an empty replica drops every queued job, every job's
in-progress key and every lock. The reconciliation pass queues the waiting ledger rows again, but
only every RECONCILE_INTERVAL_SECONDS (300 by default), and rows in `booking` only once they are
older than any job could run. So Redis also carries a marker key, and every worker looks for it
each REDIS_MARKER_CHECK_SECONDS (one GET) — while it has something Redis could lose; an idle
process (a worker with an empty queue, a web process that queued nothing for a while) looks only
each REDIS_MARKER_IDLE_CHECK_SECONDS, since a loss then costs nothing:

    marker as last seen    nothing to do
    marker missing         Redis lost its data: write a new marker (SET NX, so one process wins)
                           and this process's locks back; the winner queues every waiting order
                           and refund again from the ledger — of every connection that books, each
                           with its own job ids — to start REDIS_LOSS_GRACE_SECONDS later
    another marker         another process noticed first: write this process's locks back

The grace keeps "exactly one invoice per order": a job still running when Redis emptied lost its
lock with the rest; before its copy starts, the worker running it has looked again and written the
lock back (app.held_locks), so the copy finds the order locked and waits for the job to end.

A fresh Redis at the very first start looks the same as one that lost its data; the re-queue then
finds nothing waiting.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.booking import ledger
from app.booking.reconcile import requeue_waiting
from app.booking.refunds import requeue_refunds
from app.connection_scope import connection_of_sessions
from app.connections import booking_connection_ids
from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    REDIS_LOSS_GRACE_SECONDS,
    REDIS_MARKER_CHECK_SECONDS,
    REDIS_MARKER_IDLE_CHECK_SECONDS,
    REDIS_MARKER_KEY,
)
from app.db import session_factory, transaction
from app.held_locks import retake
from app.queue import queued_within
from app.runtime import Stores
from app.settings import Settings
from app.wake import QUEUE_IDLE

log = structlog.get_logger("woobird.redis")

REASON = "after Redis lost its data"
WATCH_TASK = "redis_marker_watch"
MARKER_LOOK_TIMEOUT_SECONDS = 2.0
# How long stopping waits for the watch to end its look (and then for its cancellation).
STOP_SECONDS = MARKER_LOOK_TIMEOUT_SECONDS + 1.0


@dataclass(frozen=True)
class Requeued:
    """What one process queued again after it found Redis without the marker."""

    orders: int
    refunds: int


class RedisMarker:
    """One process's view of the marker: the value it saw last."""

    def __init__(self, *, grace_seconds: float = REDIS_LOSS_GRACE_SECONDS) -> None:
        self.seen: bytes | None = None
        self.grace_seconds = grace_seconds

    async def check(self, services: Stores) -> Requeued | None:
        """Look for the marker; when Redis lost it, heal (see the module docstring)."""
        redis = services.redis
        # A connection Redis dropped when it restarted can hang until the socket timeout and its
        # retries; give up on it sooner and look again on the next tick, on a fresh connection.
        # (asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation that
        # stops the watch, and the process's shutdown then waits for it forever.)
        async with asyncio.timeout(MARKER_LOOK_TIMEOUT_SECONDS):
            current = await redis.get(REDIS_MARKER_KEY)
        if current is not None and current == self.seen:
            return None
        if current is None:
            mine = secrets.token_hex(8).encode()
            won = bool(await redis.set(REDIS_MARKER_KEY, mine, nx=True))
            await retake(redis)
            if won:
                self.seen = mine
                try:
                    return await requeue_lost(services, grace_seconds=self.grace_seconds)
                except BaseException:
                    await redis.delete(REDIS_MARKER_KEY)  # not healed: the next look tries again
                    raise
            current = await redis.get(REDIS_MARKER_KEY)
        else:
            await retake(redis)  # another process found it missing first, or this one just started
        self.seen = current
        return None


async def requeue_lost(services: Stores, *, grace_seconds: float = REDIS_LOSS_GRACE_SECONDS) -> Requeued:
    """Queue again, from the ledger, every order and refund whose job Redis lost: connection 1's
    (`services`') and every other booking connection's, each with its own job ids."""
    now = schema.utcnow()
    # The copies get job ids of their own: a job that was running when Redis emptied still ends in
    # arq, which then drops its id's keys (a retry of it finds its job gone, "job expired") — with
    # the same id, that would take the copy queued meanwhile along, and the order would wait for a
    # reconciliation pass. The order's lock and the ledger keep two jobs of one order to one invoice.
    tag = f"after-redis-loss-{int(now.timestamp() * 1000)}"
    total = Requeued(orders=0, refunds=0)
    for stores in [services, *await _other_connections(services)]:
        done = await _requeue_connection(stores, now=now, grace_seconds=grace_seconds, tag=tag)
        total = Requeued(orders=total.orders + done.orders, refunds=total.refunds + done.refunds)
    if not total.orders and not total.refunds:
        # A new Redis (the first start) looks the same as one that lost its data, with nothing waiting.
        log.info("Redis marker written; no order or refund was waiting for a job")
    return total


@dataclass
class _ConnectionStores:
    """Another connection's ledger, with the process's settings and Redis (what a requeue needs)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


async def _other_connections(services: Stores) -> list[Stores]:
    """The booking connections other than 1, each bound to its own ledger; paused ones are queued
    again when resumed (app.connections)."""
    async with services.sessions() as session:
        others = await booking_connection_ids(session)
    engine = services.sessions.kw["bind"]
    return [
        _ConnectionStores(
            settings=services.settings,
            sessions=session_factory(engine, connection_id=connection_id),
            redis=services.redis,
        )
        for connection_id in others
    ]


async def _requeue_connection(stores: Stores, *, now: datetime, grace_seconds: float, tag: str) -> Requeued:
    orders = await requeue_waiting(
        stores,
        now=now,
        every_booking=True,
        reason=REASON,
        defer_seconds=grace_seconds,
        copy_tag=tag,
        log_each=False,
    )
    refunds = await requeue_refunds(stores, reason=REASON, defer_seconds=grace_seconds, copy_tag=tag)
    if not orders and not refunds:
        return Requeued(orders=0, refunds=0)
    async with transaction(stores.sessions) as session:
        await ledger.set_state(session, ledger.REDIS_LOST_AT, now.isoformat())
        await ledger.set_state(session, ledger.REDIS_LOST_REQUEUED, f"{orders} orders, {refunds} refunds")
    connection_id = connection_of_sessions(stores.sessions)
    with structlog.contextvars.bound_contextvars(
        **({} if connection_id == ENVIRONMENT_CONNECTION_ID else {"connection": connection_id})
    ):
        log.warning(
            f"Redis lost its data (woobird's marker was gone): {_count(orders, 'order')} and "
            f"{_count(refunds, 'refund')} queued again from the ledger, starting in {grace_seconds:g} s",
            orders=orders,
            refunds=refunds,
        )
    return Requeued(orders=orders, refunds=refunds)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _always() -> bool:
    return True


async def watch(
    stores: Callable[[], Stores | None],
    *,
    every: float = REDIS_MARKER_CHECK_SECONDS,
    busy: Callable[[], bool] = _always,
    idle_every: float = REDIS_MARKER_IDLE_CHECK_SECONDS,
    stop: asyncio.Event | None = None,
) -> None:
    """Look for the marker every `every` seconds while `busy()`, else every `idle_every`, until
    `stop` is set (or for as long as the process runs).

    `stores` gives what the process holds now (None: the worker waits for the set-up wizard).
    """
    marker = RedisMarker()
    failing = False
    looked = float("-inf")
    # Stopped by an event, not by cancelling: on Python 3.11 a cancellation that arrives as the
    # tick's sleep ends was seen lost now and then, the task left "cancelling" for good and the
    # process's shutdown waiting for it (tests/test_wake.py caught it in about one run in eight).
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        while not stopping.done():
            services = stores()
            if services is not None and (busy() or time.monotonic() - looked >= idle_every):
                looked = time.monotonic()
                try:
                    await marker.check(services)
                    failing = False
                except Exception as exc:  # Redis or the database away: look again on the next tick
                    if not failing:
                        log.warning(
                            "could not look for the Redis marker", error=f"{type(exc).__name__}: {exc}"
                        )
                    failing = True
            await asyncio.wait([stopping], timeout=every)
    finally:
        stopping.cancel()


def start_watching(ctx: dict[str, Any]) -> None:
    """The worker's watch (arq's on_startup): with whatever services the worker holds at each look;
    busy unless its queue is empty and it runs nothing (app.wake.WakingWorker says so)."""
    ctx[WATCH_TASK] = watching(
        lambda: ctx.get("services"), busy=lambda: not ctx.get(QUEUE_IDLE, False) or queued_recently()
    )


def queued_recently() -> bool:
    """The web process's measure of busy: it queued a job within the idle look's interval."""
    return queued_within(REDIS_MARKER_IDLE_CHECK_SECONDS)


@dataclass
class Watching:
    """A process's watch (`watch`) as it runs: its task, and the event that ends it."""

    task: asyncio.Task[None]
    stopped: asyncio.Event


def watching(stores: Callable[[], Stores | None], *, busy: Callable[[], bool] = _always) -> Watching:
    stopped = asyncio.Event()
    task = asyncio.create_task(watch(stores, busy=busy, stop=stopped), name="woobird redis marker")
    return Watching(task, stopped)


async def stop_watching(ctx: dict[str, Any]) -> None:
    await stop(ctx.pop(WATCH_TASK, None))


async def stop(watch: Watching | None) -> None:
    """End the watch: it finishes its look (bounded by MARKER_LOOK_TIMEOUT_SECONDS) and returns;
    one that does not within STOP_SECONDS is cancelled, and the process goes on stopping regardless."""
    if watch is None:
        return
    watch.stopped.set()
    done, _ = await asyncio.wait([watch.task], timeout=STOP_SECONDS)
    if not done:
        watch.task.cancel()
        await asyncio.wait([watch.task], timeout=STOP_SECONDS)
