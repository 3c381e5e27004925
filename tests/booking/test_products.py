"""Product transfer: SKUs become Moneybird product identifiers; a second run adopts, creates nothing."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis

from app.booking.products import load_catalogue, product_id_for, transfer_products
from app.moneybird.errors import MoneybirdAuthError
from tests.booking._wiring import wired

SEEDED_SKUS = {"MOK-DB-01", "SCH-KAT-OLIJF", "BOEK-HP", "THEE-100-G", "THEE-250-G"}


async def test_transfer_creates_then_adopts(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, moneybird_ledger_account_id="Omzet") as w:
        w.shop.add_product("Cadeaubon", price="25.00")  # no SKU: left out
        dry = await transfer_products(w.services, dry_run=True)
        assert {sku for sku, _ in dry.created} == SEEDED_SKUS
        assert w.moneybird.products == {}
        assert dry.without_sku == 1

        first = await transfer_products(w.services)
        assert not first.refused, first.refused
        assert {sku for sku, _ in first.created} == SEEDED_SKUS
        products = {p["identifier"]: p for p in w.moneybird.products.values()}
        assert set(products) == SEEDED_SKUS
        nine = w.moneybird.tax_rate_id(9)
        assert str(products["BOEK-HP"]["tax_rate_id"]) == nine
        assert str(products["THEE-250-G"]["tax_rate_id"]) == nine
        assert str(products["MOK-DB-01"]["tax_rate_id"]) == w.moneybird.tax_rate_id(21)
        assert str(products["MOK-DB-01"]["ledger_account_id"]) == w.moneybird.ledger_account_id("Omzet")

        second = await transfer_products(w.services)
        assert second.created == []
        assert {sku for sku, _ in second.adopted} == SEEDED_SKUS
        assert len(w.moneybird.products) == len(SEEDED_SKUS)

        catalogue = await load_catalogue(w.services)
        assert product_id_for("BOEK-HP", catalogue) == str(products["BOEK-HP"]["id"])
        assert product_id_for("", catalogue) is None
        assert product_id_for("ONBEKEND", catalogue) is None


async def test_a_tax_class_without_a_moneybird_rate_is_refused(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, moneybird_ledger_account_id="Omzet") as w:
        w.shop.add_tax_rate(rate="13", name="Vreemd", tax_class="odd-rate")
        w.shop.add_product("Rare mok", price="10.00", sku="MOK-RAAR", tax_class="odd-rate")
        report = await transfer_products(w.services)
        assert [sku for sku, _ in report.refused] == ["MOK-RAAR"]
        assert "MONEYBIRD_TAX_RATES" in report.refused[0][1]
        assert "MOK-RAAR" not in {p["identifier"] for p in w.moneybird.products.values()}


async def test_without_a_ledger_account_setting_nothing_is_guessed(
    database_url: str, redis: ArqRedis
) -> None:
    async with wired(database_url=database_url, redis=redis) as w:  # the sandbox has 3 revenue accounts
        report = await transfer_products(w.services)
        assert {sku for sku, _ in report.refused} == SEEDED_SKUS
        assert "MONEYBIRD_LEDGER_ACCOUNT_ID" in report.refused[0][1]
        assert w.moneybird.products == {}


async def test_a_token_without_the_settings_scope_is_told_so(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, moneybird_ledger_account_id="Omzet") as w:
        w.moneybird.token_scopes = frozenset({"sales_invoices"})  # products need `settings`
        with pytest.raises(MoneybirdAuthError) as refused:
            await transfer_products(w.services)
        assert "No access to settings" in str(refused.value)
        assert "MONEYBIRD_API_TOKEN" in str(refused.value)
        assert w.moneybird.products == {}


async def test_a_variation_reporting_its_parents_sku_has_no_sku_of_its_own(
    database_url: str, redis: ArqRedis
) -> None:
    """WooCommerce answers a variation without a SKU of its own with its parent's SKU (seen on
    9.9.5 and 10.0.2): that SKU identifies none of the variations, so none becomes that product."""
    async with wired(database_url=database_url, redis=redis, moneybird_ledger_account_id="Omzet") as w:
        parent = w.shop.add_variable_product(
            "T-shirt", attribute="Maat", options={"S": "19.99", "M": "19.99"}, sku="TS"
        )
        w.shop.variations[parent["id"]][1]["sku"] = "TS"  # M: no SKU of its own
        report = await transfer_products(w.services)
        identifiers = {p["identifier"] for p in w.moneybird.products.values()}
        assert "TS-S" in identifiers
        assert "TS" not in identifiers
        assert report.without_sku == 1


async def test_a_0_percent_product_gets_the_plain_0_percent_rate_as_invoice_lines_do(
    database_url: str, redis: ArqRedis
) -> None:
    """Moneybird has several 0 % sales rates (0 %, reverse charge, export): the plain one, told
    apart by name exactly as the invoice plan does, not a refusal."""
    async with wired(database_url=database_url, redis=redis, moneybird_ledger_account_id="Omzet") as w:
        w.shop.add_tax_rate(rate="0", name="BTW 0%", tax_class="zero-rate")
        w.shop.add_product("Cadeaubon", price="25.00", sku="BON-25", tax_class="zero-rate")
        report = await transfer_products(w.services)
        assert not report.refused, report.refused
        (voucher,) = [p for p in w.moneybird.products.values() if p["identifier"] == "BON-25"]
        assert str(voucher["tax_rate_id"]) == w.moneybird.tax_rate_id(0, name_contains="0%")
