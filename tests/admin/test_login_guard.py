"""Guessing ADMIN_TOKEN is slowed, counted in Redis across web processes, logged and alerted; signing
out ends the session everywhere, and only from the dashboard's own form.

Before: 600 wrong tokens were all answered (~1 800/s), nothing was logged or counted, and the right
token worked at once after them; a signed-out cookie stayed valid until it expired.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
import structlog.testing
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.admin.auth import COOKIE_NAME
from app.admin.login_guard import (
    BURST_FAILURES,
    FREE_FAILURES,
    MAX_LOCKOUT_SECONDS,
    client_key,
    lockout_seconds,
)
from app.constants import ADMIN_LOGIN_FAILURES_PREFIX, ADMIN_LOGIN_LOCK_PREFIX
from app.settings import Settings
from tests.admin.conftest import app_with_admin, logout_csrf, sign_in
from tests.conftest import make_settings

HOOK = "https://hooks.slack.test/services/T000/B000/logins"


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(database_url=sqlite_url, alert_webhook_url=HOOK)


@pytest.fixture
async def app(settings: Settings, redis: ArqRedis, seeded: object) -> AsyncIterator[FastAPI]:
    application = app_with_admin(settings)
    async with application.router.lifespan_context(application):
        yield application


def _client(app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://woobird.test")


@pytest.fixture
def alerts() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="woobird.test").pass_through()
        yield mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))


async def _guess(client: httpx.AsyncClient, token: str = "wrong-guess") -> httpx.Response:
    return await client.post("/admin/login", data={"token": token})


async def test_guessing_is_locked_out_after_the_free_tries_even_for_the_right_token(
    app: FastAPI, settings: Settings, redis: ArqRedis, alerts: Any
) -> None:
    async with _client(app) as client:
        answers = [(await _guess(client)).status_code for _ in range(600)]
        left_ms = int(await redis.pttl(ADMIN_LOGIN_LOCK_PREFIX + "203.0.113.7"))
        if left_ms < 1500:  # about to run out: let it, and lock again with one more wrong token
            await asyncio.sleep(max(left_ms, 0) / 1000 + 0.05)
            answers.append((await _guess(client)).status_code)
        right = await _guess(client, settings.admin_token.get_secret_value())
    assert answers[: FREE_FAILURES + 1] == [401] * (FREE_FAILURES + 1)  # the one past the free tries locks
    # The rest are refused unheard, but for one try each time a lockout (2 s, 4 s, …) runs out.
    assert answers.count(401) <= FREE_FAILURES + 1 + 5
    assert answers.count(429) >= 600 - FREE_FAILURES - 6
    assert right.status_code == 429  # the right token is not even compared while locked out
    assert 0 < int(right.headers["retry-after"]) <= MAX_LOCKOUT_SECONDS
    assert COOKIE_NAME not in right.headers.get("set-cookie", "")
    assert int(await redis.get(ADMIN_LOGIN_FAILURES_PREFIX + "203.0.113.7")) == answers.count(401)


async def test_the_count_is_shared_by_every_web_process(
    settings: Settings, redis: ArqRedis, seeded: object, alerts: Any
) -> None:
    first, second = app_with_admin(settings), app_with_admin(settings)
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        _client(first) as one,
        _client(second) as other,
    ):
        for index in range(FREE_FAILURES + 1):
            await _guess(one if index % 2 else other)
        assert (await _guess(other)).status_code == 429
        assert (await _guess(one)).status_code == 429


async def test_bearer_guesses_count_and_other_addresses_are_not_locked_out(
    app: FastAPI, settings: Settings, alerts: Any
) -> None:
    async with _client(app) as guesser, _client(app, "198.51.100.9") as bookkeeper:
        for _ in range(FREE_FAILURES + 1):
            assert (await guesser.get("/admin", headers={"authorization": "Bearer wrong"})).status_code == 401
        locked = await guesser.get("/admin", headers={"authorization": "Bearer wrong"})
        assert locked.status_code == 429
        await sign_in(bookkeeper, settings)
        assert (await bookkeeper.get("/admin")).status_code == 200


async def test_every_failure_is_logged_with_its_client(app: FastAPI, alerts: Any) -> None:
    with structlog.testing.capture_logs() as logs:
        async with _client(app) as client:
            await _guess(client)
            await _guess(client)
    failures = [entry for entry in logs if entry["event"] == "wrong admin token"]
    assert [(entry["client"], entry["failures"]) for entry in failures] == [
        ("203.0.113.7", 1),
        ("203.0.113.7", 2),
    ]
    assert all(entry["log_level"] == "warning" for entry in failures)


async def test_a_burst_from_many_addresses_is_alerted_once(app: FastAPI, alerts: Any) -> None:
    for index in range(BURST_FAILURES + 10):
        async with _client(app, f"192.0.2.{index + 1}") as client:
            assert (await _guess(client)).status_code == 401  # each address within its free tries
    texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
    assert len(texts) == 1
    assert "wrong admin tokens" in texts[0]
    assert "ADMIN_TOKEN" in texts[0]


async def test_signing_in_clears_the_count(app: FastAPI, settings: Settings, redis: ArqRedis) -> None:
    async with _client(app) as client:
        for _ in range(FREE_FAILURES - 1):
            await _guess(client)
        await sign_in(client, settings)
    assert await redis.get(ADMIN_LOGIN_FAILURES_PREFIX + "203.0.113.7") is None


def test_lockouts_double_up_to_the_cap_and_ipv6_counts_by_its_64() -> None:
    assert [lockout_seconds(n) for n in range(1, FREE_FAILURES + 4)] == [0] * FREE_FAILURES + [2, 4, 8]
    assert lockout_seconds(100) == MAX_LOCKOUT_SECONDS
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("not an address") == "unknown"


# ── signing out ──────────────────────────────────────────────────────────────────────────────


async def test_signing_out_revokes_the_session_everywhere(app: FastAPI, settings: Settings) -> None:
    async with _client(app) as browser:
        await sign_in(browser, settings)
        stolen = browser.cookies.get(COOKIE_NAME)
        page = await browser.get("/admin")
        assert (await browser.post("/admin/logout", data={"csrf": logout_csrf(page.text)})).status_code == 303
    async with _client(app, "198.51.100.66") as thief:
        thief.cookies.set(COOKIE_NAME, stolen or "", path="/admin")
        response = await thief.get("/admin", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert "signed out" in response.json()["detail"]


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
async def test_sign_out_without_the_dashboards_csrf_token_is_refused(
    app: FastAPI, settings: Settings, csrf: str | None
) -> None:
    async with _client(app) as browser:
        await sign_in(browser, settings)
        forged = await browser.post("/admin/logout", data={} if csrf is None else {"csrf": csrf})
        assert forged.status_code == 403
        assert (await browser.get("/admin")).status_code == 200  # still signed in


async def test_every_dashboard_page_carries_the_sign_out_token(app: FastAPI, settings: Settings) -> None:
    async with _client(app) as browser:
        await sign_in(browser, settings)
        for path in ("/admin", "/admin/report?month=2026-11", "/admin/settings", "/admin/setup/shop"):
            page = await browser.get(path)
            assert page.status_code == 200, path
            assert logout_csrf(page.text), path
