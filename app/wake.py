"""Waking an idle worker the moment a job is queued, instead of polling Redis 20 times a second.

arq finds new jobs by polling its queue (a sorted set by due time). Polled every 50 ms, an idle
deployment sends Redis 1 200 commands a minute for nothing; polled every few seconds, each order
waits that long. `WakingWorker` does both halves:

    running jobs     poll every WORKER_BUSY_POLL_SECONDS, as arq does
    idle             wait for a message on WORKER_WAKE_CHANNEL (every enqueue publishes one, see
                     `wake_workers`), but never longer than WORKER_IDLE_POLL_SECONDS, the next
                     deferred job's due time, the next cron slot or the next heartbeat

Pub/sub delivers at most once and only to a connected subscriber: a wake-up lost (the worker
between subscriptions, Redis restarting) costs at most WORKER_IDLE_POLL_SECONDS, never a job — the
job is in the queue, and the next poll finds it. While it (re)subscribes the worker polls as usual,
and once subscribed it looks at the queue at once.

Each look at the queue also starts the jobs found due, as arq does, with fewer round trips: arq asks
Redis about every queued job on every look (four round trips each, WATCH, EXISTS, ZSCORE, MULTI/EXEC),
including those this very worker is running (a job stays queued until it ends), so a busy worker
spent a dozen round trips per job just seeing its own jobs again. `WakingWorker` passes over the
jobs it runs and claims a job in one script that keeps arq's rule exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging.config
import re
import time
from datetime import datetime
from typing import Any

import structlog
import uvloop
from arq.constants import in_progress_key_prefix
from arq.logs import default_log_config
from arq.utils import timestamp_ms
from arq.worker import Worker, get_kwargs
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.constants import FRESH_HEAD_START_SECONDS, WORKER_IDLE_POLL_SECONDS, WORKER_WAKE_CHANNEL

log = structlog.get_logger("woobird.worker")

# The worker's ctx key saying its queue is empty and it runs nothing (app.booking.redis_marker reads it).
QUEUE_IDLE = "woobird_queue_idle"

# arq's claim of a job (Worker.start_jobs) in one round trip: not while another worker runs it (its
# in-progress key), not once it ended (gone from the queue) or was put off (due later); else marked
# in progress, and its score (the time it was due) returned.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return false
end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
    return false
end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
return score
"""


