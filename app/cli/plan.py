"""`woobird plan ORDER.json`: the invoice woobird would create for an order, as a table.

A dry run people rely on before they switch woobird on: it shows every line with its tax rate and
ledger account, the VAT per rate as the shop charged it next to what Moneybird will compute under
either rounding behaviour, and the invoice total against the order total.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from app.cli.demo import demo_reference
from app.cli.support import explain
from app.invoicing.moneybird_arithmetic import (
    ROUNDING_MODES,
    Rounding,
    predicted_total,
    predicted_vat,
    vat_deviation,
)
from app.invoicing.plan import InvoicePlan, PlanOptions, PlanRefused, plan_invoice
from app.invoicing.reference import AdministrationReference
from app.invoicing.vat import normalise_tax_key
from app.moneybird.reference import reference_from_json
from app.plan_options import plan_options
from app.settings import ConfigurationError, load_settings
from app.woocommerce.models import Order

MODE_TITLES: dict[Rounding, str] = {"per_line": "per line", "per_rate": "per rate"}


def render_plan(
    plan_or_refusal: InvoicePlan | PlanRefused,
    order: Order,
    console: Console,
    *,
    reference: AdministrationReference | None = None,
) -> None:
    if isinstance(plan_or_refusal, PlanRefused):
        console.print(
            Panel(str(plan_or_refusal), title=f"Order #{order.display_number}: refused", style="red")
        )
        return
    plan = plan_or_refusal
    console.print(_header(plan, order))
    console.print(_lines_table(plan, reference))
    console.print(_vat_table(plan))
    console.print(_totals_table(plan))
    for note in plan.notes:
        console.print(f"• {note}")


def _header(plan: InvoicePlan, order: Order) -> str:
    contact = plan.contact
    vat_number = f", VAT number {contact.tax_number}" if contact.tax_number else ""
    return (
        f"[bold]Order #{plan.order_number}[/bold] → invoice [bold]{plan.reference}[/bold] "
        f"dated {plan.invoice_date}, "
        f"{plan.currency}, prices incl. VAT: {'yes' if plan.prices_are_incl_tax else 'no'}, "
        f"treatment: {plan.treatment}\n"
        f"Contact: {contact.display_name} <{contact.email}>, {contact.country}{vat_number} "
        f"({contact.customer_id})\n"
        f"Paid {plan.payment_date} via {order.payment_method_title or order.payment_method or '—'}"
        f"{f', reference {plan.payment_reference}' if plan.payment_reference else ''}"
    )


def _lines_table(plan: InvoicePlan, reference: AdministrationReference | None) -> Table:
    table = Table(title="Invoice lines (prices incl. VAT)")
    for column in ("Description", "Qty", "Price", "Line total", "Tax rate", "Ledger account", "Kind"):
        table.add_column(column, justify="right" if column in ("Qty", "Price", "Line total") else "left")
    for line in plan.lines:
        table.add_row(
            line.description,
            f"{line.quantity:f}",
            f"{line.price:.2f}",
            f"{line.total:.2f}",
            plan.tax_rates[line.tax_rate_id].name,
            _ledger_account_name(line.ledger_account_id, reference),
            line.kind,
        )
    return table


def _ledger_account_name(account_id: str | None, reference: AdministrationReference | None) -> str:
    if account_id is None:
        return "Moneybird default"
    account = next((a for a in reference.ledger_accounts if a.id == account_id), None) if reference else None
    return account.name if account else account_id


def _vat_table(plan: InvoicePlan) -> Table:
    table = Table(title="VAT per rate")
    table.add_column("Tax rate")
    table.add_column("Shop", justify="right")
    for mode in ROUNDING_MODES:
        table.add_column(f"Moneybird {MODE_TITLES[mode]}", justify="right")
        table.add_column("Difference", justify="right")
    predicted = {mode: predicted_vat(plan, mode) for mode in ROUNDING_MODES}
    deviations = {mode: vat_deviation(plan, mode) for mode in ROUNDING_MODES}
    for rate_id in dict.fromkeys([*plan.shop_vat, *predicted["per_line"]]):
        row = [plan.tax_rates[rate_id].name, f"{plan.shop_vat.get(rate_id, Decimal(0)):.2f}"]
        for mode in ROUNDING_MODES:
            row += [f"{predicted[mode].get(rate_id, Decimal(0)):.2f}", _difference(deviations[mode][rate_id])]
        table.add_row(*row)
    return table


def _difference(amount: Decimal) -> str:
    return "0.00" if not amount else f"[yellow]{amount:+.2f}[/yellow]"


def _totals_table(plan: InvoicePlan) -> Table:
    table = Table(title="Total incl. VAT")
    table.add_column("Order total", justify="right")
    for mode in ROUNDING_MODES:
        table.add_column(f"Moneybird {MODE_TITLES[mode]}", justify="right")
    cells = [f"{plan.total:.2f}"]
    for mode in ROUNDING_MODES:
        total = predicted_total(plan, mode)
        cells.append(
            f"{total:.2f}"
            if total == plan.total
            else f"[red]{total:.2f} (off by {total - plan.total:+.2f})[/red]"
        )
    table.add_row(*cells)
    return table


# --- Reading the inputs -----------------------------------------------------------------------------


def _options(*, with_configured_ids: bool, tax_rates: str | None, exact_vat: bool | None) -> PlanOptions:
    """The configured options; ids only make sense against the administration they came from."""
    options = plan_options(load_settings())
    if not with_configured_ids:
        options = PlanOptions(exact_vat=options.exact_vat, vat_number_meta_keys=options.vat_number_meta_keys)
    overrides = dict(options.tax_rate_overrides)
    if tax_rates:
        overrides.update({normalise_tax_key(k): str(v) for k, v in json.loads(tax_rates).items()})
    return PlanOptions(
        tax_rate_overrides=overrides,
        ledger_account_id=options.ledger_account_id,
        shipping_ledger_account_id=options.shipping_ledger_account_id,
        workflow_id=options.workflow_id,
        document_style_id=options.document_style_id,
        exact_vat=options.exact_vat if exact_vat is None else exact_vat,
        vat_number_meta_keys=options.vat_number_meta_keys,
        timezone=options.timezone,
    )


def plan_command(
    order_file: Annotated[
        Path, typer.Argument(help="A WooCommerce order as JSON (GET /wp-json/wc/v3/orders/<id>).")
    ],
    reference_file: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="Moneybird reference data as JSON (tax_rates, ledger_accounts, workflows, document_styles). "
            "Without it, a standard Dutch administration is assumed.",
        ),
    ] = None,
    tax_rates: Annotated[
        str | None,
        typer.Option(
            "--tax-rates", help='Tax rate overrides like MONEYBIRD_TAX_RATES, e.g. \'{"21": "<id>"}\'.'
        ),
    ] = None,
    exact_vat: Annotated[
        bool | None, typer.Option("--exact-vat/--no-exact-vat", help="Override INVOICE_EXACT_VAT.")
    ] = None,
) -> None:
    """Print the invoice woobird would create for an order: lines, VAT per rate, totals."""
    console = Console()
    try:
        order = Order.model_validate(json.loads(order_file.read_text(encoding="utf-8")))
        reference = (
            reference_from_json(json.loads(reference_file.read_text(encoding="utf-8")))
            if reference_file
            else demo_reference()
        )
        options = _options(
            with_configured_ids=reference_file is not None, tax_rates=tax_rates, exact_vat=exact_vat
        )
    except ConfigurationError as error:
        explain(error)
    except (OSError, ValueError, KeyError, ValidationError) as exc:
        console.print(f"[red]Cannot plan: {exc}[/red]")
        raise typer.Exit(code=2) from None
    if reference_file is None:
        console.print(
            "[dim]Using a standard Dutch Moneybird administration (pass --reference for yours).[/dim]"
        )
    try:
        plan: InvoicePlan | PlanRefused = plan_invoice(order, reference=reference, options=options)
    except PlanRefused as refusal:
        plan = refusal
    render_plan(plan, order, console, reference=reference)
    if isinstance(plan, PlanRefused):
        raise typer.Exit(code=1)
