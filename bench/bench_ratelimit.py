"""How much of the allowed rate the shared Moneybird limiter hands out (issue #12 moved this here).

Eager callers take slots from one `RateLimiter` in Redis as fast as it grants them, for a few
windows, in two shapes: three limiters (three connections) with three tasks each in this process,
and three separate processes with three tasks each. The limit is scaled down to 10 per second so a
run takes seconds.

Printed per shape: the grants, the most grants seen in any one window (must never exceed the
limit), and the utilisation — the rate achieved over whole windows against the allowed rate, the
baseline measured in the same run being the time those grants would take at exactly the limit
(goal ≥ 95 %; the margin each slot is held beyond the window, 30 ms here, costs 3 %).

    .venv/bin/python bench/bench_ratelimit.py

Redis db 9 of BENCH_REDIS_URL's server is flushed before and after; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from _common import BENCH_REDIS_URL, PYTHON, header, table
from redis.asyncio import Redis

from app.moneybird.ratelimit import RateLimiter

LIMIT = 10
WINDOW = 1.0
SAFETY = 0.03
WINDOWS = 4
TASKS = 3
REDIS_URL = BENCH_REDIS_URL.rsplit("/", 1)[0] + "/9"


def most_in_any_window(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= WINDOW:
            start += 1
        best = max(best, end - start + 1)
    return best


def utilisation(stamps: list[float]) -> float:
    """Ideal time for the grants of whole windows ÷ the time they took.

    A perfect limiter grants `LIMIT` at once and the next `LIMIT` one window later, so grant
    number k·LIMIT comes k windows after the first; the half-filled last batch does not count.
    """
    stamps = sorted(stamps)
    windows = (len(stamps) - 1) // LIMIT
    return windows * WINDOW / (stamps[windows * LIMIT] - stamps[0])


async def take_slots(redis: Redis, *, until: float) -> list[float]:
    limiter = RateLimiter(redis, limit=LIMIT, window=WINDOW, safety=SAFETY)
    stamps: list[float] = []

    async def task() -> None:
        while time.time() < until:
            await limiter.acquire()
            stamps.append(time.time())

    await asyncio.gather(*(task() for _ in range(TASKS)))
    return stamps


async def in_one_process() -> list[float]:
    connections = [Redis.from_url(REDIS_URL) for _ in range(3)]
    until = time.time() + WINDOWS * WINDOW + 0.5
    try:
        parts = await asyncio.gather(*(take_slots(redis, until=until) for redis in connections))
    finally:
        for redis in connections:
            await redis.aclose()
    return [stamp for part in parts for stamp in part]


def in_three_processes() -> list[float]:
    start_at = time.time() + 1.5  # past the interpreters' start-up, so they compete from the start
    args = [PYTHON, __file__, "--child", str(start_at), str(start_at + WINDOWS * WINDOW + 0.5)]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE) for _ in range(3)]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit("a child process failed")
    return [float(stamp) for output in outputs for stamp in output.split()]


async def child(start_at: float, stop_at: float) -> None:
    redis = Redis.from_url(REDIS_URL)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stamps = await take_slots(redis, until=stop_at)
    await redis.aclose()
    print(" ".join(repr(stamp) for stamp in stamps))


async def flush() -> None:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(child(float(sys.argv[2]), float(sys.argv[3])))
        return
    header(
        "Moneybird rate limiter: share of the allowed rate granted",
        [f"limit {LIMIT} per {WINDOW:g} s, margin {SAFETY * 1000:.0f} ms, {TASKS} eager tasks per limiter"],
    )
    asyncio.run(flush())
    rows = []
    for shape, stamps in (
        ("3 limiters, one process", asyncio.run(in_one_process())),
        ("3 processes", in_three_processes()),
    ):
        asyncio.run(flush())
        rows.append(
            [
                shape,
                str(len(stamps)),
                f"{most_in_any_window(stamps)} (limit {LIMIT})",
                f"{utilisation(stamps):.1%}",
            ]
        )
    table(["shape", "grants", "most in any window", "utilisation (goal ≥ 95 %)"], rows)


if __name__ == "__main__":
    main()
