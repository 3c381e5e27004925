"""Steps 2, 4, 5 and 6 against the fakes, the first visit to /admin, and the whole wizard in order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from app.constants import WORKER_HEALTH_KEY
from app.sandbox.samples import sample_carts
from app.setup import tasks
from tests.setup.conftest import Wizard


async def through_moneybird(wizard: Wizard) -> None:
    assert (await wizard.web.get("/admin/setup")).status_code == 303  # the first visit: the wizard starts
    assert (await wizard.connect_shop()).status_code == 303
    assert (await wizard.paste_token()).status_code == 303
    assert (await wizard.choose_administration()).status_code == 303


async def wait_for(wizard: Wizard, kind: str, *, connection_id: int = 1) -> tasks.TaskStatus:
    """The task the page queued, once a worker ran it (the web process runs none itself)."""
    status = await tasks.read_task(wizard.redis, kind, connection_id=connection_id)
    assert status is not None
    assert status.state == "queued", status
    await wizard.run_worker()
    status = await tasks.read_task(wizard.redis, kind, connection_id=connection_id)
    assert status is not None
    assert not status.active, status
    return status


def _form(page: str) -> dict[str, str]:
    """The bookkeeping form as the browser would submit it: every select at its selected option."""
    values = {"csrf": re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]}  # type: ignore[index]
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        values[name] = chosen[1] if chosen else ""
    values["invoice_kind"] = "sales_invoice"
    return values


async def test_the_first_visit_to_admin_lands_in_the_wizard(wizard: Wizard) -> None:
    first = await wizard.web.get("/admin")
    start = await wizard.web.get("/admin/setup")

    assert first.status_code == 303
    assert first.headers["location"] == "/admin/setup"
    assert start.headers["location"] == "/admin/setup/shop"


async def test_products_wait_for_moneybird_then_preview_and_transfer(wizard: Wizard) -> None:
    wizard.shop.add_product("Mok", price="12.50", sku="MOK-1")
    wizard.shop.add_product("Theedoek", price="8.00", sku="DOEK-1", tax_class="reduced-rate")
    wizard.shop.add_product("Zonder SKU", price="3.00")
    assert (await wizard.connect_shop()).headers["location"] == "/admin/setup/products"
    early = await wizard.post("/admin/setup/products", {"action": "preview"})
    assert early.status_code == 409
    later = await wizard.post("/admin/setup/products", {"action": "later"})
    assert later.headers["location"] == "/admin/setup/moneybird"  # products wait for Moneybird
    await wizard.paste_token()
    back = await wizard.choose_administration()
    assert back.headers["location"] == "/admin/setup/products"

    account = wizard.moneybird.ledger_account_id("Omzet")
    await wizard.post("/admin/setup/products", {"action": "preview", "ledger_account": account})
    preview = await wait_for(wizard, "products-preview")
    page = (await wizard.web.get("/admin/setup/products")).text
    created_by_preview = len(wizard.moneybird.products)
    await wizard.post("/admin/setup/products", {"action": "transfer"})
    transfer = await wait_for(wizard, "products")

    planned = preview.counts["created"]
    assert preview.counts["refused"] == 0, preview.lines
    assert preview.counts["without_sku"] >= 1
    assert planned >= 2
    assert f"Transfer {planned} products" in page
    assert created_by_preview == 0
    assert transfer.state == "done"
    assert transfer.counts["created"] == planned == len(wizard.moneybird.products)
    assert transfer.percent == 100
    created = {p["identifier"] for p in wizard.moneybird.products.values()}
    assert {"MOK-1", "DOEK-1"} <= created


async def test_an_administration_without_a_rate_the_shop_charges_names_it_and_how_to_create_it(
    wizard: Wizard,
) -> None:
    await through_moneybird(wizard)
    administration = wizard.moneybird.administration()
    del administration.tax_rates[wizard.moneybird.tax_rate_id(9)]

    page = await wizard.web.get("/admin/setup/bookkeeping")
    saved = await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))

    assert "(9 %) has no Moneybird tax rate" in page.text
    assert "Settings → Tax rates → New tax rate" in page.text
    assert saved.status_code == 422
    assert "MONEYBIRD_TAX_RATES" not in await wizard.stored()


async def test_bookkeeping_proposes_the_rates_and_stores_the_choices(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    form = _form(page.text) | {"invoice_kind": "external_sales_invoice", "exact_vat": "1"}

    saved = await wizard.web.post("/admin/setup/bookkeeping", data=form)

    assert saved.status_code == 303, saved.text
    await wizard.state.refresh_settings(force=True)
    settings = wizard.state.settings
    assert settings.moneybird_tax_rates["21"] == wizard.moneybird.tax_rate_id(21)
    assert settings.moneybird_tax_rates["9"] == wizard.moneybird.tax_rate_id(9)
    assert settings.invoice_kind == "external_sales_invoice"
    assert settings.invoice_exact_vat is True
    assert settings.moneybird_workflow_id == wizard.moneybird.administration().default_workflow()["id"]


async def test_history_previews_counts_and_refusals_before_booking(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    now = datetime.now(UTC)
    for cart in sample_carts(now - timedelta(days=3)):
        wizard.shop.add_order(cart)
    since = (now - timedelta(days=10)).date().isoformat()

    await wizard.post("/admin/setup/history", {"action": "preview", "since": since})
    preview = await wait_for(wizard, "history-preview")
    shown = (await wizard.web.get("/admin/setup/history")).text

    assert preview.state == "done", preview.message
    assert preview.counts["would_book"] >= 1
    assert preview.counts["refused"] >= 1  # the sample German 7 % order has no rate
    assert any("7" in line for line in preview.lines)
    assert "Book them" in shown
    assert "total of the invoices that would be booked" in shown
    # How long booking them takes: requests × the limit's seconds per request.
    assert f"{preview.counts['would_book']} orders, " in shown
    assert "at Moneybird&#39;s limit" in shown or "at Moneybird's limit" in shown
    assert wizard.moneybird.administration().invoice_numbers == {}  # a preview books nothing


async def test_install_creates_the_webhook_answers_its_ping_and_is_green(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    await wizard.post("/admin/setup/history", {"action": "from_now"})
    await wizard.redis.set(WORKER_HEALTH_KEY, "j_complete=0")  # a worker is running

    installed = await wizard.post("/admin/setup/install", {"public_url": "https://woobird.test"})

    assert installed.status_code == 200, installed.text
    assert 'data-installed="yes"' in installed.text
    assert "place a test order" in installed.text.lower()
    hooks = list(wizard.shop.webhooks.values())
    assert [(h["topic"], h["delivery_url"], h["status"]) for h in hooks] == [
        ("order.updated", "https://woobird.test/webhooks/woocommerce", "active")
    ]
    stored = await wizard.stored()
    assert stored["PUBLIC_URL"] == "https://woobird.test"
    assert hooks[0]["secret"] == stored["WOOCOMMERCE_WEBHOOK_SECRET"]
    assert [d.status for d in wizard.shop.deliveries if d.ping] == [200]  # woobird answered the ping
    assert (await wizard.web.get("/admin")).status_code == 200  # the dashboard, no longer the wizard


async def test_install_without_a_worker_says_so(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    await wizard.post("/admin/setup/history", {"action": "from_now"})

    installed = await wizard.post("/admin/setup/install", {"public_url": "https://woobird.test"})

    assert installed.status_code == 422
    assert "is the worker process running?" in installed.text
    assert (await wizard.web.get("/admin")).status_code == 303  # still the wizard
