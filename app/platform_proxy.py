"""What the platform's proxy tells the web process: who the client is, and whether it used HTTPS.

Only the platform's own proxy is believed, and only for what it is documented to set:

- **Heroku**: the router appends the address it accepted the connection from to
  `X-Forwarded-For`, so the *last* entry is the client; everything before it is whatever the
  client sent. It sets `X-Forwarded-Proto`.
- **Fly.io**: the proxy sets `Fly-Client-IP` to the address it accepted the connection from (and
  `X-Forwarded-Proto`); `X-Forwarded-For` starts with whatever the client sent.
- **none**: nothing in the headers counts; the connection's own address and scheme are the truth.

TRUSTED_PROXY picks one; `auto` reads the platform's own variables (Heroku's dynos have `DYNO`,
Fly's machines `FLY_APP_NAME`). Over HTTPS every answer carries `Strict-Transport-Security`, so a
browser that reached the dashboard once never tries it over plain HTTP again.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Final, Literal

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Platform = Literal["heroku", "fly", "none"]
HSTS: Final = "max-age=31536000"


def detect_platform(setting: str, environ: Mapping[str, str] = os.environ) -> Platform:
    if setting in ("heroku", "fly", "none"):
        return setting  # type: ignore[return-value]
    if "DYNO" in environ:
        return "heroku"
    if "FLY_APP_NAME" in environ or "FLY_MACHINE_ID" in environ:
        return "fly"
    return "none"


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(platform: Platform, headers: Headers) -> str | None:
    """The client's address as the platform's proxy saw it; None when it does not say."""
    if platform == "heroku":
        hops = headers.get("x-forwarded-for", "").split(",")
        return _address(hops[-1])
    if platform == "fly":
        return _address(headers.get("fly-client-ip", ""))
    return None


def forwarded_scheme(platform: Platform, headers: Headers) -> str | None:
    if platform == "none":
        return None
    scheme = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return scheme if scheme in ("http", "https") else None


class PlatformProxyMiddleware:
    """Sets the request's client and scheme from the platform's proxy, in place, so uvicorn's
    access log shows the same client; adds HSTS to answers over HTTPS."""

    def __init__(self, app: ASGIApp, *, platform: Platform) -> None:
        self.app = app
        self.platform = platform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = client_address(self.platform, headers)
        if client is not None:
            scope["client"] = (client, 0)
        scheme = forwarded_scheme(self.platform, headers)
        if scheme is not None:
            scope["scheme"] = scheme
        if scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_hsts)
