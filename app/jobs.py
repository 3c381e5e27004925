"""What every job body runs inside: a passing failure retried with backoff, a Redis lock per order
or refund, and a deadline a little before arq's.

`retry_transient` is the one place where a passing failure (`app.retry.TryAgainLater`, or Redis)
becomes `arq.Retry` by `app.retry.retry_delay`; anything else is recorded in the ledger by the body
itself. `exclusively` keeps a second worker off an order or refund that one is already booking.

A backlog job the rate limiter puts off (`waits_its_turn`) is not failing: it is deferred in arq to
its appointment with the limiter, and its try is given back (arq counts tries per job id in
`arq:retry:<job id>` before running it), so a backfill of any size never wears a job out, and no
ledger event is written for it. The worker slot it leaves is what lets another shop's fresh order,
queued now, run at once: the deferred jobs' scores lie in the future. The same goes for a backlog
job that finds the worker's backlog slots taken (`BacklogSlots`): WORKER_FRESH_SLOTS of a worker's
slots are never a backfill's, so a fresh order never waits for a slot behind ten backlog ones.
A slot is not the whole story: the jobs of one worker share one event loop, so while a fresh order
is being booked the worker's backlog orders hold their next step for it (`BacklogSlots.give_way`);
else, when many backlog runs start at once (their limits' slots free together), a fresh order's
steps wait behind theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import structlog
from arq import Retry
from arq.constants import retry_key_prefix
from redis.exceptions import LockError, RedisError

from app.constants import BACKLOG_GIVES_WAY_SECONDS, BACKLOG_SLOT_RETRY_SECONDS, WORKER_MAX_TRIES
from app.held_locks import holding
from app.metrics import JOBS
from app.moneybird.errors import MoneybirdRateLimited
from app.moneybird.lanes import Lane, requests_in
from app.moneybird.ratelimit import RateLimitBusy
from app.queue import connection_key
from app.retry import TryAgainLater, retry_delay
from app.runtime import Services, services_of

log = structlog.get_logger("woobird.worker")

# See `exclusively`: more than nothing, less than the 10 s arq adds to the job timeout.
LOCK_MARGIN_SECONDS = 5


# A deferred backlog job comes back this much before its turn: less than the limiter's wait for a
# run's start (app.moneybird.ratelimit), so that it spends its worker slot on the request, not on
# sleeping for it, while arq's pick-up still leaves its slot at the limiter idle for no time.
BACKLOG_EARLY_SECONDS = 0.05


# A job stops itself this long before arq's job timeout would, to be tried again (see `_in_time`).
JOB_DEADLINE_MARGIN_SECONDS = 2


P = ParamSpec("P")


R = TypeVar("R")


@asynccontextmanager
async def exclusively(
    services: Services,
    key: str,
    *,
    wait_seconds: float = 0,
    hold_seconds: float | None = None,
    connection_id: int | None = None,
) -> AsyncIterator[None]:
    """Hold `key` (of the services' connection, or of `connection_id`) while a job works; when
    another worker holds it past `wait_seconds`, come back once it is done."""
    key = connection_key(key, services.connection_id if connection_id is None else connection_id)
    # By default it outlives the job (arq cancels it at the job timeout) yet expires before arq's
    # in-progress key (timeout + 10 s): a killed worker's job, taken up again, finds it gone.
    timeout = hold_seconds or services.settings.worker_job_timeout_seconds + LOCK_MARGIN_SECONDS
    lock = services.redis.lock(key, timeout=timeout)
    acquired = await (
        lock.acquire(blocking=True, blocking_timeout=wait_seconds)
        if wait_seconds
        else lock.acquire(blocking=False)
    )
    if not acquired:
        raise services.defer(5)
    try:
        async with holding(lock):
            yield
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("lock expired before the job finished", lock=key)


# The worker's ctx key of its `BacklogSlots` (set by workers.functions.on_startup; tests' workers have none).
BACKLOG_SLOTS = "woobird_backlog_slots"


class BacklogSlotsFull(TryAgainLater):
    """Every slot this worker gives backlog orders is taken: come back in a moment, as a turn
    waited for, not a failure (`waits_its_turn`)."""

    backlog = True

    def __init__(self, retry_at: float) -> None:
        super().__init__("the worker's backlog slots are taken")
        self.retry_at = retry_at


class BacklogSlots:
    """How many of one worker's job slots backlog orders hold at once: at most `limit`; and the
    fresh orders being booked meanwhile, which the backlog orders give way to (`give_way`).

    Counted in the worker's own process (arq runs every job of a worker in one event loop), so it
    costs nothing per job; every worker keeps its own share of slots free.
    """

    def __init__(self, limit: int, *, gives_way_for: float = BACKLOG_GIVES_WAY_SECONDS) -> None:
        self.limit = limit
        self.held = 0
        self.gives_way_for = gives_way_for
        self.fresh = 0
        self._no_fresh = asyncio.Event()
        self._no_fresh.set()

    @contextlib.contextmanager
    def booking_fresh(self) -> Iterator[None]:
        """A fresh order is being booked for the block: the backlog gives way (`give_way`)."""
        self.fresh += 1
        self._no_fresh.clear()
        try:
            yield
        finally:
            self.fresh -= 1
            if self.fresh == 0:
                self._no_fresh.set()

    async def give_way(self) -> None:
        """Before a backlog order's next step: wait while a fresh order is being booked in this
        worker, at most `gives_way_for` seconds."""
        if self.fresh:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.gives_way_for):
                    await self._no_fresh.wait()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the block; `BacklogSlotsFull` when none is free."""
        if self.held >= self.limit:
            raise BacklogSlotsFull(time.time() + BACKLOG_SLOT_RETRY_SECONDS)
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


@contextlib.contextmanager
def backlog_slot(ctx: dict[str, Any], lane: Lane) -> Iterator[None]:
    """A job's place among the worker's `BacklogSlots`, and its lane for its Moneybird requests: a
    backlog job holds a slot and gives way to fresh orders before each request; a fresh one is
    counted as being booked. A worker without slots (tests') only sets the lane."""
    slots: BacklogSlots | None = ctx.get(BACKLOG_SLOTS)
    if slots is None:
        with requests_in(lane):
            yield
    elif lane is Lane.BACKLOG:
        with slots.hold(), requests_in(lane, gives_way=slots.give_way):
            yield
    else:
        with slots.booking_fresh(), requests_in(lane):
            yield


class OutOfTime(TryAgainLater):
    """A job that used up its time: its next try goes on from the last step the ledger wrote down."""


async def _in_time(services: Services, work: Awaitable[R]) -> R:
    """`work`, stopped a little before arq's job timeout so that it is tried again.

    arq counts a job that reaches its timeout as failed and drops it, which would leave its order
    in `booking` until the reconciliation pass takes it as stale (the job timeout + 60 s later).
    """
    budget = max(1.0, services.settings.worker_job_timeout_seconds - JOB_DEADLINE_MARGIN_SECONDS)
    try:
        async with asyncio.timeout(budget) as deadline:
            return await work
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise OutOfTime(f"the job ran out of its {budget:g} s") from exc


# What a job does when it stops retrying: record the failure in its ledger (args after ctx).
GiveUp = Callable[[Services, tuple[Any, ...], str], Awaitable[None]]


def retry_transient(
    kind: str, *, give_up: GiveUp
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Turn a passing failure into `arq.Retry` with backoff; give up after WORKER_MAX_TRIES.

    The wrapped job's first argument is arq's ctx and its second the order id. A job that gives
    up says so in the ledger through `give_up` instead of failing silently in Redis.
    """

    def decorate(job: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(job)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx: dict[str, Any] = args[0]  # type: ignore[assignment]
            order_id = int(args[1])  # type: ignore[call-overload]
            job_try = int(ctx.get("job_try", 1))
            services = services_of(ctx)
            try:
                # Fresh unless the job says otherwise (an order the backfill queued); its requests
                # wait at the limiter under its job id, which carries its connection.
                with requests_in(Lane.FRESH, waiter=ctx.get("job_id")):
                    return await _in_time(services, job(*args, **kwargs))
            except (TryAgainLater, RedisError) as exc:
                if waits_its_turn(exc):
                    await _give_the_try_back(services, ctx)
                    JOBS.labels(kind=kind, outcome="deferred", connection=str(services.connection_id)).inc()
                    # Back a little early: it waits out the rest at the limiter, on time to the µs,
                    # where arq's pick-up and the job's start would have left the slot idle.
                    delay = exc.retry_after_seconds() - BACKLOG_EARLY_SECONDS  # type: ignore[union-attr]
                    log.debug(
                        "backlog waits for its turn", job=kind, order_id=order_id, in_seconds=round(delay, 1)
                    )
                    raise Retry(defer=max(0.01, delay)) from exc
                JOBS.labels(kind=kind, outcome="retried", connection=str(services.connection_id)).inc()
                if job_try >= WORKER_MAX_TRIES:
                    message = f"gave up after {job_try} tries; last error: {exc}"
                    await give_up(services, tuple(args[1:]), message)
                    JOBS.labels(kind=kind, outcome="gave_up", connection=str(services.connection_id)).inc()
                    raise
                delay = retry_delay(job_try=job_try, error=exc, now=time.time(), scale=services.retry_scale)
                log.warning(
                    "will retry",
                    job=kind,
                    order_id=order_id,
                    job_try=job_try,
                    in_seconds=round(delay, 1),
                    error=str(exc),
                )
                raise Retry(defer=max(0.01, delay)) from exc

        return run

    return decorate


def waits_its_turn(exc: BaseException) -> bool:
    """Whether `exc` is the limiter putting a backlog request off until its appointment."""
    return isinstance(exc, (MoneybirdRateLimited, RateLimitBusy, BacklogSlotsFull)) and exc.backlog


async def _give_the_try_back(services: Services, ctx: dict[str, Any]) -> None:
    """Undo arq's count of this run (it added one to `arq:retry:<job id>` before starting it)."""
    job_id = ctx.get("job_id")
    if job_id is None:
        return
    try:
        await services.redis.decr(retry_key_prefix + str(job_id))
    except RedisError as exc:  # the try stays counted; WORKER_MAX_TRIES leaves room for a few
        log.info("could not give a deferred job its try back", error=type(exc).__name__)
