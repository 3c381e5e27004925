"""Which Moneybird tax rate books each WooCommerce tax, and which VAT treatment an order gets.

Nothing is guessed. A WooCommerce tax maps by percentage to an active Moneybird tax rate of type
`sales_invoice` (the same percentage also exists for purchase invoices; those are never used).
Rates are found automatically and can be pinned with `MONEYBIRD_TAX_RATES`, keyed like
`normalise_tax_key`: `"21"`, `"9"`, `"0"` for domestic rates, `"DE:19"` for a rate another EU
country's consumers pay (OSS), and `"reverse_charge"` / `"export"` for the two zero-rate
treatments of orders WooCommerce charged no VAT on. When a key cannot be resolved to exactly one
rate, the order is refused with the key to set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from app.i18n import N_, Message
from app.invoicing.reference import AdministrationReference, TaxRate
from app.woocommerce.models import Order, TaxLine

Treatment = Literal["domestic", "oss", "foreign", "reverse_charge", "export"]

REVERSE_CHARGE = "reverse_charge"
EXPORT = "export"
ZERO = "0"
SETTING = "MONEYBIRD_TAX_RATES"


def normalise_tax_key(key: str) -> str:
    """`"21.0"` → `"21"`, `"de:19"` → `"DE:19"`; named treatments stay lower-case."""
    key = key.strip()
    if ":" in key:
        country, pct = key.split(":", 1)
        return f"{country.strip().upper()}:{_percentage_key(pct)}"
    if key.lower() in {REVERSE_CHARGE, EXPORT}:
        return key.lower()
    return _percentage_key(key)


def _percentage_key(text: str) -> str:
    try:
        value = Decimal(text.strip().rstrip("%"))
    except ArithmeticError as exc:
        raise ValueError(f"not a percentage: {text!r}") from exc
    normalised = value.normalize()
    return format(normalised, "f")


# EU member states by the ISO codes WooCommerce uses (Greece is GR there, not EL).
# fmt: off
EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# fmt: on

# Moneybird keeps several 0 % sales rates apart only by name; these words tell them apart.
_REVERSE_CHARGE_WORDS = re.compile(r"verlegd|reverse|intracommunautai|\bicp\b|binnen (de )?eu", re.IGNORECASE)
_EXPORT_WORDS = re.compile(r"buiten|export|outside|non-eu|niet-eu", re.IGNORECASE)


class VatRefusal(Exception):
    """The order's VAT cannot be booked as configured; `fix` says what a person should change."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


def setting_fix(key: str) -> str:
    return Message('set MONEYBIRD_TAX_RATES={"%(key)s": "<Moneybird tax rate id>"}', key=key)


def describe_key(key: str) -> str:
    """The rate a key stands for, in a bookkeeper's words."""
    if key == REVERSE_CHARGE:
        return Message("reverse-charge rate (btw verlegd, 0 %%)")
    if key == EXPORT:
        return Message("export rate (0 %% outside the EU)")
    if ":" in key:
        country, percentage = key.split(":", 1)
        return Message("%(pct)s %% rate for consumers in %(country)s (OSS)", pct=percentage, country=country)
    return Message("%(pct)s %% rate", pct=key)


def vat_number(order: Order, meta_keys: Iterable[str]) -> str | None:
    """The customer's VAT number from the first of `meta_keys` that holds one, without spaces."""
    for key in meta_keys:
        value = order.meta(key)
        if isinstance(value, str) and value.strip():
            return re.sub(r"[\s.\-]", "", value).upper()
    return None


def tax_line_country(tax_line: TaxLine) -> str | None:
    """The country a WooCommerce tax rate is limited to, read from its rate code.

    A rate code is COUNTRY-STATE-NAME-PRIORITY with empty parts dropped, so a rate for every
    country looks like `BTW-1` and has no country part.
    """
    parts = tax_line.rate_code.split("-")
    if len(parts) >= 3 and re.fullmatch(r"[A-Z]{2}", parts[0]):
        return parts[0]
    return None


def tax_line_key(tax_line: TaxLine, *, home_country: str) -> str:
    if tax_line.rate_percent is None:
        raise VatRefusal(
            Message(
                "WooCommerce did not say which percentage its tax rate %(label)r is "
                "(the rate_percent field, sent since WooCommerce 3.7)",
                label=tax_line.label,
            ),
            N_("update WooCommerce, or book this order by hand"),
        )
    percentage = normalise_tax_key(str(tax_line.rate_percent))
    country = tax_line_country(tax_line)
    if country is None or country == home_country:
        return percentage
    return f"{country}:{percentage}"


@dataclass
class RateBook:
    """Finds the Moneybird sales tax rate for a key, honouring the configured overrides."""

    reference: AdministrationReference
    overrides: Mapping[str, str] = field(default_factory=dict)
    _found: dict[str, TaxRate] = field(default_factory=dict)

    def rate(self, key: str) -> TaxRate:
        if key not in self._found:
            self._found[key] = self._override(key) if key in self.overrides else self._automatic(key)
        return self._found[key]

    def _override(self, key: str) -> TaxRate:
        rate_id = self.overrides[key]
        rate = next((r for r in self.reference.sales_tax_rates() if r.id == rate_id), None)
        if rate is None:
            raise VatRefusal(
                Message(
                    "MONEYBIRD_TAX_RATES names tax rate %(rate)s for %(key)r, but Moneybird has no active "
                    "sales-invoice tax rate with that id",
                    rate=rate_id,
                    key=key,
                ),
                Message("%(fix)s with the id of an active sales-invoice tax rate", fix=setting_fix(key)),
            )
        expected = _expected_percentage(key)
        if rate.percentage != expected:
            raise VatRefusal(
                Message(
                    "MONEYBIRD_TAX_RATES maps %(key)r to Moneybird tax rate %(name)r, which is "
                    "%(pct)s %% instead of %(expected)s %%",
                    key=key,
                    name=rate.name,
                    pct=_percent(rate.percentage),
                    expected=_percent(expected),
                ),
                setting_fix(key),
            )
        return rate

    def _automatic(self, key: str) -> TaxRate:
        candidates = [r for r in self.reference.sales_tax_rates() if _fits(r, key)]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise VatRefusal(
                Message(
                    "Moneybird has no active sales-invoice tax rate for the %(rate)s", rate=describe_key(key)
                ),
                Message("create that tax rate in Moneybird, or %(fix)s", fix=setting_fix(key)),
            )
        names = ", ".join(f"{r.name!r} ({r.id})" for r in candidates)
        raise VatRefusal(
            Message(
                "several Moneybird tax rates could be the %(rate)s: %(names)s",
                rate=describe_key(key),
                names=names,
            ),
            Message("choose one: %(fix)s", fix=setting_fix(key)),
        )


