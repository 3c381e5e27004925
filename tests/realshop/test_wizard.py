"""A new deployment set up in the browser against the real WooCommerce: woobird's web and worker
processes started as the Procfile starts them, with nothing but ADMIN_TOKEN, SECRET_KEY, the
database and Redis (and the Moneybird fake's address); the web process served over TLS with a
self-signed certificate, because WooCommerce hands keys only to an https callback (the rig's
must-use plugin accepts that certificate for loopback addresses only).

Chromium signs in to woobird, enters the shop's address, signs in on WooCommerce's own login form,
approves the key request on WooCommerce's own page, connects the Moneybird fake with OAuth, goes
through every step to a green check; then an order placed and completed in the shop is delivered by
the shop's webhook and booked by the worker, and shows up booked on the dashboard.

Around that walk, the wizard's trust boundaries against the real web process: a forged Host header
never becomes the key callback (woobird's address is confirmed first), another address typed into
step 1 gets none of the real shop's keys nor its webhook secret, and the shop step refuses an address
on this machine that the rig did not name (`WOOBIRD_TEST_RIG_SHOPS` names the shop and one stranger).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.address_guard import TEST_RIG_VARIABLE
from app.db import migrate
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from tests.admin.test_browser import CHROMIUM_ARGS, chromium  # noqa: F401  (the fixture)
from tests.chaos.rig import AppProcess, RedisServer, procfile_command
from tests.realshop.orders import place_order, set_status
from tests.realshop.shop import RealShop, free_port
from tests.server import serve_in_thread
from tests.setup.browser_walk import ShopApproval, walk
from tests.tls import self_signed

pytestmark = [pytest.mark.realshop, pytest.mark.browser]
BOOKED_WITHIN_SECONDS = 90.0


async def _sign_in_on_the_shop(page: Page, shop: RealShop) -> None:
    """Not signed in to the shop yet: WooCommerce's own login form comes before its approval page."""
    if await page.locator("input#username").count():
        await page.fill("input#username", "admin")
        await page.fill("input#password", shop.admin_password)
        await page.click("button.wc-auth-login-button")


def _approve_in_wp_admin(shop: RealShop) -> ShopApproval:
    async def approve(page: Page) -> None:
        await _sign_in_on_the_shop(page, shop)
        await page.click("a.wc-auth-approve")

    return approve


def _wait_until_up(url: str, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, verify=False).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {within:.0f} s")


