"""A second shop added through the wizard in real Chromium, against the fakes, over real HTTP
(PostgreSQL): from the shops list, "Add a shop", its name, the shop's approval page and Moneybird's
consent page (which return to woobird's one registered address, and still land in the new shop's
wizard); it ends with both shops on /admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from arq.connections import ArqRedis
from playwright.async_api import async_playwright

from app.address_guard import TEST_RIG_VARIABLE
from app.connections import find_connection
from app.db import create_engine, session_factory
from app.main import create_app
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import normalise_database_url
from app.settings_store import read_stored
from tests.admin.test_browser import CHROMIUM_ARGS, chromium  # noqa: F401  (the fixture)
from tests.conftest import _truncate
from tests.server import serve_in_thread
from tests.setup.browser_walk import WAIT_MS
from tests.setup.conftest import ADMIN_TOKEN, fresh_settings
from tests.tls import self_signed

pytestmark = pytest.mark.browser


async def test_the_admin_adds_a_second_shop_through_the_wizard_and_sees_both(
    chromium: str,  # noqa: F811
    postgres_url: str,
    redis: ArqRedis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _truncate(postgres_url)
    shop = ShopSandbox()
    moneybird = MoneybirdSandbox()
    certificate = self_signed(tmp_path / "tls")
    with (
        serve_in_thread(create_shop_app(shop)) as shop_url,
        serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
    ):
        shop.url = shop_url
        monkeypatch.setenv(TEST_RIG_VARIABLE, shop_url.removeprefix("http://"))
        settings = fresh_settings(
            postgres_url,
            moneybird_api_url=moneybird_url + "/api/v2",
            moneybird_oauth_url=moneybird_url + "/oauth",
            moneybird_client_id=moneybird.oauth.client_id,
            moneybird_client_secret=moneybird.oauth.client_secret,
        )
        app = create_app(settings)
        with serve_in_thread(app, tls=certificate) as woobird_url:
            moneybird.oauth.redirect_uri = woobird_url + "/admin/setup/moneybird/callback"
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                context = await browser.new_context(ignore_https_errors=True, locale="en-GB")
                page = await context.new_page()
                await page.goto(f"{woobird_url}/admin/login")
                await page.fill("input[name=token]", ADMIN_TOKEN)
                await page.click("main button:has-text('Sign in')")
                await page.goto(f"{woobird_url}/admin/connections")
                await page.click("a[data-add-shop]")
                await page.fill("input[name=name]", "Second Shop")  # refused: not a URL-safe name
                await page.click("main button:has-text('Start the set-up wizard')")
                assert "cannot name a connection" in await page.inner_text("main")
                await page.fill("input[name=name]", "second")
                await page.click("main button:has-text('Start the set-up wizard')")
                await page.wait_for_url(f"{woobird_url}/admin/c/second/setup/shop")
                await page.click("main button:has-text('Confirm this address')")
                await page.wait_for_selector("input[name=shop_url]")
                await page.fill("input[name=shop_url]", shop_url)
                await page.click("main button:has-text('Connect')")
                await page.wait_for_url(lambda url: "/wc-auth/v1/" in url)
                await page.click("button.wc-auth-approve")
                await page.wait_for_url(f"{woobird_url}/admin/c/second/setup/products", timeout=WAIT_MS)
                await page.click("main button:has-text('Decide after connecting Moneybird')")
                await page.wait_for_url(f"{woobird_url}/admin/c/second/setup/moneybird")
                await page.click("main button:has-text('Connect with Moneybird')")
                await page.wait_for_url(lambda url: "/oauth/" in url)
                await page.click("button[value=allow]")
                # Moneybird returns to the one registered address; the wizard goes on in the new shop's.
                await page.wait_for_url(f"{woobird_url}/admin/c/second/setup/moneybird", timeout=WAIT_MS)
                await page.click("main button:has-text('Use this administration')")
                await page.wait_for_url(lambda url: "/admin/c/second/setup/" in url)

                await page.goto(f"{woobird_url}/admin")
                assert await page.locator("tr[data-connection=environment]").count() == 1
                row = page.locator("tr[data-connection=second]")
                assert shop_url in await row.inner_text()
                await browser.close()

    engine = create_engine(normalise_database_url(postgres_url))
    sessions = session_factory(engine)
    second = await find_connection(sessions, "second")
    async with sessions() as session:
        theirs = (await read_stored(session, settings, connection_id=second.id)).values
        first = (await read_stored(session, settings)).values
    await engine.dispose()
    assert theirs["WOOCOMMERCE_URL"] == shop_url
    assert theirs["MONEYBIRD_ADMINISTRATION_ID"] == moneybird.administration_id
    assert "MONEYBIRD_API_TOKEN" in theirs
    assert not {"WOOCOMMERCE_URL", "MONEYBIRD_API_TOKEN"} & set(first)  # connection 1's store untouched
