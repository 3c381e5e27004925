"""The whole set-up wizard, clicked through in a real browser the way a new user does it.

Shared by the browser test (against the fakes, and against the real WooCommerce of the real-shop
rig) and by `bench/screenshot_setup.py`, which photographs every step. `shoot(name)` is called on
each page worth a picture; `approve_on_shop` presses Approve on the shop's own authorization page
(the fake's, or the real wp-admin's after signing in).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from arq.connections import ArqRedis
from arq.worker import Worker
from playwright.async_api import Page

from app.db import create_engine, session_factory
from app.settings import Settings
from app.settings_live import LiveSettings
from workers.functions import job_functions

Shoot = Callable[[str], Awaitable[None]]
ShopApproval = Callable[[Page], Awaitable[None]]
WAIT_MS = 30_000
# The locale a browser of each language sends (its Accept-Language).
BROWSER_LOCALE: dict[str, str] = {"nl": "nl-NL", "en": "en-GB"}
# The buttons the walk presses and a heading of each step, as a browser in each language reads them.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "sign_in": "Sign in",
        "confirm_address": "Confirm this address",
        "connect": "Connect",
        "later": "Decide after connecting Moneybird",
        "connect_moneybird": "Connect with Moneybird",
        "save_token": "Check and save the token",
        "administration": "Use this administration",
        "preview_products": "Preview what would be created",
        "transfer": "Transfer",
        "next": "Next",
        "save": "Save and continue",
        "preview_history": "Preview (books nothing)",
        "from_now": "Book from now on",
        "install": "Install the webhook and check",
        "installed": "All is well: paid orders will be booked.",
        "shop_step": "1. Connect your WooCommerce shop",
        "bookkeeping_step": "4. Bookkeeping",
        "history_step": "5. History",
    },
    "nl": {
        "sign_in": "Inloggen",
        "confirm_address": "Bevestig dit adres",
        "connect": "Koppelen",
        "later": "Beslis na het koppelen van Moneybird",
        "connect_moneybird": "Koppel met Moneybird",
        "save_token": "Controleer en bewaar het token",
        "administration": "Gebruik deze administratie",
        "preview_products": "Bekijk wat er aangemaakt zou worden",
        "transfer": "overzetten",
        "next": "Volgende",
        "save": "Opslaan en verder",
        "preview_history": "Voorbeeld (boekt niets)",
        "from_now": "Boek vanaf nu",
        "install": "Installeer de webhook en controleer",
        "installed": "Alles in orde: betaalde bestellingen worden geboekt.",
        "shop_step": "1. Koppel je WooCommerce-winkel",
        "bookkeeping_step": "4. Boekhouding",
        "history_step": "5. Eerdere bestellingen",
    },
}


@contextlib.asynccontextmanager
async def worker_alongside(settings: Settings, redis: ArqRedis) -> AsyncIterator[None]:
    """The deployment's worker, running while the browser walks: the wizard's previews and transfers
    are its jobs (the web process only queues them). It reads the settings the wizard stores."""
    engine = create_engine(settings.database_url)
    live = LiveSettings(settings, session_factory(engine))
    await live.start()
    worker = Worker(
        functions=job_functions(),
        redis_pool=redis,
        poll_delay=0.05,
        handle_signals=False,
        ctx={"live_settings": live, "connection_services": {}, "retired_services": []},
        keep_result=0,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running  # a worker that failed says why here
        await engine.dispose()


async def _nothing(name: str) -> None:
    return None


async def approve_on_fake_shop(page: Page) -> None:
    await page.click("button.wc-auth-approve")


async def approve_on_fake_moneybird(page: Page) -> None:
    await page.click("button[value=allow]")


async def wait_for_task(page: Page, kind: str) -> str:
    """Reload (as the page's own refresh does) until the worker has finished the task; its end state."""
    for _ in range(WAIT_MS // 500):
        task = page.locator(f'[data-task="{kind}"]')
        if await task.count():
            state = await task.get_attribute("data-state")
            if state and state not in ("queued", "running", "cancelling"):
                return state
        await page.wait_for_timeout(500)
        await page.reload()
    raise AssertionError(f"the {kind} task did not finish in the page")


async def walk(
    page: Page,
    *,
    woobird_url: str,
    admin_token: str,
    shop_url: str,
    approve_on_shop: ShopApproval = approve_on_fake_shop,
    moneybird_token: str | None = None,
    preview_history_since: str | None = None,
    shoot: Shoot = _nothing,
    language: str = "en",
) -> None:
    """From the first visit to /admin to the green check: every step through its forms, pressing the
    buttons by their words in `language` (the browser's) and checking each step's heading in it."""
    words = LABELS[language]

    async def reads(key: str) -> None:
        assert await page.locator("html").get_attribute("lang") == language
        assert words[key] in await page.inner_text("main")

    def button(key: str) -> str:
        return f"main button:has-text('{words[key]}')"

    await page.goto(f"{woobird_url}/admin")
    await page.fill("input[name=token]", admin_token)
    await page.click(button("sign_in"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/shop")  # the first visit lands in the wizard
    # Step 1 first shows woobird's own address, as the browser opened it, for the admin to confirm.
    assert await page.input_value("input[name=public_url]") == woobird_url
    await shoot("setup-1-address")
    await page.click(button("confirm_address"))
    await page.wait_for_selector("input[name=shop_url]")
    await reads("shop_step")
    await page.fill("input[name=shop_url]", shop_url)
    await shoot("setup-1-woocommerce")
    await page.click(button("connect"))
    await page.wait_for_url(lambda url: "/wc-auth/v1/" in url)  # authorize, or login first
    await shoot("setup-1-woocommerce-approve")
    await approve_on_shop(page)
    await page.wait_for_url(f"{woobird_url}/admin/setup/products", timeout=WAIT_MS)
    await shoot("setup-2-products-waiting")
    await page.click(button("later"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/moneybird")
    if moneybird_token is None:
        await shoot("setup-3-moneybird")
        await page.click(button("connect_moneybird"))
        await page.wait_for_selector("button[value=allow]")
        await shoot("setup-3-moneybird-allow")
        await approve_on_fake_moneybird(page)
    else:
        await page.fill("input[name=token]", moneybird_token)
        await page.click(button("save_token"))
    await page.wait_for_selector(button("administration"))
    await shoot("setup-3-moneybird-administration")
    await page.click(button("administration"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/products")
    await page.click(button("preview_products"))
    assert await wait_for_task(page, "products-preview") == "done"
    await shoot("setup-2-products-preview")
    await page.click(button("transfer"))
    assert await wait_for_task(page, "products") == "done"
    await shoot("setup-2-products-transferred")
    await page.click(button("next"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/bookkeeping")
    await reads("bookkeeping_step")
    await shoot("setup-4-bookkeeping")
    await page.click(button("save"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/history")
    await reads("history_step")
    if preview_history_since:
        await page.fill("input[name=since]", preview_history_since)
        await page.click(button("preview_history"))
        assert await wait_for_task(page, "history-preview") == "done"
    await shoot("setup-5-history")
    await page.click(button("from_now"))
    await page.wait_for_url(f"{woobird_url}/admin/setup/install")
    await page.click(button("install"))
    await page.wait_for_selector('[data-installed="yes"]', timeout=WAIT_MS)
    await reads("installed")
    await shoot("setup-6-install")
