"""What every web process shares about signing in to /admin, in Redis: failed tries and sign-outs.

**Failed tries.** Each wrong ADMIN_TOKEN (in the sign-in form or an Authorization header) is counted
per client address (an IPv6 client by its /64) for LOGIN_WINDOW_SECONDS. The first FREE_FAILURES
cost nothing; each one after locks that client out twice as long as the last (2 s, 4 s, … up to
MAX_LOCKOUT_SECONDS), and a locked-out client is answered 429 with Retry-After before its token is
even compared, the right one too. Every failure is logged with the client and its count; BURST
failures from all clients together within the window are alerted (once a day, like every cause).
Because the counts live in Redis, more web processes do not mean more guesses.

**Sign-outs.** A session cookie is stateless (app/admin/auth.py), so signing out writes its session
id here until the cookie would have expired anyway; a signed-out cookie is refused from then on.

With Redis unreachable neither is enforced — the dashboard is where a person sees that Redis is
down, so it must still let them in — and each such sign-in is logged.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

import structlog

from app.alerts import AlertTarget, alert
from app.constants import (
    ADMIN_LOGIN_FAILURES_ALL,
    ADMIN_LOGIN_FAILURES_PREFIX,
    ADMIN_LOGIN_LOCK_PREFIX,
    ADMIN_SESSION_REVOKED_PREFIX,
)
from app.i18n import Message

log = structlog.get_logger("woobird.admin")

FREE_FAILURES: Final = 5
LOGIN_WINDOW_SECONDS: Final = 3600
MAX_LOCKOUT_SECONDS: Final = 300
BURST_FAILURES: Final = 20
LOGIN_BURST = "admin-login-burst"


class TooManyFailures(Exception):
    """This client tried too many wrong tokens: answered 429 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong admin tokens from here: try again in {retry_after} s")
        self.retry_after = retry_after


def client_key(host: str | None) -> str:
    """The address failures are counted by: the client's own, an IPv6 one by its /64 network."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def lockout_seconds(failures: int) -> int:
    """How long the `failures`-th wrong token locks its client out (0 while it is free)."""
    if failures <= FREE_FAILURES:
        return 0
    return int(min(2 ** (failures - FREE_FAILURES), MAX_LOCKOUT_SECONDS))


async def refuse_if_locked_out(redis: Any, client: str) -> None:
    try:
        left = int(await redis.ttl(ADMIN_LOGIN_LOCK_PREFIX + client))
    except Exception as exc:
        log.warning("sign-in lockout not checked: Redis unreachable", client=client, error=_error(exc))
        return
    if left > 0:
        raise TooManyFailures(left)


async def record_failure(target: AlertTarget, client: str) -> None:
    """Count a wrong token from `client`: lock it out past the free tries, alert on a burst."""
    key = ADMIN_LOGIN_FAILURES_PREFIX + client
    try:
        async with target.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_SECONDS, nx=True)
            pipe.incr(ADMIN_LOGIN_FAILURES_ALL)
            pipe.expire(ADMIN_LOGIN_FAILURES_ALL, LOGIN_WINDOW_SECONDS, nx=True)
            failures, _, everyone, _ = await pipe.execute()
        lockout = lockout_seconds(int(failures))
        if lockout:
            await target.redis.set(ADMIN_LOGIN_LOCK_PREFIX + client, "1", ex=lockout)
    except Exception as exc:
        log.warning("wrong admin token not counted: Redis unreachable", client=client, error=_error(exc))
        return
    log.warning("wrong admin token", client=client, failures=int(failures), locked_out_seconds=lockout)
    if int(everyone) >= BURST_FAILURES:
        await alert(
            target,
            cause=LOGIN_BURST,
            message=Message(
                "%(count)s wrong admin tokens within %(minutes)s minutes (the last from %(client)s): someone "
                "may be guessing ADMIN_TOKEN. Each address is locked out after %(free)s; if it was not you, "
                "make a new ADMIN_TOKEN with `woobird setup`.",
                count=int(everyone),
                minutes=LOGIN_WINDOW_SECONDS // 60,
                client=client,
                free=FREE_FAILURES,
            ),
        )


async def record_success(redis: Any, client: str) -> None:
    try:
        await redis.delete(ADMIN_LOGIN_FAILURES_PREFIX + client, ADMIN_LOGIN_LOCK_PREFIX + client)
    except Exception as exc:
        log.warning("sign-in not recorded: Redis unreachable", client=client, error=_error(exc))


async def sign_out(redis: Any, session_id: str, *, seconds_left: int) -> None:
    await redis.set(ADMIN_SESSION_REVOKED_PREFIX + session_id, "1", ex=max(1, seconds_left))


async def signed_out(redis: Any, session_id: str) -> bool:
    try:
        return bool(await redis.exists(ADMIN_SESSION_REVOKED_PREFIX + session_id))
    except Exception as exc:
        log.warning("session not checked for sign-out: Redis unreachable", error=_error(exc))
        return False


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
