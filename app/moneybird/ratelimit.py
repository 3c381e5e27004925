"""One Moneybird rate limit per token and administration, kept in Redis.

Moneybird allows 150 requests per 5 minutes for everything that uses the token, however many web
and worker processes we run. It does not document what it counts per, so connections that share
both the token and the administration share one limit (one Redis key, `limit_key`), and any other
pair has its own; the environment's pair keeps the key it always had. Every request first takes a
slot here; a 429 should then never happen, and when one does (another integration on the same
account, a clock off by a lot) the client calls `pause_until` and every process waits out the
reset together.

Design: a sliding-window log. A sorted set holds one member per granted request, scored with the
grant time in microseconds. One Lua script, atomic in Redis, drops members older than the window,
grants a slot if fewer than `limit` remain, and otherwise answers how long until the oldest member
leaves the window. Time comes from Redis (`TIME`), never from the caller, so processes on
different machines with drifting clocks still share one timeline.

Fewer than `limit` grants in *every* interval of `window` seconds also means fewer than `limit` in
any fixed window Moneybird might count in, whatever its alignment.

The margin (`safety`): a grant is recorded when Redis says yes, but Moneybird counts the request
when it arrives, a little later, and by its own clock. If one request is slow on the way (event
loop busy, a fresh TLS connection) and the next one is fast, the server can see two requests less
than `window` apart that we saw exactly `window` apart. Each slot is therefore held `safety`
seconds longer than the window, which costs safety ÷ (window + safety) of the rate. The default
scales with the window (`default_safety`): 2 s on Moneybird's 300 s covers any ordinary network
delay for 0.7 %, where a fixed 2 s on a short window (a benchmark's 150 per 10 s) would cost 17 %.
It never drops below 250 ms: on a loaded two-core machine 67 ms still let 9 of 4 223 requests
arrive as 429s (bench/bench_backfill.py).

Two lanes, so that a history import never holds up today's orders (app.moneybird.lanes):
- A *fresh* request (every request, unless its job says otherwise) that has to wait leaves a
  claim beside the log (`<key>:fresh`, member = its job id, scored with when it lapses). While a
  claim stands no *backlog* request is granted, so the fresh one gets the next slot that frees.
  A granted claim is kept `claim_keep` seconds more: the fresh job's next request (an order takes
  three or four) finds it still there, so the whole order goes before the backlog, not one call.
  A claim lapses by itself (a job that died, a fresh job deferred past its margin).
- A *backlog* request (an order the backfill queued) does not sleep long in a worker: when no slot
  is free for it within `backlog_wait` (`start_wait` for its run's start) it is refused with an
  appointment, the moment the next slot after those already promised to other backlog requests
  frees (`<key>:backlog`, member = its job id). The job layer defers the job in arq to that
  moment (app.jobs), giving its worker slot back to whatever else is queued, another shop's fresh
  order above all. Appointments only spread the backlog over the frees to come, so that deferred
  jobs do not all wake for one slot; they grant nothing and block nothing, and one not kept lapses
  `APPOINTMENT_GRACE_SECONDS` after its time.
- A backlog job's run starts only when there is room for a whole order (`backlog_room` slots
  free): it asks `admit` before it does anything, which promises it that many requests
  (`<key>:promised`, counted as taken for every other backlog run, given back by `release` when
  the run ends, lapsing after `PROMISE_SECONDS` should it never end); under way, a request spends
  a promise, or needs one free slot once they are spent. Put off half-way, its next run would
  first read back what it had done (the invoice it made, a create it had announced), and those
  requests are what a saturated limit can least spare (bench/bench_backfill.py).
  A run that ends with promises unspent (a returning customer's order needs one request less than
  it was promised) may leave room for a whole order that the appointments, counted against those
  promises, had put a window later: `release` brings the next appointments that now fit forward,
  moving their jobs in arq's queue to now and waking the workers, so the room is used at once.
All three keys are named after the limit's key, so every limit (token and administration) has its
own; their members are job ids, which name the connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

from arq.constants import in_progress_key_prefix

from app.constants import (
    BACKFILL_CALLS_PER_ORDER,
    QUEUE_NAME,
    RATE_LIMIT_KEY,
    RATE_LIMIT_PAUSE_KEY,
    WORKER_WAKE_CHANNEL,
)
from app.moneybird.lanes import Lane, current_lane
from app.retry import RATE_LIMIT_SPREAD_SECONDS, TryAgainLater

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.settings import Settings

# The margin is this share of the window (2 s on 300 s), at least the floor, at most the cap.
DEFAULT_SAFETY_SHARE = 2.0 / 300
MIN_SAFETY_SECONDS = 0.25
DEFAULT_SAFETY_SECONDS = 2.0
# Wake a hair after the computed instant, so the retry does not arrive a microsecond early.
_WAKE_LATE_SECONDS = 0.001
# A backlog request sleeps in its worker at most this long; past it, its job is deferred in arq.
BACKLOG_WAIT_SECONDS = 2.0
# A backlog run's start (`admit`) sleeps at most this long: ten backfills each asleep for their
# start would hold every worker slot another shop's fresh order needs (bench/bench_connections.py).
# Under way, a run's requests keep `backlog_wait`: put off half-way, it would read its work back.
BACKLOG_START_WAIT_SECONDS = 0.25
# How long a fresh job keeps its claim after a grant: the time to its next request, with room.
CLAIM_KEEP_SECONDS = 3.0
# A waiting fresh request's claim outlives the slot it waits for by this much: if it gives up, its
# job comes back within the retry spread (app.retry) and still finds the slot kept for it.
CLAIM_MARGIN_SECONDS = RATE_LIMIT_SPREAD_SECONDS + 2.0
# An appointment whose moment passed still counts this long: the deferred job is on its way.
APPOINTMENT_GRACE_SECONDS = 5.0
# A backlog job starts (its run's first request) only with room for a whole order (app.constants).
BACKLOG_ROOM = BACKFILL_CALLS_PER_ORDER
# A run's promised requests lapse this long after it started, should it never end (`release`).
PROMISE_SECONDS = 15.0

# Numbers go to Redis through string.format('%d'): Lua would print µs timestamps as 1.7e+15.
# KEYS[1] log, KEYS[2] pause · ARGV[1] limit, ARGV[2] held for (µs), ARGV[3] member.
# Returns 0 when granted, else the µs to wait before asking again.
# KEYS[1] log, KEYS[2] pause, KEYS[3] fresh claims, KEYS[4] backlog appointments.
# ARGV[1] limit, ARGV[2] held for (µs), ARGV[3] log member, ARGV[4] lane, ARGV[5] waiter (job id),
# ARGV[6] claim kept after a grant (µs), ARGV[7] claim margin (µs), ARGV[8] appointment grace (µs),
# ARGV[9] the slots a backlog request needs free (room to finish its order, or 1 once under way),
# ARGV[10] 'admit': only say whether (when) there is that room, take nothing; ARGV[11] the room,
# ARGV[12] how long a promise of a run's requests lasts (µs). KEYS[5] the promises.
# Returns 0 when granted, else the µs to wait before asking again (a backlog request: until its
# appointment).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local waiter = ARGV[5]
local function us(n) return string.format('%d', n) end
local function keep(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, us(math.max(0, tonumber(last[2]) - now) / 1000 + 60000))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', us(now - hold))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', us(now))
local used = redis.call('ZCARD', KEYS[1])
local free_at = now
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then
  free_at = paused
elseif used >= limit then
  free_at = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) + hold
end
local function grant()
  redis.call('ZADD', KEYS[1], us(now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], us(math.ceil(hold / 1000) + 1000))
end
if ARGV[4] ~= 'backlog' then
  if free_at <= now then
    grant()
    redis.call('ZADD', KEYS[3], 'XX', us(now + tonumber(ARGV[6])), waiter)
    keep(KEYS[3])
    return 0
  end
  redis.call('ZADD', KEYS[3], us(free_at + tonumber(ARGV[7])), waiter)
  keep(KEYS[3])
  return math.max(1, free_at - now)
end
-- The moment the j-th (from 0) slot to come is free: free now, or as the log's grants age out.
local function nth_free(j)
  local turn = j % limit
  local at = now
  if turn >= limit - used then
    local slot = turn - (limit - used)
    at = tonumber(redis.call('ZRANGE', KEYS[1], slot, slot, 'WITHSCORES')[2]) + hold
  end
  return at + (j - turn) / limit * hold
end
-- Promises: the requests of backlog runs under way, counted as taken for any other backlog run.
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', us(now))
local room = tonumber(ARGV[11])
local promise = nil
if tonumber(ARGV[9]) == 1 then
  for k = 1, room do
    if redis.call('ZSCORE', KEYS[5], waiter .. '#' .. k) then
      promise = waiter .. '#' .. k
      break
    end
  end
end
local others = redis.call('ZCARD', KEYS[5]) - (promise and 1 or 0)
local need = math.min(tonumber(ARGV[9]), limit)
free_at = math.max(free_at, nth_free(others + need - 1))
local claim = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
if claim[2] then
  free_at = math.max(free_at, tonumber(claim[2]))
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', us(now - tonumber(ARGV[8])))
if free_at <= now then
  local first = 1
  if ARGV[10] ~= 'admit' then
    grant()
    first = 2
  end
  if promise then
    redis.call('ZREM', KEYS[5], promise)
  elseif need > 1 then
    for k = first, need do
      redis.call('ZADD', KEYS[5], us(now + tonumber(ARGV[12])), waiter .. '#' .. k)
    end
    keep(KEYS[5])
  end
  redis.call('ZREM', KEYS[4], waiter)
  return 0
end
local mine = redis.call('ZSCORE', KEYS[4], waiter)
local ahead
if mine then
  ahead = redis.call('ZCOUNT', KEYS[4], '-inf', '(' .. mine)
else
  ahead = redis.call('ZCARD', KEYS[4])
end
local at = math.max(free_at, nth_free(others + ahead + need - 1))
redis.call('ZADD', KEYS[4], us(at), waiter)
keep(KEYS[4])
return math.max(1, at - now)
"""

