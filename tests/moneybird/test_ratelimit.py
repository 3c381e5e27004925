from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import MoneybirdRateLimited
from app.moneybird.ratelimit import RateLimitBusy, RateLimiter, limiter_from_settings
from app.settings import REPO_ROOT, Settings, load_settings
from tests.moneybird import bodies
from tests.moneybird.conftest import ADMINISTRATION_ID, BASE_URL, MONEYBIRD_TEST_REDIS_URL

LIMIT = 10
WINDOW = 1.0
# Enough margin for this machine's scheduling jitter. How much of the rate the limiter uses is a
# benchmark (bench/bench_ratelimit.py); these tests check that it is never exceeded, and
# test_a_slot_frees_one_window_and_the_margin_after_the_oldest_grant that no slot is held longer.
SAFETY = 0.03


@pytest.fixture
async def connections(mb_redis: Redis) -> AsyncIterator[list[Redis]]:
    """Three separate connections, as three worker processes would have."""
    clients = [Redis.from_url(MONEYBIRD_TEST_REDIS_URL) for _ in range(3)]
    yield clients
    for client in clients:
        await client.aclose()


def _max_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_three_workers_never_exceed_the_rate(connections: list[Redis]) -> None:
    limiters = [RateLimiter(r, limit=LIMIT, window=WINDOW, safety=SAFETY) for r in connections]
    stamps: list[float] = []
    deadline = time.monotonic() + 4 * WINDOW + 0.5

    async def worker(limiter: RateLimiter) -> None:
        while time.monotonic() < deadline:
            await limiter.acquire()
            stamps.append(time.monotonic())

    # Several eager tasks per worker, as arq runs several jobs per process.
    await asyncio.gather(*(worker(limiter) for limiter in limiters for _ in range(3)))

    assert _max_in_any_window(stamps, WINDOW) <= LIMIT


_PROCESS = """
import asyncio, sys, time
from redis.asyncio import Redis
from app.moneybird.ratelimit import RateLimiter

async def main() -> None:
    url, limit, window, safety, start_at, stop_at = sys.argv[1:7]
    redis = Redis.from_url(url)
    limiter = RateLimiter(redis, limit=int(limit), window=float(window), safety=float(safety))
    await asyncio.sleep(max(0.0, float(start_at) - time.time()))
    stamps = []

    async def job() -> None:
        while time.time() < float(stop_at):
            await limiter.acquire()
            stamps.append(time.time())

    await asyncio.gather(*(job() for _ in range(3)))
    await redis.aclose()
    print(" ".join(repr(s) for s in stamps))

asyncio.run(main())
"""


async def test_three_processes_share_one_limit(mb_redis: Redis) -> None:
    start_at = time.time() + 1.5  # past the interpreters' start-up, so they compete from the start
    args = [
        MONEYBIRD_TEST_REDIS_URL,
        str(LIMIT),
        str(WINDOW),
        str(SAFETY),
        str(start_at),
        str(start_at + 3 * WINDOW),
    ]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROCESS, *args, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [await process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes)
    per_process = [[float(s) for s in out.split()] for out, _ in outputs]
    stamps = [s for stamps in per_process for s in stamps]

    assert all(per_process), "every process got slots"
    assert _max_in_any_window(stamps, WINDOW) <= LIMIT


class StrictMoneybird:
    """A server that answers 429 as soon as more than `limit` requests arrive within `window`."""

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.arrivals: deque[float] = deque()
        self.all_arrivals: list[float] = []
        self.throttled = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        while self.arrivals and now - self.arrivals[0] >= self.window:
            self.arrivals.popleft()
        if len(self.arrivals) >= self.limit:
            self.throttled += 1
            return httpx.Response(
                429, text="Retry later", headers={"Retry-After": f"{time.time() + 0.2:.3f}"}
            )
        self.arrivals.append(now)
        self.all_arrivals.append(now)
        return httpx.Response(200, json=[bodies.workflow()])


async def test_clients_sharing_the_limiter_never_see_a_429(connections: list[Redis]) -> None:
    server = StrictMoneybird(limit=LIMIT, window=WINDOW)
    clients = [
        MoneybirdClient(
            base_url=BASE_URL,
            token="t",
            administration_id=ADMINISTRATION_ID,
            limiter=RateLimiter(redis, limit=LIMIT, window=WINDOW, safety=SAFETY),
            transport=httpx.MockTransport(server.handler),
            limiter_max_wait=None,
        )
        for redis in connections
    ]
    deadline = time.monotonic() + 3 * WINDOW + 0.5

    async def job(client: MoneybirdClient) -> None:
        while time.monotonic() < deadline:
            await client.workflows()

    try:
        await asyncio.gather(*(job(client) for client in clients for _ in range(3)))
    finally:
        for client in clients:
            await client.aclose()

    assert server.throttled == 0


async def test_pause_holds_every_process_and_is_never_shortened(connections: list[Redis]) -> None:
    first, second = (RateLimiter(r, limit=LIMIT, window=WINDOW, safety=0) for r in connections[:2])
    until = time.time() + 0.4
    await first.pause_until(until)
    await first.pause_until(until - 10)  # an older 429's reset must not cut the pause short
    paused = await second.paused_until()
    assert paused is not None
    assert abs(paused - until) < 0.001

    waited = await second.acquire()
    assert time.time() >= until - 0.01
    assert waited >= 0.3