@dataclass
class Stranger:
    """A server that answers like a WooCommerce's index, and writes down everything sent to it."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            body = (await request.body()).decode(errors="replace")
            self.seen.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            if request.url.path == "/wp-json/":
                return JSONResponse({"namespaces": ["wp/v2", "wc/v3"]})
            return JSONResponse({"code": "rest_no_route"}, status_code=404)

        return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT"])])


@dataclass
class Deployment:
    url: str
    admin_token: str
    moneybird: MoneybirdSandbox
    processes: list[AppProcess]
    stranger: Stranger

    def logs(self) -> str:
        return "\n".join(process.log()[-3000:] for process in self.processes)


@pytest.fixture
def deployment(shop: RealShop, tmp_path: Path) -> Iterator[Deployment]:
    """What the Heroku button leaves: web (over TLS) and worker, the environment holding only the
    generated tokens, the add-ons' database and Redis, and the Moneybird fake's addresses (and the
    rig's switch naming the two servers on this machine the wizard may reach)."""
    moneybird = MoneybirdSandbox()
    stranger = Stranger()
    certificate = self_signed(tmp_path / "tls")
    redis = RedisServer(log_dir=tmp_path)
    redis.start()
    database_url = f"sqlite:///{tmp_path / 'woobird.db'}"
    processes: list[AppProcess] = []
    try:
        with (
            serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
            serve_in_thread(stranger.app()) as stranger.url,
        ):
            port = free_port()
            woobird_url = f"https://127.0.0.1:{port}"
            moneybird.oauth.redirect_uri = woobird_url + "/admin/setup/moneybird/callback"
            keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TZ"}}
            admin_token = secrets.token_urlsafe(32)
            env = keep | {
                "ADMIN_TOKEN": admin_token,
                "SECRET_KEY": secrets.token_hex(32),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "PORT": str(port),
                "MONEYBIRD_API_URL": f"{moneybird_url}/api/v2",
                "MONEYBIRD_OAUTH_URL": f"{moneybird_url}/oauth",
                "MONEYBIRD_CLIENT_ID": moneybird.oauth.client_id,
                "MONEYBIRD_CLIENT_SECRET": moneybird.oauth.client_secret,
                "MONEYBIRD_RATE_LIMIT": "1000/10",
                "LOG_FORMAT": "console",
                "PYTHONUNBUFFERED": "1",
                TEST_RIG_VARIABLE: ",".join(urlsplit(url).netloc for url in (shop.url, stranger.url)),
            }
            migrate(database_url)  # the release phase
            web_argv = procfile_command("web", port=port) + [
                "--ssl-certfile",
                str(certificate.certfile),
                "--ssl-keyfile",
                str(certificate.keyfile),
            ]
            processes += [
                AppProcess("web", web_argv, env=env, log_dir=tmp_path),
                AppProcess("worker", procfile_command("worker", port=port), env=env, log_dir=tmp_path),
            ]
            for process in processes:
                process.start()
            _wait_until_up(f"{woobird_url}/healthz")
            yield Deployment(
                url=woobird_url,
                admin_token=admin_token,
                moneybird=moneybird,
                processes=processes,
                stranger=stranger,
            )
    finally:
        for process in processes:
            process.stop()
        redis.stop()


FORGED_HOST = "evil.example"


@dataclass
class Admin:
    """A second admin session, over plain httpx: it can say what a browser cannot (a forged Host)."""

    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, *, host: str | None = None, **form: str) -> httpx.Response:
        headers = {"host": host} if host else {}
        return await self.client.post(path, data={"csrf": self.csrf, **form}, headers=headers)


@contextlib.asynccontextmanager
async def _admin(deployment: Deployment) -> AsyncIterator[Admin]:
    async with httpx.AsyncClient(base_url=deployment.url, verify=False, timeout=60) as client:
        signed_in = await client.post("/admin/login", data={"token": deployment.admin_token})
        assert signed_in.status_code == 303, signed_in.text
        page = await client.get("/admin/setup/shop")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, page.text[:1000]
        yield Admin(client, found[1])


async def _a_forged_host_is_sent_nowhere(deployment: Deployment, shop: RealShop) -> None:
    """Before woobird's address is confirmed: a forged Host neither becomes the key callback nor
    is echoed by a trailing-slash redirect."""
    async with _admin(deployment) as admin:
        connect = await admin.post("/admin/setup/shop", shop_url=shop.url, host=FORGED_HOST)
        slash = await admin.client.get("/admin/setup/", headers={"host": FORGED_HOST})
    offered = f'value="https://{FORGED_HOST}"'  # the suggestion in the editable field, nothing more
    assert FORGED_HOST not in connect.text.replace(offered, ""), connect.text[-3000:]
    assert connect.status_code == 422
    assert FORGED_HOST not in slash.headers.get("location", "")