class WakingWorker(Worker):
    """arq's worker, polling fast only while it has jobs (see the module docstring)."""

    def __init__(
        self, *args: Any, idle_poll_seconds: float = WORKER_IDLE_POLL_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # arq's own loop then sleeps not at all: the waiting happens in `_poll_iteration`.
        self.busy_poll_seconds = self.poll_delay_s
        self.poll_delay_s = 0
        self.idle_poll_seconds = idle_poll_seconds
        self.woken = asyncio.Event()
        self.wake_ups = 0
        self._listener: asyncio.Task[None] | None = None
        self._claim: AsyncScript | None = None

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        if self.burst:
            return
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="woobird wake listener")
        await self._wait(await self._idle_for())
        self.woken.clear()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `Worker.start_jobs`, claiming each job in one round trip (`_CLAIM`)."""
        if self._claim is None:
            self._claim = self.pool.register_script(_CLAIM)
        claim = self._claim
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            running = self.tasks.get(job_id)
            if running is not None and not running.done():
                continue  # ours, still running: its in-progress key is the one this worker set
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            try:
                score = await claim(
                    keys=[in_progress_key_prefix + job_id, self.queue_name],
                    args=[job_id, timestamp_ms(), int(self.in_progress_timeout_s * 1000)],
                )
            except BaseException:
                self.job_counter -= 1
                self.sem.release()
                raise
            if score is None:
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _wait(self, seconds: float) -> None:
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives just as the
        # wake-up does, and arq stops its worker (SIGTERM) by cancelling this very loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.woken.wait()

    async def _idle_for(self) -> float:
        """How long to wait for a wake-up before looking at the queue again."""
        if self.job_counter > 0:
            self.ctx[QUEUE_IDLE] = False
            return self.busy_poll_seconds
        due = await self.pool.zrange(self.queue_name, 0, 0, withscores=True)
        self.ctx[QUEUE_IDLE] = not due
        waits = [self.idle_poll_seconds, self._last_health_check + self.health_check_interval - time.time()]
        if due:
            waits.append(due[0][1] / 1000 - time.time())
        now = datetime.now(tz=self.timezone)
        # arq queues a cron job when its slot is less than a second away (see Worker.run_cron).
        waits += [(job.next_run - now).total_seconds() - 0.5 for job in self.cron_jobs if job.next_run]
        # A job due but held by another worker (or a slot just missed) is looked at again soon.
        return max(self.busy_poll_seconds, min(waits))

    async def _listen(self) -> None:
        while True:
            try:
                async with self.pool.pubsub() as pubsub:
                    await pubsub.subscribe(WORKER_WAKE_CHANNEL)
                    self.woken.set()  # whatever was queued while nobody listened is looked for now
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wake_ups += 1
                            self.woken.set()
            except RedisTimeoutError:
                continue  # a client with a socket timeout: the channel was only quiet that long
            except (RedisError, OSError) as exc:
                log.info("wake-up channel lost; polling until it is back", error=type(exc).__name__)
            await asyncio.sleep(self.idle_poll_seconds)

    async def stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def close(self) -> None:
        await self.stop_listening()
        await super().close()


# arq's line for a job it starts (`… → job(args) delayed=3601.48s`): how long past its score it began.
_DELAYED = re.compile(r" delayed=(\d+(?:\.\d+)?)s")
# arq says "delayed" only past this much (Worker.run_job).
_ARQ_DELAYED_FROM_SECONDS = 1.2
# arq prints the delay to the hundredth and reads the clock twice: more than rounding apart is no head start.
_HEAD_START_TOLERANCE_SECONDS = 0.5


class HeadStartDelay(logging.Filter):
    """Takes a fresh order's head start (FRESH_HEAD_START_SECONDS, app.queue) back out of arq's
    `delayed=`: its score lies that far before the moment it was queued, and the line should say how
    long the order waited, not an hour more.

    arq's line begins with the seconds since the job was queued; a job with the head start is the
    one whose delay is exactly that plus the head start (any other job's score is its queueing time
    or later), so a backlog job that truly waited an hour keeps its figure."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 2 or not isinstance(args[-1], str):
            return True
        since_queued = args[0]
        found = _DELAYED.search(args[-1])
        if found is None or not isinstance(since_queued, int | float):
            return True
        if abs(float(found[1]) - since_queued - FRESH_HEAD_START_SECONDS) > _HEAD_START_TOLERANCE_SECONDS:
            return True
        waited = float(since_queued)
        said = f" delayed={waited:0.2f}s" if waited > _ARQ_DELAYED_FROM_SECONDS else ""
        record.args = (*args[:-1], args[-1][: found.start()] + said + args[-1][found.end() :])
        return True


def configure_worker_logging() -> None:
    """arq's own log lines, as `arq worker` prints them, with a fresh order's wait told truly."""
    logging.config.dictConfig(default_log_config(verbose=False))
    logging.getLogger("arq.worker").addFilter(HeadStartDelay())


def run(settings_cls: Any) -> None:
    """`python -m workers`: arq's command-line worker, as a `WakingWorker`."""
    configure_worker_logging()
    # Most of a booking's CPU is the event loop's: sockets to Redis, the database, Moneybird and the
    # shop. uvloop, the web process's loop under uvicorn, spends a fraction of asyncio's own on them.
    asyncio.set_event_loop(uvloop.new_event_loop())
    settings: dict[str, Any] = get_kwargs(settings_cls)
    WakingWorker(**settings).run()
