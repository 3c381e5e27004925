"""The whole wizard in real Chromium against the fakes, over real HTTP: woobird served over TLS
(self-signed, as WooCommerce wants an https callback), the fake shop's approval page, the fake
Moneybird's consent page; then a test order, delivered by the shop's webhook and booked by the
worker, shows up booked on the dashboard. Nothing typed in a terminal after the deploy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from playwright.async_api import async_playwright

from app import schema
from app.address_guard import TEST_RIG_VARIABLE
from app.constants import WORKER_HEALTH_KEY
from app.main import create_app
from app.runtime import build_services
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import sample_carts
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from tests.admin.test_browser import CHROMIUM_ARGS, chromium  # noqa: F401  (the fixture)
from tests.server import serve_in_thread
from tests.setup.browser_walk import walk, worker_alongside
from tests.setup.conftest import ADMIN_TOKEN, fresh_settings
from tests.tls import self_signed
from workers.functions import job_functions

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_a_new_user_clicks_through_the_wizard_and_sees_a_test_order_booked(
    chromium: str,  # noqa: F811
    sqlite_url: str,
    redis: ArqRedis,
    tmp_path: Path,
    language: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = ShopSandbox()
    moneybird = MoneybirdSandbox()
    certificate = self_signed(tmp_path / "tls")
    with (
        serve_in_thread(create_shop_app(shop)) as shop_url,
        serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
    ):
        shop.url = shop_url
        # The rig names its own fake shop: the wizard reaches nothing else on this machine.
        monkeypatch.setenv(TEST_RIG_VARIABLE, shop_url.removeprefix("http://"))
        settings = fresh_settings(
            sqlite_url,
            moneybird_api_url=moneybird_url + "/api/v2",
            moneybird_oauth_url=moneybird_url + "/oauth",
            moneybird_client_id=moneybird.oauth.client_id,
            moneybird_client_secret=moneybird.oauth.client_secret,
        )
        app = create_app(settings)
        with serve_in_thread(app, tls=certificate) as woobird_url:
            moneybird.oauth.redirect_uri = woobird_url + "/admin/setup/moneybird/callback"
            await redis.set(WORKER_HEALTH_KEY, b"a worker is running", ex=300)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                context = await browser.new_context(
                    ignore_https_errors=True, locale={"nl": "nl-NL", "en": "en-US"}[language]
                )
                page = await context.new_page()

                try:
                    async with worker_alongside(settings, redis):
                        await walk(
                            page,
                            woobird_url=woobird_url,
                            admin_token=ADMIN_TOKEN,
                            shop_url=shop_url,
                            language=language,
                        )
                except Exception:
                    print("DEBUG", page.url, await page.inner_text("main"))
                    raise

                state = app.state.woobird
                assert (
                    shop.authorization_requests[0]["callback_url"]
                    == woobird_url + "/setup/woocommerce/callback"
                )
                assert state.settings.public_url == woobird_url  # as the admin confirmed it
                assert [d.status for d in shop.deliveries if d.ping] == [200]  # the ping was answered
                assert set(moneybird.oauth.granted_scopes) == {"sales_invoices", "settings"}

                # The test order: paid and completed in the shop, told to woobird by the webhook.
                # (paid after the moment the history step chose: "from now on")
                order = shop.add_order(sample_carts(datetime.now(UTC) + timedelta(minutes=30))[0])
                assert await shop.deliver(order["id"]) == 202
                services = await build_services(state.settings, redis)
                worker = Worker(
                    functions=job_functions(),
                    redis_pool=redis,
                    burst=True,
                    poll_delay=0.01,
                    handle_signals=False,
                    ctx={"services": services, "owns_services": True},
                    keep_result=0,
                )
                await worker.async_run()

                await page.goto(f"{woobird_url}/admin")
                row = page.locator(f'tr[data-order="{order["id"]}"]').first
                assert await row.get_attribute("data-state") == schema.OrderState.BOOKED.value
                booked = {"nl": "geboekt", "en": "booked"}[language]
                assert await row.locator(".pill").inner_text() == booked
                assert len(moneybird.sales_invoices) == 1
                invoice = next(iter(moneybird.sales_invoices.values()))
                assert await page.locator(f"a:has-text('{invoice['invoice_id']}')").count() >= 1
                await browser.close()
