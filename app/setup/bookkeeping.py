"""Step 4: the revenue ledger account, workflow, document style, the VAT mapping proposed per shop
rate, the invoice kind and INVOICE_EXACT_VAT — the choices `woobird setup` proposes, as a form.

The VAT proposal is the rate the worker itself would find (`propose_tax_rate`); a shop rate that
finds none is named with how to create it in Moneybird, and the step cannot be saved until it has
one: an order at that rate would be refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.checks import percentage_text, propose_tax_rate, shop_tax_rates
from app.clients import moneybird_client, shop_client
from app.i18n import N_, Message
from app.invoicing.reference import AdministrationReference, DocumentStyle, LedgerAccount, TaxRate, Workflow
from app.invoicing.vat import EXPORT, REVERSE_CHARGE, describe_key
from app.moneybird.errors import MoneybirdError
from app.moneybird.reference import load_reference
from app.settings import Settings
from app.woocommerce.errors import WooCommerceError

INVOICE_KINDS = {
    "sales_invoice": N_("Moneybird numbers the invoice and makes its PDF (sent with delivery method Manual)"),
    "external_sales_invoice": N_("booked under the shop's order number, no Moneybird numbering or PDF"),
}


# Without these the shop cannot be asked for its tax rates.
SHOP_SETTINGS = frozenset({"WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET"})


class ChoicesUnavailable(Exception):
    """The shop or Moneybird could not be read; the message says which and why."""


@dataclass(frozen=True)
class RateRow:
    key: str  # the MONEYBIRD_TAX_RATES key
    name: str  # the shop's name for its rate, or what the treatment is
    percentage: Decimal | None  # the shop's rate; None for a treatment
    proposal: str
    how_to_create: Message | None

    @property
    def required(self) -> bool:
        """A rate the shop charges (treatments without a rate are only refused when used)."""
        return self.percentage is not None

    @property
    def label(self) -> str:
        if self.percentage is None:
            return self.name
        return Message(
            "the shop's %(rate)s (%(pct)s %%)", rate=self.name, pct=percentage_text(self.percentage)
        )


@dataclass(frozen=True)
class Choices:
    reference: AdministrationReference
    accounts: tuple[LedgerAccount, ...]
    workflows: tuple[Workflow, ...]
    styles: tuple[DocumentStyle, ...]
    rates: tuple[RateRow, ...]
    sales_rates: tuple[TaxRate, ...]

    @property
    def missing(self) -> list[RateRow]:
        return [row for row in self.rates if row.required and not row.proposal]


def how_to_create(key: str, percentage: Decimal | None, country: str) -> Message:
    if key == REVERSE_CHARGE:
        return Message(
            "In Moneybird go to Settings → Tax rates → New tax rate: “Btw verlegd”, 0 %%, "
            "type sales invoice, and reload this page."
        )
    if key == EXPORT:
        return Message(
            "In Moneybird go to Settings → Tax rates → New tax rate: “Export buiten de EU”, 0 %%, "
            "type sales invoice, and reload this page."
        )
    pct = format((percentage or Decimal(0)).normalize(), "f")
    if ":" in key:
        return Message(
            "In Moneybird go to Settings → Tax rates → New tax rate: %(pct)s %% for country %(country)s "
            "(OSS), type sales invoice, and reload this page.",
            pct=pct,
            country=key.split(":", 1)[0],
        )
    return Message(
        "In Moneybird go to Settings → Tax rates → New tax rate: “%(pct)s%% btw”, %(pct)s %%, "
        "type sales invoice, country %(country)s, and reload.",
        pct=pct,
        country=country,
    )


async def load_choices(settings: Settings) -> Choices:
    try:
        async with moneybird_client(settings) as moneybird:
            reference = await load_reference(moneybird)
    except MoneybirdError as exc:
        raise ChoicesUnavailable(
            Message("could not read the Moneybird administration: %(error)s", error=exc)
        ) from exc
    rates = propose_tax_rates(
        reference, await read_shop_tax_rates(settings), current=settings.moneybird_tax_rates
    )
    return Choices(
        reference=reference,
        accounts=reference.revenue_accounts(),
        workflows=tuple(w for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active),
        styles=reference.document_styles,
        rates=rates,
        sales_rates=reference.sales_tax_rates(),
    )


async def read_shop_tax_rates(settings: Settings) -> list[tuple[str, Decimal, str]]:
    """The shop's VAT rates; a shop that cannot be read is refused: no rate is guessed for it."""
    unset = sorted(SHOP_SETTINGS & set(settings.problems()))
    if unset:
        raise ChoicesUnavailable(
            Message("could not read the shop's tax rates: %(settings)s not set", settings=", ".join(unset))
        )
    try:
        async with shop_client(settings) as shop:
            return await shop_tax_rates(shop)
    except WooCommerceError as exc:
        raise ChoicesUnavailable(
            Message("could not read the shop's tax rates: %(error)s", error=exc)
        ) from exc


