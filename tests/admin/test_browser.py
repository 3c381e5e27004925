"""The dashboard in a real headless Chromium: sign in, see a booked and a failed order, retry, see it booked.

The app runs with uvicorn over real HTTP, real Redis and a real SQLite ledger. The orders are
really booked — and one really fails — by the real worker against the fake shop and the fake
Moneybird (tests/harness.py); after Retry the same worker books the failed order, and the page
shows the invoice number Moneybird gave it.
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from app.schema import OrderState
from tests.admin.conftest import app_with_admin
from tests.harness import Harness
from tests.invoicing.reference_carts import order_document
from tests.server import serve_in_thread

# Found on PATH: Debian installs it as `chromium`.
CHROMIUM = "chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


async def _row_state(page: Page, order_id: int) -> str | None:
    return await page.locator(f'tr[data-order="{order_id}"]').first.get_attribute("data-state")


@pytest.fixture
def chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium for this test")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return path


async def _book(h: Harness, case: str, *, rejected: bool = False) -> int:
    order_id = int(h.shop.add_order(order_document(case))["id"])
    if rejected:
        h.moneybird.fail_next("POST /sales_invoices", kind="status", status=422)
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    return order_id


# What the page says in each browser language; the other language's words must not appear.
WORDS: dict[str, dict[str, Any]] = {
    "nl": {
        "sign_in": "Inloggen",
        "retry": "Bestelling {order} opnieuw proberen",
        "page": ["Recente bestellingen", "Bestellingen per status", "Mislukt (1)", "geboekt"],
        "total": "€\xa055,41",
        "rejected": "Moneybird weigerde de bestelling:",
        "report": "Maandrapport",
        "other": ["Recent orders", "Orders by state", "Sign out"],
        "switch": "English",
    },
    "en": {
        "sign_in": "Sign in",
        "retry": "Retry order {order}",
        "page": ["Recent orders", "Orders by state", "Failures (1)", "booked"],
        "total": "€55.41",
        "rejected": "Moneybird rejected the order:",
        "report": "Month report",
        "other": ["Recente bestellingen", "Bestellingen per status", "Uitloggen"],
        "switch": "Nederlands",
    },
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("language", ["nl", "en"])
async def test_sign_in_see_orders_retry_and_see_it_booked(
    chromium: str, harness: Harness, language: str
) -> None:
    words = WORDS[language]
    h = harness
    booked_id = await _book(h, "b")
    failed_id = await _book(h, "a", rejected=True)
    booked, failed = await h.record(booked_id), await h.record(failed_id)
    assert booked is not None
    assert failed is not None
    assert (booked.state, failed.state) == (OrderState.BOOKED, OrderState.FAILED)
    assert booked.invoice_number
    assert failed.error
    assert "Moneybird rejected the order" in failed.error
    token = h.settings.admin_token.get_secret_value()

    with serve_in_thread(app_with_admin(h.settings)) as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(locale={"nl": "nl-NL", "en": "en-GB"}[language])

            unauthenticated = await page.goto(f"{base_url}/admin")
            assert unauthenticated is not None
            assert unauthenticated.status == 401
            assert await page.locator(f"text={booked.invoice_number}").count() == 0

            await page.fill("input[name=token]", token)
            assert await page.locator("html").get_attribute("lang") == language
            await page.click(f"main button:has-text('{words['sign_in']}')")
            await page.wait_for_url(f"{base_url}/admin")
            text = await page.locator("body").inner_text()
            for expected in words["page"]:
                assert expected in text
            for unexpected in words["other"]:
                assert unexpected not in text
            assert words["total"] in text  # order b's 55.41, as the language writes an amount
            assert await _row_state(page, booked_id) == "booked"
            assert await _row_state(page, failed_id) == "failed"
            assert await page.locator(f"a:has-text('{booked.invoice_number}')").first.is_visible()
            # The reason the ledger recorded, in the page's language (what Moneybird said kept as it said it).
            reason = failed.error.replace("Moneybird rejected the order:", words["rejected"])
            assert await page.locator(f"text={reason}").first.is_visible()

            await page.click(f"button[aria-label='{words['retry'].format(order=failed_id)}']")
            await page.wait_for_url(f"{base_url}/admin?retried={failed_id}")
            assert await _row_state(page, failed_id) == "queued"

            # The real worker, against the fake Moneybird: the booking, then its note in the shop.
            assert await h.run_worker() == 2

            await page.reload()
            assert await _row_state(page, failed_id) == "booked"
            (invoice,) = h.invoices_for(str(order_document("a")["number"]))
            assert invoice["state"] == "paid"
            assert Decimal(invoice["total_price_incl_tax"]) == Decimal(order_document("a")["total"])
            assert await page.locator(f"a:has-text('{invoice['invoice_id']}')").first.is_visible()
            assert (
                await page.locator(f"button[aria-label='{words['retry'].format(order=failed_id)}']").count()
                == 0
            )

            # The header's switch: the other language, remembered on the next page too.
            await page.click(f"header button:has-text('{words['switch']}')")
            other = "en" if language == "nl" else "nl"
            assert await page.locator("html").get_attribute("lang") == other
            await page.goto(f"{base_url}/admin/report")
            assert await page.locator("html").get_attribute("lang") == other
            assert WORDS[other]["report"] in await page.locator("h1").inner_text()
            await browser.close()
