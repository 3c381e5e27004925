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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging.config
import time
from datetime import datetime
from typing import Any

import structlog
from arq.logs import default_log_config
from arq.worker import Worker, get_kwargs
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.constants import WORKER_IDLE_POLL_SECONDS, WORKER_WAKE_CHANNEL

log = structlog.get_logger("woobird.worker")

# The worker's ctx key saying its queue is empty and it runs nothing (app.booking.redis_marker reads it).
QUEUE_IDLE = "woobird_queue_idle"


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

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        if self.burst:
            return
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="woobird wake listener")
        await self._wait(await self._idle_for())
        self.woken.clear()

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


def run(settings_cls: Any) -> None:
    """`python -m workers`: arq's command-line worker, as a `WakingWorker`."""
    logging.config.dictConfig(default_log_config(verbose=False))
    settings: dict[str, Any] = get_kwargs(settings_cls)
    WakingWorker(**settings).run()