# A backlog run ends: its unspent promises go, and the earliest appointments the room now left fits
# (`room` slots each) are moved to now, in the limiter and in arq's queue (only a job waiting there:
# one still running keeps its own time), and the workers are woken. Not while a pause or a fresh
# claim stands: that room is not the backlog's. KEYS[1] promises, KEYS[2] log, KEYS[3] pause,
# KEYS[4] fresh claims, KEYS[5] appointments, KEYS[6] arq's queue · ARGV[1] limit, ARGV[2] held for
# (µs), ARGV[3] room, ARGV[4] wake channel, ARGV[5] arq's in-progress key prefix, ARGV[6…] the
# run's promises. Returns the jobs moved.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function us(n) return string.format('%d', n) end
for i = 6, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', us(now - tonumber(ARGV[2])))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', us(now))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', us(now))
if tonumber(redis.call('GET', KEYS[3]) or '0') > now or redis.call('ZCARD', KEYS[4]) > 0 then
  return 0
end
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[2]) - redis.call('ZCARD', KEYS[1])
local fits = math.floor(free / tonumber(ARGV[3]))
if fits < 1 then
  return 0
end
local moved = 0
local later = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. us(now), '+inf', 'LIMIT', 0, fits)
for _, job in ipairs(later) do
  if redis.call('ZSCORE', KEYS[6], job) and redis.call('EXISTS', ARGV[5] .. job) == 0 then
    redis.call('ZADD', KEYS[6], 'XX', string.format('%d', math.floor(now / 1000)), job)
    redis.call('ZADD', KEYS[5], 'XX', us(now), job)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('PUBLISH', ARGV[4], '')
