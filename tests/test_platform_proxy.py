"""Only the platform's proxy is believed about the client's address and scheme (TRUSTED_PROXY)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.platform_proxy import HSTS, Platform, PlatformProxyMiddleware, detect_platform

PEER = "10.1.2.3"


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ("auto", {"DYNO": "web.1"}, "heroku"),
        ("auto", {"FLY_APP_NAME": "woobird", "FLY_MACHINE_ID": "e2865"}, "fly"),
        ("auto", {}, "none"),
        ("none", {"DYNO": "web.1"}, "none"),
        ("fly", {}, "fly"),
    ],
)
def test_the_platform_is_read_from_its_own_variables(
    setting: str, environ: dict[str, str], expected: str
) -> None:
    assert detect_platform(setting, environ) == expected


async def _seen(platform: Platform, headers: dict[str, str]) -> tuple[dict[str, Any], httpx.Response]:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(client=scope["client"][0], scheme=scope["scheme"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=PlatformProxyMiddleware(app, platform=platform), client=(PEER, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
        response = await client.get("/", headers=headers)
    return seen, response


@pytest.mark.parametrize(
    ("platform", "headers", "client"),
    [
        # Heroku's router appends what it saw: the last hop; the ones before are the client's word.
        ("heroku", {"x-forwarded-for": "6.6.6.6, 203.0.113.7"}, "203.0.113.7"),
        ("heroku", {"x-forwarded-for": "203.0.113.7"}, "203.0.113.7"),
        ("heroku", {"fly-client-ip": "6.6.6.6"}, PEER),
        ("heroku", {"x-forwarded-for": "203.0.113.7, not-an-address"}, PEER),
        # Fly's proxy says it in Fly-Client-IP; X-Forwarded-For starts with the client's word.
        ("fly", {"fly-client-ip": "2001:db8::7", "x-forwarded-for": "6.6.6.6"}, "2001:db8::7"),
        ("fly", {"x-forwarded-for": "6.6.6.6"}, PEER),
        # No proxy: nothing in the headers counts.
        ("none", {"x-forwarded-for": "6.6.6.6", "fly-client-ip": "6.6.6.7"}, PEER),
    ],
)
async def test_only_the_platform_proxy_sets_the_client(
    platform: Platform, headers: dict[str, str], client: str
) -> None:
    seen, _ = await _seen(platform, headers)
    assert seen["client"] == client


async def test_https_from_the_platform_gets_hsts_and_a_spoofed_one_does_not() -> None:
    seen, response = await _seen("heroku", {"x-forwarded-proto": "https"})
    assert seen["scheme"] == "https"
    assert response.headers["strict-transport-security"] == HSTS

    seen, response = await _seen("none", {"x-forwarded-proto": "https"})
    assert seen["scheme"] == "http"
    assert "strict-transport-security" not in response.headers
