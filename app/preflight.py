"""`python -m app.preflight`: say plainly which service the run or the tests are missing.

Used by the Makefile before `make run` and `make test`, so a laptop without Redis gets one clear
sentence instead of a page of connection errors.
"""

from __future__ import annotations

import asyncio
import os
import sys

from redis.asyncio import Redis


async def _redis_answers(url: str) -> str | None:
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


def redis_problem(url: str, *, setting: str = "REDIS_URL") -> str | None:
    """None when Redis answers; otherwise what is wrong and how to fix it, in plain words."""
    problem = asyncio.run(_redis_answers(url))
    if problem is None:
        return None
    return (
        f"woobird needs Redis and cannot reach it at {url} ({problem}).\n"
        "  Start one: `redis-server --daemonize yes` (Debian/Ubuntu: `apt install redis-server`,"
        " macOS: `brew install redis && brew services start redis`),\n"
        f"  or point {setting} at a running server."
    )


def main(argv: list[str]) -> int:
    setting = "TEST_REDIS_URL" if "--for-tests" in argv else "REDIS_URL"
    problem = redis_problem(os.environ.get(setting) or "redis://127.0.0.1:6379/0", setting=setting)
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