end
return moved
"""

# KEYS[1] pause · ARGV[1] until (µs since the epoch). Only ever extends a pause.
_PAUSE = """
local until_us = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > current then
  local at_ms = string.format('%d', math.ceil(until_us / 1000))
  redis.call('SET', KEYS[1], string.format('%d', until_us), 'PXAT', at_ms)
  return until_us
end
return current
"""

# KEYS[1] log · ARGV[1] held for (µs). Returns the slots taken in the current window.
_USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now - tonumber(ARGV[1])), '+inf')
"""


def default_safety(window: float) -> float:
    """The margin each slot is held beyond `window`; see the module docstring."""
    return min(DEFAULT_SAFETY_SECONDS, max(MIN_SAFETY_SECONDS, window * DEFAULT_SAFETY_SHARE))


class RateLimitBusy(TryAgainLater):
    """The limiter could not grant a slot within the caller's `max_wait`; try again at `retry_at`.

    `backlog`: the refusal of a backlog request, whose job waits for its turn rather than failing
    (app.jobs defers it to `retry_at`, its appointment, without counting a try)."""

    retry_at: float  # always known: the moment the oldest slot frees, or the appointment

    def __init__(self, retry_at: float, *, backlog: bool = False) -> None:
        super().__init__(f"rate limit slots are taken until {retry_at:.0f}")
        self.retry_at = retry_at
        self.backlog = backlog


