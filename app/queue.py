"""The arq queue as both processes see it: one Redis connection setting, deterministic job ids.

Every job carries its connection: connection 1's jobs look exactly as they did before connections
existed (same ids, no extra argument, so jobs queued by an older woobird still run), any other
connection's carry `connection_id` as a keyword argument and its prefix in their id, as do its
Redis keys (`connection_key`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from arq.connections import ArqRedis, RedisSettings
from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    FRESH_HEAD_START_SECONDS,
    JOB_BOOK_ORDER,
    JOB_BOOK_REFUND,
    JOB_SETTLE_INVOICE,
    WORKER_WAKE_CHANNEL,
)

# A restarting Redis refuses connections for a moment. Without a retry arq's worker exits on the
# first refused connect (while finishing a job), and takes its running jobs down with it: their
# locks, just written back after the loss (app.held_locks), then hold their customers' orders off
# until they expire. Connecting again over ~4 s rides a restart out.
WORKER_REDIS_CONNECT_RETRIES = 6

# arq's enqueue_job takes four round trips (WATCH, EXISTS, MULTI/EXEC) per job; the webhook's
# intake queues a whole batch of orders in one. The script keeps arq's rule exactly: a job id
# whose job or result key exists is not queued again. It wakes idle workers itself (app.wake).
_ENQUEUE_MANY = """
local queued = {}
for i = 2, #ARGV, 3 do
    local job_id = ARGV[i]
    if redis.call('EXISTS', KEYS[2] .. job_id, KEYS[3] .. job_id) == 0 then
        redis.call('PSETEX', KEYS[2] .. job_id, ARGV[i + 2], ARGV[i + 1])
        redis.call('ZADD', KEYS[1], ARGV[1], job_id)
        table.insert(queued, job_id)
    end
end
if #queued > 0 then
    redis.call('PUBLISH', KEYS[4], '')
end
return queued
"""


log = structlog.get_logger("woobird.queue")

# When this process last queued a job (time.monotonic()), for app.booking.redis_marker's pace.
_last_queued = float("-inf")


async def wake_workers(redis: ArqRedis) -> None:
    """Tell idle workers that a job was queued. A failure is only logged: the job is queued, and
    an idle worker finds it within WORKER_IDLE_POLL_SECONDS anyway."""
    noted_queued()
    try:
        await redis.publish(WORKER_WAKE_CHANNEL, b"")
    except RedisError as exc:
        log.info("could not wake the workers; they find the job on their next look", error=type(exc).__name__)


def noted_queued() -> None:
    global _last_queued
    _last_queued = time.monotonic()


def queued_within(seconds: float) -> bool:
    """Whether this process queued a job in the last `seconds`."""
    return time.monotonic() - _last_queued < seconds


def redis_settings(url: str, *, tls_verify: bool = False) -> RedisSettings:
    """arq's settings for REDIS_URL.

    Heroku's Key-Value Store speaks TLS with a self-signed certificate, and arq's `from_dsn`
    insists on a verified one, so verification follows REDIS_TLS_VERIFY.
    """
    settings = RedisSettings.from_dsn(url)
    if settings.ssl and not tls_verify:
        settings.ssl_cert_reqs = "none"
    settings.conn_timeout = 2
    settings.conn_retries = 3
    # Only the connect is tried again (retry_on_error stays empty): a command whose answer was lost
    # is never sent twice. A refused connect surfaces as the OS's error, not redis-py's.
    settings.retry = Retry(
        ExponentialBackoff(cap=1.0, base=0.1),
        WORKER_REDIS_CONNECT_RETRIES,
        supported_errors=(ConnectionError, TimeoutError, OSError),  # type: ignore[arg-type]
    )
    return settings


def connect(url: str, *, tls_verify: bool = False, **options: Any) -> ArqRedis:
    """A lazily connecting arq Redis client: the web process starts even while Redis is down.

    arq's `create_pool` pings at start-up and gives up after its retries; the webhook endpoint
    should instead answer 503 for as long as Redis is away and recover by itself.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "health_check_interval": 30,
        "max_connections": 64,
    }
    if url.startswith("rediss://") and not tls_verify:
        kwargs["ssl_cert_reqs"] = "none"
    kwargs.update(options)
    pool = ConnectionPool.from_url(url, **kwargs)
    return ArqRedis(pool)


def connection_key(key: str, connection_id: int) -> str:
    """A Redis key or job id of one connection: connection 1's as it always was, another's prefixed."""
    return key if connection_id == ENVIRONMENT_CONNECTION_ID else f"c{connection_id}:{key}"


def connection_kwargs(connection_id: int) -> dict[str, Any]:
    """The keyword arguments that tell a job its connection (none for connection 1)."""
    return {} if connection_id == ENVIRONMENT_CONNECTION_ID else {"connection_id": connection_id}


@dataclass(frozen=True, slots=True)
class BookingJob:
    """A job that books one document woobird books (an order's invoice, a refund's credit invoice):
    the job function, its arguments after arq's ctx, the id that makes a duplicate collapse, and
    the connection it books for."""

    function: str
    args: tuple[Any, ...]
    job_id: str
    connection_id: int = ENVIRONMENT_CONNECTION_ID


