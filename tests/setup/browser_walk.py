"""The whole set-up wizard, clicked through in a real browser the way a new user does it.

Shared by the browser test (against the fakes, and against the real WooCommerce of the real-shop
rig) and by `bench/screenshot_setup.py`, which photographs every step. `shoot(name)` is called on
each page worth a picture; `approve_on_shop` presses Approve on the shop's own authorization page
(the fake's, or the real wp-admin's after signing in).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import Page

Shoot = Callable[[str], Awaitable[None]]
ShopApproval = Callable[[Page], Awaitable[None]]
WAIT_MS = 30_000


async def _nothing(name: str) -> None:
    return None


async def approve_on_fake_shop(page: Page) -> None:
    await page.click("button.wc-auth-approve")


async def approve_on_fake_moneybird(page: Page) -> None:
    await page.click("button[value=allow]")


async def wait_for_task(page: Page, kind: str) -> str:
    """Reload (as the page's own refresh does) until the task is no longer running; its end state."""
    for _ in range(WAIT_MS // 500):
        task = page.locator(f'[data-task="{kind}"]')
        if await task.count():
            state = await task.get_attribute("data-state")
            if state and state != "running":
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
) -> None:
    """From the first visit to /admin to the green check: every step through its forms."""
    await page.goto(f"{woobird_url}/admin")
    await page.fill("input[name=token]", admin_token)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/shop")  # the first visit lands in the wizard
    # Step 1 first shows woobird's own address, as the browser opened it, for the admin to confirm.
    assert await page.input_value("input[name=public_url]") == woobird_url
    await shoot("setup-1-address")
    await page.click("button:has-text('Confirm this address')")
    await page.wait_for_selector("input[name=shop_url]")
    await page.fill("input[name=shop_url]", shop_url)
    await shoot("setup-1-woocommerce")
    await page.click("button:has-text('Connect')")
    await page.wait_for_url(lambda url: "/wc-auth/v1/" in url)  # authorize, or login first
    await shoot("setup-1-woocommerce-approve")
    await approve_on_shop(page)
    await page.wait_for_url(f"{woobird_url}/admin/setup/products", timeout=WAIT_MS)
    await shoot("setup-2-products-waiting")
    await page.click("button:has-text('Decide after connecting Moneybird')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/moneybird")
    if moneybird_token is None:
        await shoot("setup-3-moneybird")
        await page.click("button:has-text('Connect with Moneybird')")
        await page.wait_for_selector("button[value=allow]")
        await shoot("setup-3-moneybird-allow")
        await approve_on_fake_moneybird(page)
    else:
        await page.fill("input[name=token]", moneybird_token)
        await page.click("button:has-text('Check and save the token')")
    await page.wait_for_selector("button:has-text('Use this administration')")
    await shoot("setup-3-moneybird-administration")
    await page.click("button:has-text('Use this administration')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/products")
    await page.click("button:has-text('Preview what would be created')")
    assert await wait_for_task(page, "products-preview") == "done"
    await shoot("setup-2-products-preview")
    await page.click("button:has-text('Transfer')")
    assert await wait_for_task(page, "products") == "done"
    await shoot("setup-2-products-transferred")
    await page.click("button:has-text('Next')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/bookkeeping")
    await shoot("setup-4-bookkeeping")
    await page.click("button:has-text('Save and continue')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/history")
    if preview_history_since:
        await page.fill("input[name=since]", preview_history_since)
        await page.click("button:has-text('Preview (books nothing)')")
        assert await wait_for_task(page, "history-preview") == "done"
    await shoot("setup-5-history")
    await page.click("button:has-text('Book from now on')")
    await page.wait_for_url(f"{woobird_url}/admin/setup/install")
    await page.click("button:has-text('Install the webhook and check')")
    await page.wait_for_selector('[data-installed="yes"]', timeout=WAIT_MS)
    await shoot("setup-6-install")