class RateLimiter:
    """At most `limit` grants in any `window` seconds, across every process sharing `redis`."""

    def __init__(
        self,
        redis: Redis,
        *,
        limit: int,
        window: float,
        key: str = RATE_LIMIT_KEY,
        pause_key: str = RATE_LIMIT_PAUSE_KEY,
        safety: float | None = None,
        backlog_wait: float = BACKLOG_WAIT_SECONDS,
        start_wait: float = BACKLOG_START_WAIT_SECONDS,
        claim_keep: float = CLAIM_KEEP_SECONDS,
        backlog_room: int = BACKLOG_ROOM,
        queue: str = QUEUE_NAME,
    ) -> None:
        safety = default_safety(window) if safety is None else safety
        if limit < 1 or window <= 0 or safety < 0:
            raise ValueError("limit must be ≥ 1, window > 0 and safety ≥ 0")
        self.limit = limit
        self.window = window
        self.safety = safety
        self._redis = redis
        self._key = key
        self._pause_key = pause_key
        # Beside the log, named after it: the fresh requests' claims and the backlog's appointments.
        self._lane_keys = [f"{key}:{Lane.FRESH}", f"{key}:{Lane.BACKLOG}", f"{key}:promised"]
        self.backlog_wait = backlog_wait
        self.start_wait = min(start_wait, backlog_wait)
        self.backlog_room = backlog_room
        self._promise_us = round(PROMISE_SECONDS * 1_000_000)
        self._lane_args = [
            round(claim_keep * 1_000_000),
            round(CLAIM_MARGIN_SECONDS * 1_000_000),
            round(APPOINTMENT_GRACE_SECONDS * 1_000_000),
        ]
        self._hold_us = round((window + safety) * 1_000_000)
        self._queue = queue
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._pause = redis.register_script(_PAUSE)
        self._usage = redis.register_script(_USAGE)

    async def acquire(self, *, max_wait: float | None = None) -> float:
        """Wait for a slot and take it, in the current lane (app.moneybird.lanes); return the
        seconds waited.

        With `max_wait`, give up rather than wait longer (`RateLimitBusy`): a job that would sit
        past its own timeout is better deferred, leaving the slot to a job that can use it now. A
        backlog request waits at most `backlog_wait` (see the module docstring).
        """
        return await self._wait(max_wait=max_wait, admit=False)

    async def admit(self, *, max_wait: float | None = None) -> float:
        """A backlog run's start, before it does anything: wait (as `acquire`) until there is room
        for a whole order, take nothing, and count the run as under way; fresh runs pass at once."""
        if current_lane().lane != Lane.BACKLOG:
            return 0.0
        return await self._wait(max_wait=max_wait, admit=True)

    async def release(self) -> None:
        """A backlog run ends: the requests promised to it and not made go back to the others."""
        lane = current_lane()
        if lane.lane == Lane.BACKLOG and lane.under_way and lane.waiter:
            promises = [f"{lane.waiter}#{k}" for k in range(1, self.backlog_room + 1)]
            fresh, backlog, promised = self._lane_keys
            await self._release(
                keys=[promised, self._key, self._pause_key, fresh, backlog, self._queue],
                args=[
                    self.limit,
                    self._hold_us,
                    self.backlog_room,
                    WORKER_WAKE_CHANNEL,
                    in_progress_key_prefix,
                    *promises,
                ],
            )
            lane.under_way = False

    async def _wait(self, *, max_wait: float | None, admit: bool) -> float:
        lane = current_lane()
        member = secrets.token_hex(8)
        backlog = lane.lane == Lane.BACKLOG
        if backlog:
            cap = self.backlog_wait if lane.under_way else self.start_wait
            max_wait = cap if max_wait is None else min(max_wait, cap)
        # A backlog job's run starts only with room to finish its order: put off half-way, it would
        # read back on its next run what it had done (app.booking.walk), spending requests.
        need = self.backlog_room if backlog and not lane.under_way else 1
        args = [
            *(self.limit, self._hold_us, member, lane.lane.value, lane.waiter or member),
            *(*self._lane_args, need, "admit" if admit else "take", self.backlog_room, self._promise_us),
        ]
        started = time.monotonic()
        while True:
            wait_us = int(await self._acquire(keys=[self._key, self._pause_key, *self._lane_keys], args=args))
            waited = time.monotonic() - started
            if wait_us <= 0:
                if backlog:
                    lane.under_way = True
                return waited
            wait = wait_us / 1_000_000
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimitBusy(retry_at=time.time() + wait, backlog=backlog)
            await asyncio.sleep(wait + _WAKE_LATE_SECONDS)

    async def pause_until(self, epoch: float) -> None:
        """Hold every process back until `epoch` (seconds, e.g. a 429's reset), plus the margin."""
        until_us = math.ceil((epoch + self.safety) * 1_000_000)
        await self._pause(keys=[self._pause_key], args=[until_us])

    async def paused_until(self) -> float | None:
        raw: Any = await self._redis.get(self._pause_key)
        return int(raw) / 1_000_000 if raw is not None else None

    async def usage(self) -> tuple[int, int, float]:
        """(slots taken in the current window, limit, window seconds) — for /healthz and metrics."""
        used = int(await self._usage(keys=[self._key], args=[self._hold_us]))
        return used, self.limit, self.window


