"""WooCommerce's app authorization (`/wc-auth/v1/authorize`) and the REST index (`/wp-json/`), faked.

As `WC_Auth` does it: the query names `app_name`, `scope`, `user_id`, `return_url`, `callback_url`;
a `callback_url` that is not https stops with WooCommerce's own sentence; the page asks to approve
or deny; approving creates a key, POSTs `{key_id, user_id, consumer_key, consumer_secret,
key_permissions}` as JSON to the callback and — unless the callback answers exactly 200, in which
case the key is deleted again and the page says so — sends the browser to
`return_url?success=1&user_id=…`. Denying sends it to `return_url?success=0&user_id=…`.
The person is taken to be signed in as a shop manager (the real shop sends others to wp-login).
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.sandbox.woocommerce.shop import ShopSandbox

SCOPES = ("read", "write", "read_write")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_FIELDS = ("app_name", "scope", "user_id", "return_url", "callback_url")


def _die(message: str, *, status: int = 400) -> HTMLResponse:
    body = "<!doctype html><title>WordPress › Error</title>"
    body += f"<div class='wp-die-message'>{html.escape(message)}</div>"
    return HTMLResponse(body, status_code=status)


def _problem(values: dict[str, str]) -> str | None:
    for name in _FIELDS:
        if not values.get(name):
            return f"Missing parameter {name}"
    if values["scope"] not in SCOPES:
        return "Invalid scope"
    for name in ("return_url", "callback_url"):
        if urlsplit(values[name]).scheme not in ("http", "https"):
            return f"The {name} is not a valid URL"
    if not values["callback_url"].startswith("https://"):
        return "The callback_url needs to be over SSL"
    return None


class _AuthPages:
    def __init__(self, shop: ShopSandbox) -> None:
        self.shop = shop

    async def authorize(self, request: Request) -> Response:
        values = {name: request.query_params.get(name, "") for name in _FIELDS}
        problem = _problem(values)
        if problem:
            return _die(problem)
        self.shop.authorization_requests.append(dict(values))
        hidden = "".join(
            f"<input type='hidden' name='{name}' value='{html.escape(value)}'>"
            for name, value in values.items()
        )
        body = (
            "<!doctype html><title>WooCommerce › App authorization</title>"
            f"<h1>{html.escape(values['app_name'])} would like to connect to your store</h1>"
            f"<p>This will give “{html.escape(values['app_name'])}” "
            f"{html.escape(values['scope'])} access.</p>"
            f"<form method='post' action='/wc-auth/v1/access_granted'>{hidden}"
            "<button class='wc-auth-approve' name='decision' value='approve'>Approve</button> "
            "<button class='wc-auth-deny' name='decision' value='deny'>Deny</button></form>"
        )
        return HTMLResponse(body)

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        values = {name: str(form.get(name, "")) for name in _FIELDS}
        problem = _problem(values)
        if problem:
            return _die(problem)
        back = {"user_id": values["user_id"]}
        if form.get("decision") != "approve":
            return RedirectResponse(
                f"{values['return_url']}?{urlencode({'success': 0, **back})}", status_code=302
            )
        key_id = len(self.shop.issued_keys) + 1
        consumer_key, consumer_secret = f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}"
        self.shop.issued_keys[consumer_key] = (consumer_secret, values["scope"])
        payload = {
            "key_id": key_id,
            "user_id": values["user_id"],
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "key_permissions": values["scope"],
        }
        if await self._post_keys(values["callback_url"], payload) != 200:
            del self.shop.issued_keys[consumer_key]
            return _die(
                "Error: An error occurred in the request and at the time were unable to send the "
                "consumer data"
            )
        return RedirectResponse(
            f"{values['return_url']}?{urlencode({'success': 1, **back})}", status_code=302
        )

    async def _post_keys(self, url: str, payload: dict[str, Any]) -> int:
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        body = json.dumps(payload)
        try:
            if self.shop.http_client is not None:
                response = await self.shop.http_client.post(url, content=body, headers=headers, timeout=60)
            else:
                # The rig's must-use plugin accepts a self-signed certificate for loopback only.
                verify = (urlsplit(url).hostname or "") not in LOOPBACK
                async with httpx.AsyncClient(verify=verify, timeout=60) as client:
                    response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return 0
        return response.status_code

    async def index(self, request: Request) -> Response:
        """`/wp-json/`: the public REST index, with WooCommerce's namespaces while it is active."""
        return JSONResponse(
            {
                "name": "Sandbox shop",
                "url": self.shop.url,
                "namespaces": ["oembed/1.0", "wp/v2", "wc/store/v1", "wc/v1", "wc/v2", "wc/v3"],
            }
        )


def auth_routes(shop: ShopSandbox) -> list[Route]:
    pages = _AuthPages(shop)
    return [
        Route("/wc-auth/v1/authorize", pages.authorize, methods=["GET"]),
        Route("/wc-auth/v1/access_granted", pages.decide, methods=["POST"]),
        Route("/wp-json/", pages.index, methods=["GET"]),
        Route("/wp-json", pages.index, methods=["GET"]),
    ]
