"""The Redis locks this process holds right now, so that it can take them again after Redis lost them.

A Redis restart without persistence, a flush or a failover drops every lock with the rest. The
jobs that held them keep running, and the orders they were booking are queued again at once
(app.booking.redis_marker): without their locks, a second worker could book the same order beside
the first. So every process notices the loss and writes its own locks back, with the same token
(the holder still releases it) and what was left of its expiry, before the re-queued jobs may start.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from redis.asyncio.lock import Lock

log = structlog.get_logger("woobird.locks")

# lock name → (token, monotonic moment it expires); one process, one event loop.
_held: dict[str, tuple[bytes, float]] = {}


@asynccontextmanager
async def holding(lock: Lock) -> AsyncIterator[None]:
    """Remember an acquired lock while the block runs (the caller acquires and releases it)."""
    token = lock.local.token
    if token is None or lock.timeout is None:  # not acquired, or never expires: nothing to restore
        yield
        return
    name = str(lock.name)
    _held[name] = (bytes(token), time.monotonic() + float(lock.timeout))
    try:
        yield
    finally:
        _held.pop(name, None)


def held() -> list[str]:
    return sorted(_held)


async def retake(redis: Any) -> int:
    """Write every lock this process holds back into Redis; returns how many were written.

    `NX`: a lock that someone else took meanwhile is theirs (logged); one that is still there
    is left as it is.
    """
    taken = 0
    now = time.monotonic()
    for name, (token, expires) in list(_held.items()):
        remaining_ms = int((expires - now) * 1000)
        if remaining_ms <= 0:
            continue
        if await redis.set(name, token, px=remaining_ms, nx=True):
            taken += 1
        elif await redis.get(name) != token:
            log.warning("a lock this process holds was taken by another while Redis was empty", lock=name)
    return taken