def order_job_id(
    order_id: int, date_modified: datetime, *, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> str:
    """One job per version of an order: duplicate deliveries of the same version collapse."""
    return connection_key(f"order:{order_id}:{int(date_modified.timestamp())}", connection_id)


def refund_job_id(refund_id: int, *, connection_id: int = ENVIRONMENT_CONNECTION_ID) -> str:
    return connection_key(f"refund:{refund_id}", connection_id)


def order_job(
    order_id: int, date_modified: datetime, *, reason: str, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> BookingJob:
    job_id = order_job_id(order_id, date_modified, connection_id=connection_id)
    return BookingJob(JOB_BOOK_ORDER, (order_id, reason), job_id, connection_id)


def refund_job(
    *, order_id: int, refund_id: int, reason: str, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> BookingJob:
    job_id = refund_job_id(refund_id, connection_id=connection_id)
    return BookingJob(JOB_BOOK_REFUND, (order_id, refund_id, reason), job_id, connection_id)


def settle_job_id(invoice_id: str, *, connection_id: int = ENVIRONMENT_CONNECTION_ID) -> str:
    """One settling per open invoice waits at a time; it reads the invoice as it is when it runs."""
    return connection_key(f"settle-invoice:{invoice_id}", connection_id)


async def enqueue_settle(
    redis: ArqRedis, *, invoice_id: str, reason: str, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> bool:
    """Queue settling an open invoice Moneybird may have seen paid (its push, the payments poll)."""
    job = await redis.enqueue_job(
        JOB_SETTLE_INVOICE,
        invoice_id,
        reason,
        _job_id=settle_job_id(invoice_id, connection_id=connection_id),
        **connection_kwargs(connection_id),
    )
    if job is not None:
        await wake_workers(redis)
    return job is not None


async def _copy_id(redis: ArqRedis, job_id: str, copy_tag: str) -> str:
    """`job_id`, or the copy's own id when `copy_tag` is given and arq knows no such job any more."""
    if not copy_tag or await redis.exists(job_key_prefix + job_id, result_key_prefix + job_id):
        return job_id  # still there: arq drops the copy, as ever
    return f"{job_id}:{copy_tag}"


async def enqueue(redis: ArqRedis, job: BookingJob, *, defer_seconds: float = 0, copy_tag: str = "") -> bool:
    """Queue `job`; False when arq already knows a job (or a kept result) under its id.

    `copy_tag` gives a job that Redis lost a copy with an id of its own (app.booking.redis_marker).
    """
    queued = await redis.enqueue_job(
        job.function,
        *job.args,
        _job_id=await _copy_id(redis, job.job_id, copy_tag),
        _defer_by=defer_seconds or None,
        **connection_kwargs(job.connection_id),
    )
    if queued is not None:
        await wake_workers(redis)
    return queued is not None


async def enqueue_each(
    redis: ArqRedis, jobs: Iterable[BookingJob], *, defer_seconds: float = 0, copy_tag: str = ""
) -> list[BookingJob]:
    """Queue every job of `jobs` again (see `enqueue`); returns those arq took (it drops the known)."""
    return [job for job in jobs if await enqueue(redis, job, defer_seconds=defer_seconds, copy_tag=copy_tag)]


async def enqueue_orders(
    redis: ArqRedis,
    jobs: list[tuple[int, datetime, str]],
    *,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
    backlog: bool = False,
) -> set[int]:
    """Queue several order versions of one connection in one round trip; returns the order ids
    newly queued.

    `jobs` holds (order id, date_modified, reason). Fresh orders go ahead of every due `backlog`
    one (FRESH_HEAD_START_SECONDS).
    """
    by_job_id: dict[str, int] = {}
    queued_jobs: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
    for order_id, date_modified, reason in jobs:
        job = order_job(order_id, date_modified, reason=reason, connection_id=connection_id)
        by_job_id[job.job_id] = order_id
        queued_jobs.append((job.job_id, job.function, job.args, connection_kwargs(connection_id)))
    ahead = 0 if backlog else FRESH_HEAD_START_SECONDS
    return {by_job_id[job_id] for job_id in await enqueue_jobs(redis, queued_jobs, ahead_seconds=ahead)}


async def enqueue_jobs(
    redis: ArqRedis,
    jobs: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]],
    *,
    ahead_seconds: float = 0,
) -> list[str]:
    """Queue jobs, due now, in one round trip (`_ENQUEUE_MANY`), waking idle workers; returns the
    ids of those queued (arq drops a job whose id it knows). `ahead_seconds` puts them that far
    ahead of the other due jobs in arq's order (their score; the payload keeps the true time).

    `jobs` holds (job id, function, args, kwargs). Jobs are serialised by arq itself, so the worker
    cannot tell them from `enqueue_job`'s.
    """
    if not jobs:
        return []
    now_ms = timestamp_ms()
    expires_ms = redis.expires_extra_ms
    argv: list[Any] = [now_ms - int(ahead_seconds * 1000)]
    for job_id, function, args, kwargs in jobs:
        payload = serialize_job(function, args, kwargs, None, now_ms, serializer=redis.job_serializer)
        argv += [job_id, payload, expires_ms]
    script = redis.register_script(_ENQUEUE_MANY)
    keys = [default_queue_name, job_key_prefix, result_key_prefix, WORKER_WAKE_CHANNEL]
    queued = await script(keys=keys, args=argv)
    if queued:
        noted_queued()
    return [raw.decode() if isinstance(raw, bytes) else raw for raw in queued]