def limit_key(settings: Settings, *, environment: Settings | None = None) -> tuple[str, str]:
    """The Redis keys (slots, pause) of the limit these settings' token and administration share:
    the deployment's own keys for the environment's pair (`environment`: its settings; None: these
    are them), keys named by a digest of the pair for any other."""
    if environment is None or _pair(settings) == _pair(environment):
        return RATE_LIMIT_KEY, RATE_LIMIT_PAUSE_KEY
    digest = hashlib.sha256("\n".join(_pair(settings)).encode()).hexdigest()[:24]
    return f"{RATE_LIMIT_KEY}:{digest}", f"{RATE_LIMIT_PAUSE_KEY}:{digest}"


def _pair(settings: Settings) -> tuple[str, str]:
    # The refresh token names an OAuth authorization across its access tokens; else the token itself.
    token = settings.moneybird_refresh_token or settings.moneybird_api_token
    return token.get_secret_value(), settings.moneybird_administration_id


async def limiter_from_settings(
    redis: Redis, settings: Settings, *, environment: Settings | None = None
) -> RateLimiter:
    """The limiter for `MONEYBIRD_RATE_LIMIT` of these settings' token and administration (see
    `limit_key`); touches Redis once so a bad URL fails at startup."""
    limit, window = settings.rate_limit
    key, pause_key = limit_key(settings, environment=environment)
    limiter = RateLimiter(redis, limit=limit, window=window, key=key, pause_key=pause_key)
    await limiter.usage()
    return limiter