async def _nothing_goes_where_the_admin_did_not_send_it(deployment: Deployment, shop: RealShop) -> None:
    """After the walk: another address typed into step 1 gets no key nor webhook secret, even when
    Install runs next; an address on this machine the rig did not name is not even connected to."""
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener, _admin(deployment) as admin:
        started = await admin.post("/admin/setup/shop", shop_url=deployment.stranger.url)
        installed = await admin.post("/admin/setup/install", public_url="")
        private = await admin.post("/admin/setup/shop", shop_url=f"http://127.0.0.1:{port}")
        settings = (await admin.client.get("/admin/settings")).text

    link = re.search(r'data-continue href="([^"]+)"', started.text)
    assert link, started.text[-3000:]
    callback = parse_qs(urlsplit(html.unescape(link[1])).query)["callback_url"][0]
    assert callback == deployment.url + "/setup/woocommerce/callback"
    assert installed.status_code == 200, installed.text[-3000:]
    assert f"<code>{shop.url}</code>" in settings  # the shop's address, still with its own keys
    for request in deployment.stranger.seen:
        sent = json.dumps(request)
        assert "authorization" not in request["headers"], request["path"]
        assert "ck_" not in sent, request["path"]
        assert "cs_" not in sent, request["path"]
    assert [request["path"] for request in deployment.stranger.seen] == ["/wp-json/"]  # the probe only
    hooks = shop.rest.get("/wc/v3/webhooks").json()
    assert {hook["delivery_url"] for hook in hooks} == {deployment.url + "/webhooks/woocommerce"}
    assert private.status_code == 422
    assert "is not on the public internet" in private.text
    assert connections == 0


async def test_a_new_deployment_is_set_up_in_the_browser_and_books_an_order_of_the_real_shop(
    shop: RealShop,
    deployment: Deployment,
    chromium: str,  # noqa: F811
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await _a_forged_host_is_sent_nowhere(deployment, shop)
        try:
            await walk(
                page,
                woobird_url=deployment.url,
                admin_token=deployment.admin_token,
                shop_url=shop.url,
                approve_on_shop=_approve_in_wp_admin(shop),
            )
        except Exception as exc:
            text = await page.inner_text("body", timeout=2000)
            pytest.fail(
                f"the wizard stopped at {page.url} ({exc}):\n{text[:2000]}\n"
                f"{deployment.logs()}\n{shop.log()[-2000:]}"
            )

        placed = place_order(shop, items=[("mug", 1)], email="eerste.klant@example.com")
        order = set_status(shop, placed, "completed")
        deadline = time.monotonic() + BOOKED_WITHIN_SECONDS
        state = None
        while time.monotonic() < deadline:
            await page.goto(f"{deployment.url}/admin")
            row = page.locator(f'tr[data-order="{order["id"]}"]').first
            state = await row.get_attribute("data-state") if await row.count() else None
            if state == "booked":
                break
            await page.wait_for_timeout(1000)
        assert state == "booked", deployment.logs()
        invoices = [
            invoice
            for invoice in deployment.moneybird.sales_invoices.values()
            if invoice.get("reference") == f"WooCommerce #{order['number']}"
        ]
        assert len(invoices) == 1
        assert Decimal(invoices[0]["total_price_incl_tax"]) == Decimal(order["total"])
        await browser.close()
    await _nothing_goes_where_the_admin_did_not_send_it(deployment, shop)


@pytest.mark.first_version_only(
    "the Deny link of WooCommerce's approval page (class-wc-auth.php) only redirects, "
    "the same in 9.9 and 10.0; woobird's answer to it does not depend on the shop"
)
async def test_denying_on_woocommerces_page_says_how_to_go_on_and_stores_no_key(
    shop: RealShop,
    deployment: Deployment,
    chromium: str,  # noqa: F811
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await page.goto(f"{deployment.url}/admin")
        await page.fill("input[name=token]", deployment.admin_token)
        await page.click("button:has-text('Sign in')")
        await page.click("button:has-text('Confirm this address')")
        await page.fill("input[name=shop_url]", shop.url)
        await page.click("button:has-text('Connect')")
        await page.wait_for_url(lambda url: "/wc-auth/v1/" in url)
        await _sign_in_on_the_shop(page, shop)
        await page.click("a.wc-auth-deny")
        await page.wait_for_url(lambda url: "/admin/setup/shop/return" in url and "bounced=1" in url)

        problems = await page.inner_text(".problems")
        settings = await (await page.request.get(f"{deployment.url}/admin/settings")).text()
        await browser.close()
    assert "access was denied" in problems
    assert "choose Approve" in problems
    assert 'data-setting="WOOCOMMERCE_CONSUMER_KEY" data-source="default"' in settings
