"""Product transfer: the shop's products (and variations) with a SKU become Moneybird products.

Optional, as hosted connectors offer it at install. The SKU is the Moneybird `identifier`, so a
second run adopts what the first made instead of making it twice. The SKU → Moneybird product id
map is kept in the ledger, so booking can put `product_id` on invoice lines without spending
rate-limited Moneybird requests on lookups (`product_id_for`).

The tax rate is never guessed: the product's WooCommerce tax class gives a percentage (from the
shop's tax table for the administration's country), which must match exactly one Moneybird sales
tax rate (or a MONEYBIRD_TAX_RATES entry); otherwise the product is refused with the reason.

A transfer may stop when `out_of_time()` says so (the worker's slices, app/setup/task_jobs.py): it
keeps what it made in the catalogue and returns its report unfinished; handed back as `resume=`,
the next call skips the SKUs that report already names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.booking import ledger
from app.db import transaction
from app.invoicing.reference import AdministrationReference
from app.invoicing.vat import RateBook, VatRefusal, normalise_tax_key
from app.moneybird.models import ProductCreate
from app.runtime import Services
from app.woocommerce.models import Product

log = structlog.get_logger("woobird.products")

# Service-state key of the SKU → Moneybird product id map (JSON object).
PRODUCT_CATALOGUE = "moneybird_products"
_STANDARD_CLASS = "standard"


@dataclass(frozen=True, slots=True)
class ShopProduct:
    """One sellable thing with a SKU: a simple product or a variation."""

    sku: str
    title: str
    price: Decimal
    tax_class: str
    taxable: bool


@dataclass
class TransferReport:
    dry_run: bool
    created: list[tuple[str, str]] = field(default_factory=list)  # sku, Moneybird id ("" when dry)
    adopted: list[tuple[str, str]] = field(default_factory=list)
    without_sku: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # sku, reason
    finished: bool = True  # False: stopped by `out_of_time`, go on with `resume=`

    def handled(self) -> set[str]:
        return {sku for sku, _ in (*self.created, *self.adopted, *self.refused)}


def product_id_for(sku: str | None, catalogue: Mapping[str, str]) -> str | None:
    """The Moneybird product id for a line's SKU, or None: an invoice line then goes without one."""
    if not sku:
        return None
    return catalogue.get(sku.strip())


async def load_catalogue(services: Services) -> dict[str, str]:
    """The SKU → Moneybird product id map the last transfer wrote (empty when none ran)."""
    async with services.sessions() as session:
        return await catalogue_in(session)


async def catalogue_in(session: AsyncSession) -> dict[str, str]:
    """`load_catalogue` in a session the caller reads more with."""
    raw = await ledger.get_state(session, PRODUCT_CATALOGUE)
    return dict(json.loads(raw)) if raw else {}


async def transfer_products(
    services: Services,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    resume: TransferReport | None = None,
    out_of_time: Callable[[], bool] | None = None,
) -> TransferReport:
    """Create (or adopt) every product with a SKU; `progress(done, total)` after each one."""
    report = resume or TransferReport(dry_run=dry_run)
    report.finished = False
    reference = await services.reference.get(services.moneybird)
    rates = await _shop_rates(services, country=reference.country)
    ledger_account = _ledger_account(services, reference)
    catalogue = await load_catalogue(services)
    listing = TransferReport(dry_run=dry_run)  # listed afresh: its counts replace the last call's
    products = await shop_products(services, listing)
    handled = report.handled()
    report.without_sku = listing.without_sku
    report.refused += [(sku, reason) for sku, reason in listing.refused if sku not in handled]
    handled |= {sku for sku, _ in listing.refused}
    todo = [product for product in products if product.sku not in handled]
    total = len(handled) + len(todo)
    try:
        for done, product in enumerate(todo, start=len(handled)):
            if progress is not None:
                progress(done, total)
            if out_of_time is not None and out_of_time():
                return report
            await _transfer_one(
                services,
                product,
                report,
                catalogue=catalogue,
                rates=rates,
                reference=reference,
                ledger_account=ledger_account,
            )
        report.finished = True
        if progress is not None:
            progress(total, total)
        return report
    finally:
        if not dry_run:  # what was made so far, also when stopped early
            async with transaction(services.sessions) as session:
                await ledger.set_state(session, PRODUCT_CATALOGUE, json.dumps(catalogue, sort_keys=True))