def propose_tax_rates(
    reference: AdministrationReference,
    shop_rates: list[tuple[str, Decimal, str]],
    *,
    current: Mapping[str, str],
) -> tuple[RateRow, ...]:
    """The one proposal of MONEYBIRD_TAX_RATES (the wizard's and `woobird setup`'s): each shop rate,
    then reverse charge and export, mapped as set before or to the rate the worker itself would find."""
    rows = [
        _row(key, name=label, percentage=percentage, current=current, ref=reference)
        for key, percentage, label in shop_rates
    ]
    rows += [
        _row(key, name=describe_key(key), percentage=None, current=current, ref=reference)
        for key in (REVERSE_CHARGE, EXPORT)
    ]
    return tuple(rows)


def _row(
    key: str,
    *,
    name: str,
    percentage: Decimal | None,
    current: Mapping[str, str],
    ref: AdministrationReference,
) -> RateRow:
    proposal = current.get(key) or ""
    if not proposal:
        found = propose_tax_rate(key, ref)
        proposal = found.id if found else ""
    fix = None if proposal else how_to_create(key, percentage, ref.country)
    return RateRow(key=key, name=name, percentage=percentage, proposal=proposal, how_to_create=fix)


def chosen_values(choices: Choices, form: Mapping[str, str]) -> tuple[dict[str, str | None], list[Message]]:
    """The settings a submitted form asks for, and what is wrong with it (in words)."""
    problems: list[Message] = []
    accounts = {a.id for a in choices.accounts}
    workflows = {w.id for w in choices.workflows}
    styles = {s.id for s in choices.styles}
    rates = {r.id for r in choices.sales_rates}

    def pick(name: str, allowed: set[str], what: str) -> str | None:
        value = (form.get(name) or "").strip()
        if value and value not in allowed:
            problems.append(
                Message(
                    "%(what)s %(value)r is not one of the administration's", what=Message(what), value=value
                )
            )
            return None
        return value or None

    values: dict[str, str | None] = {
        "MONEYBIRD_LEDGER_ACCOUNT_ID": pick("ledger_account", accounts, N_("ledger account")),
        "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID": pick(
            "shipping_ledger_account", accounts, N_("ledger account")
        ),
        "MONEYBIRD_WORKFLOW_ID": pick("workflow", workflows, N_("workflow")),
        "MONEYBIRD_DOCUMENT_STYLE_ID": pick("document_style", styles, N_("document style")),
    }
    mapping: dict[str, str] = {}
    for row in choices.rates:
        chosen = pick(f"rate:{row.key}", rates, N_("tax rate"))
        if chosen:
            mapping[row.key] = chosen
        elif row.required:
            problems.append(
                Message(
                    "%(rate)s has no Moneybird tax rate. %(fix)s",
                    rate=row.label,
                    fix=row.how_to_create or Message("Choose one."),
                )
            )
    values["MONEYBIRD_TAX_RATES"] = json.dumps(mapping, separators=(",", ":"), sort_keys=True)
    kind = form.get("invoice_kind") or "sales_invoice"
    if kind not in INVOICE_KINDS:
        problems.append(Message("invoice kind %(kind)r is not one woobird knows", kind=kind))
    values["INVOICE_KIND"] = kind
    values["INVOICE_EXACT_VAT"] = "true" if form.get("exact_vat") else "false"
    return values, problems