def _percent(value: Decimal) -> str:
    return normalise_tax_key(str(value))


def _expected_percentage(key: str) -> Decimal:
    if key in (REVERSE_CHARGE, EXPORT):
        return Decimal(0)
    return Decimal(key.split(":")[-1])


def _fits(rate: TaxRate, key: str) -> bool:
    if rate.percentage != _expected_percentage(key):
        return False
    if ":" in key:
        return rate.country == key.split(":", 1)[0]
    if rate.country is not None:
        return False
    if key == REVERSE_CHARGE:
        return bool(_REVERSE_CHARGE_WORDS.search(rate.name))
    if key == EXPORT:
        return bool(_EXPORT_WORDS.search(rate.name))
    if rate.percentage == 0:
        return not (_REVERSE_CHARGE_WORDS.search(rate.name) or _EXPORT_WORDS.search(rate.name))
    return True


@dataclass(frozen=True, slots=True)
class OrderVat:
    """The VAT facts of one order, in Moneybird's terms."""

    treatment: Treatment
    # WooCommerce tax rate id → the Moneybird tax rate that books it.
    rates: Mapping[int, TaxRate]
    # Set for orders without VAT: every line books at this rate.
    exempt_rate: TaxRate | None
    # Moneybird tax rate id → the VAT the shop charged at that rate.
    shop_vat: Mapping[str, Decimal]


def order_vat(
    order: Order, *, book: RateBook, home_country: str, customer_vat_number: str | None
) -> OrderVat:
    """Decide the order's treatment and resolve every tax it carries to a Moneybird rate."""
    if not order.tax_lines:
        key = _exempt_key(order, home_country=home_country, customer_vat_number=customer_vat_number)
        rate = book.rate(key)
        treatment: Treatment = "reverse_charge" if key == REVERSE_CHARGE else "export"
        return OrderVat(treatment=treatment, rates={}, exempt_rate=rate, shop_vat={rate.id: Decimal(0)})
    compound = [line.label or line.rate_code for line in order.tax_lines if line.compound]
    if compound:
        raise VatRefusal(
            Message(
                "WooCommerce charged compound tax (%(taxes)s); Moneybird books one tax "
                "rate per invoice line and cannot stack them",
                taxes=", ".join(compound),
            ),
            N_("book this order by hand"),
        )
    rates: dict[int, TaxRate] = {}
    shop_vat: dict[str, Decimal] = {}
    countries: set[str] = set()
    for tax_line in order.tax_lines:
        key = tax_line_key(tax_line, home_country=home_country)
        rate = book.rate(key)
        rates[tax_line.rate_id] = rate
        shop_vat[rate.id] = (
            shop_vat.get(rate.id, Decimal(0)) + tax_line.tax_total + tax_line.shipping_tax_total
        )
        if ":" in key:
            countries.add(key.split(":", 1)[0])
    return OrderVat(
        treatment=_taxed_treatment(countries),
        rates=rates,
        exempt_rate=None,
        shop_vat=shop_vat,
    )


def _taxed_treatment(foreign_countries: set[str]) -> Treatment:
    if not foreign_countries:
        return "domestic"
    return "oss" if foreign_countries <= EU_COUNTRIES else "foreign"


def _exempt_key(order: Order, *, home_country: str, customer_vat_number: str | None) -> str:
    """Why an order carries no VAT decides its zero rate; without a reason, refuse."""
    billing_country = order.billing.country.upper()
    destination = (order.shipping.country or order.billing.country).upper()
    if destination and destination not in EU_COUNTRIES:
        return EXPORT
    if customer_vat_number and billing_country in EU_COUNTRIES and billing_country != home_country:
        return REVERSE_CHARGE
    where = f"in {billing_country}" if billing_country else "without a country"
    if order.meta("is_vat_exempt") != "yes":
        raise VatRefusal(
            "WooCommerce charged no VAT on any of its lines although the customer is not marked VAT "
            f"exempt (customer {where}): untaxed products only, or taxes switched off in WooCommerce",
            "check the products' tax status and WooCommerce → Settings → Tax, and book this order by hand",
        )
    if customer_vat_number:
        why = f"the customer {where} has VAT number {customer_vat_number}, but reverse charge only applies "
        why += f"to business customers in another EU country than {home_country}"
    else:
        why = f"the customer {where} gave no VAT number, so neither reverse charge nor export applies"
    raise VatRefusal(
        f"WooCommerce charged no VAT on this order, and {why}",
        "check the order in WooCommerce (is the customer wrongly marked VAT exempt?) and book it by hand; "
        "if the VAT number sits under another meta key, add it to WOOCOMMERCE_VAT_NUMBER_META_KEYS",
    )