async def _transfer_one(
    services: Services,
    product: ShopProduct,
    report: TransferReport,
    *,
    catalogue: dict[str, str],
    rates: Mapping[str, Decimal],
    reference: AdministrationReference,
    ledger_account: str | None,
) -> None:
    problem = None if ledger_account else "set MONEYBIRD_LEDGER_ACCOUNT_ID (more than one revenue account)"
    tax_rate_id, tax_problem = _tax_rate(product, rates=rates, reference=reference, services=services)
    problem = problem or tax_problem
    if problem:
        report.refused.append((product.sku, problem))
        return
    existing = await services.moneybird.product_by_identifier(product.sku)
    if existing is not None:
        report.adopted.append((product.sku, existing.id))
        catalogue[product.sku] = existing.id
        return
    if report.dry_run:
        report.created.append((product.sku, ""))
        return
    assert ledger_account is not None
    assert tax_rate_id is not None
    created = await services.moneybird.create_product(
        ProductCreate(
            title=product.title,
            identifier=product.sku,
            price=product.price,
            tax_rate_id=tax_rate_id,
            ledger_account_id=ledger_account,
            currency=reference.currency,
        )
    )
    catalogue[product.sku] = created.id
    report.created.append((product.sku, created.id))
    log.info("product created in Moneybird", sku=product.sku, product_id=created.id)


async def shop_products(services: Services, report: TransferReport) -> list[ShopProduct]:
    """Every simple product and variation with a SKU; a variable product itself is not sold."""
    found: list[ShopProduct] = []
    page, pages = 1, 1
    while page <= pages:
        products, pages = await services.shop.list_products(page=page)
        for product in products:
            if product.type == "variable":
                for variation in await services.shop.list_variations(product.id):
                    _add(found, report, variation, parent=product)
            elif product.type == "simple":
                _add(found, report, product, parent=None)
        page += 1
    return found


def _add(found: list[ShopProduct], report: TransferReport, item: Product, *, parent: Product | None) -> None:
    sku = item.sku.strip()
    # WooCommerce reports a variation without a SKU of its own under its parent's SKU, which does not
    # tell it from its siblings: it has no SKU to identify a Moneybird product by.
    if not sku or (parent is not None and sku == parent.sku.strip()):
        report.without_sku += 1
        return
    title = item.name or (f"{parent.name} — {sku}" if parent else sku)
    try:
        price = Decimal(item.regular_price or item.price or "0")
    except InvalidOperation:
        report.refused.append((sku, f"price {item.regular_price!r} is not an amount"))
        return
    tax_class = item.tax_class or (parent.tax_class if parent else "")
    found.append(ShopProduct(sku, title, price, tax_class or _STANDARD_CLASS, item.tax_status != "none"))


async def _shop_rates(services: Services, *, country: str) -> dict[str, Decimal]:
    """Tax class → percentage for the administration's country, from the shop's tax table."""
    rows: Any = await services.shop.get_json("/taxes", per_page=100)
    rates: dict[str, Decimal] = {}
    for row in rows if isinstance(rows, list) else []:
        if row.get("country") in (country, "", None):
            rates.setdefault(str(row.get("class") or _STANDARD_CLASS), Decimal(str(row.get("rate", "0"))))
    return rates


def _ledger_account(services: Services, reference: AdministrationReference) -> str | None:
    if services.settings.moneybird_ledger_account_id:
        return services.settings.moneybird_ledger_account_id
    accounts = reference.revenue_accounts()
    return accounts[0].id if len(accounts) == 1 else None


def _tax_rate(
    product: ShopProduct,
    *,
    rates: Mapping[str, Decimal],
    reference: AdministrationReference,
    services: Services,
) -> tuple[str | None, str | None]:
    percentage = rates.get(product.tax_class) if product.taxable else Decimal(0)
    if percentage is None:
        return None, f"the shop has no tax rate for class {product.tax_class!r} in {reference.country}"
    # The same rate the invoice plan books this percentage at (0 % told apart from reverse charge and export).
    try:
        rate = RateBook(reference, services.settings.moneybird_tax_rates).rate(
            normalise_tax_key(str(percentage))
        )
    except VatRefusal as refusal:
        return None, f"{refusal.reason}; {refusal.fix}"
    return rate.id, None