async def test_max_wait_gives_up_with_the_time_to_come_back(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=2, window=30, safety=0)
    await limiter.acquire()
    await limiter.acquire()
    started = time.monotonic()
    with pytest.raises(RateLimitBusy) as caught:
        await limiter.acquire(max_wait=1)
    assert time.monotonic() - started < 0.5  # it knew at once that 30 s is too long
    assert 29 < caught.value.retry_at - time.time() <= 30


async def test_usage_counts_the_current_window(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=5, window=0.3, safety=0)
    for _ in range(3):
        await limiter.acquire()
    assert await limiter.usage() == (3, 5, 0.3)
    await asyncio.sleep(0.35)
    assert await limiter.usage() == (0, 5, 0.3)


async def test_limiter_from_settings_uses_the_configured_rate(mb_redis: Redis) -> None:
    settings = load_settings(_env_file=None, moneybird_rate_limit="120/60")
    limiter = await limiter_from_settings(mb_redis, settings)
    assert (limiter.limit, limiter.window) == (120, 60.0)


async def test_a_429_through_the_client_pauses_the_other_clients(connections: list[Redis]) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.time())
        if len(calls) == 1:
            return httpx.Response(429, text="Retry later", headers={"Retry-After": f"{time.time() + 30:.0f}"})
        return httpx.Response(200, json=[bodies.workflow()])

    limiters = [RateLimiter(r, limit=LIMIT, window=WINDOW, safety=0) for r in connections[:2]]
    first, second = (
        MoneybirdClient(
            base_url=BASE_URL,
            token="t",
            administration_id=ADMINISTRATION_ID,
            limiter=limiter,
            transport=httpx.MockTransport(handler),
            limiter_max_wait=1.0,
        )
        for limiter in limiters
    )
    async with first, second:
        with pytest.raises(MoneybirdRateLimited):
            await first.workflows()
        with pytest.raises(MoneybirdRateLimited) as caught:
            await second.workflows()
    assert caught.value.local
    assert len(calls) == 1


async def test_a_slot_frees_one_window_and_the_margin_after_the_oldest_grant(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=2, window=40, safety=5)
    granted_at = time.time()
    await limiter.acquire()
    await limiter.acquire()
    with pytest.raises(RateLimitBusy) as caught:
        await limiter.acquire(max_wait=0)
    # Not a moment before window + margin (Moneybird may see the request late), and not later.
    assert 45 - 0.5 < caught.value.retry_at - granted_at <= 45 + 0.5


async def test_the_configured_limiter_holds_each_slot_for_the_default_margin(mb_redis: Redis) -> None:
    settings = load_settings(_env_file=None, moneybird_rate_limit="1/300")
    limiter = await limiter_from_settings(mb_redis, settings)
    assert limiter.safety == 2.0
    granted_at = time.time()
    await limiter.acquire()
    with pytest.raises(RateLimitBusy) as caught:
        await limiter.acquire(max_wait=0)
    assert 302 - 0.5 < caught.value.retry_at - granted_at <= 302 + 0.5


async def test_a_429_pauses_until_its_reset_plus_the_margin(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=5, window=10, safety=3)
    reset = time.time() + 20
    await limiter.pause_until(reset)
    paused = await limiter.paused_until()
    assert paused is not None
    assert abs(paused - (reset + 3)) < 0.01
    with pytest.raises(RateLimitBusy) as caught:
        await limiter.acquire(max_wait=0)
    assert abs(caught.value.retry_at - (reset + 3)) < 0.5


def test_the_margin_scales_with_the_window_between_a_floor_and_a_cap() -> None:
    from app.moneybird.ratelimit import default_safety

    assert default_safety(300) == 2.0
    assert default_safety(10) == 0.25
    assert default_safety(3600) == 2.0
    assert 0.25 < default_safety(60) < 2.0


async def test_connections_share_a_limit_only_when_they_share_token_and_administration(
    mb_redis: Redis,
) -> None:
    def shop(token: str, administration: str) -> Settings:
        return load_settings(
            _env_file=None,
            moneybird_rate_limit="2/300",
            moneybird_api_token=token,
            moneybird_administration_id=administration,
        )

    environment = shop("mbt_first_token_8c1f", "111111111111111111")
    same_pair = shop("mbt_first_token_8c1f", "111111111111111111")
    other_administration = shop("mbt_first_token_8c1f", "222222222222222222")
    other_token = shop("mbt_other_token_3b7d", "111111111111111111")
    first = await limiter_from_settings(mb_redis, environment)
    sharing = await limiter_from_settings(mb_redis, same_pair, environment=environment)
    apart = [
        await limiter_from_settings(mb_redis, settings, environment=environment)
        for settings in (other_administration, other_token)
    ]

    # The environment's two slots are taken before the fact: the connection sharing its pair waits…
    await first.acquire(max_wait=0)
    await first.acquire(max_wait=0)
    with pytest.raises(RateLimitBusy):
        await sharing.acquire(max_wait=0)
    # …while a connection with another administration or another token has a limit of its own.
    for limiter in apart:
        await limiter.acquire(max_wait=0)
        await limiter.acquire(max_wait=0)
        with pytest.raises(RateLimitBusy):
            await limiter.acquire(max_wait=0)
    keys = set(await mb_redis.keys("woobird:moneybird:calls*"))
    # Three logs; the fresh requests' claims beside them are named after them (app.moneybird.lanes).
    assert len({key for key in keys if not key.endswith((b":fresh", b":backlog"))}) == 3
