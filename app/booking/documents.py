"""The Moneybird documents woobird creates, built from a plan: invoices and credit invoices alike.

An invoice plan (app.invoicing.plan) and a credit plan (app.invoicing.refund_plan) have the same
shape where Moneybird is concerned; this is the one place that turns that shape into request bodies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Protocol

from app.moneybird.models import ExternalSalesInvoiceCreate, InvoiceDetail, SalesInvoiceCreate

# Shown on external invoices as where they came from.
SOURCE = "WooCommerce"


class DocumentLine(Protocol):
    @property
    def description(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def tax_rate_id(self) -> str: ...
    @property
    def ledger_account_id(self) -> str | None: ...


class DocumentPlan(Protocol):
    @property
    def reference(self) -> str: ...
    @property
    def invoice_date(self) -> date: ...
    @property
    def currency(self) -> str: ...
    @property
    def prices_are_incl_tax(self) -> bool: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def document_style_id(self) -> str | None: ...
    @property
    def lines(self) -> Sequence[DocumentLine]: ...


def invoice_details(plan: DocumentPlan) -> list[InvoiceDetail]:
    return [
        InvoiceDetail(
            description=line.description,
            price=line.price,
            amount=line.quantity,
            tax_rate_id=line.tax_rate_id,
            ledger_account_id=line.ledger_account_id,
            # Only invoice lines of transferred products carry one (`woobird products`).
            product_id=getattr(line, "product_id", None),
            row_order=position,
        )
        for position, line in enumerate(plan.lines)
    ]


def sales_invoice_body(plan: DocumentPlan, *, contact_id: str) -> SalesInvoiceCreate:
    return SalesInvoiceCreate(
        contact_id=contact_id,
        reference=plan.reference,
        invoice_date=plan.invoice_date,
        currency=plan.currency,
        prices_are_incl_tax=plan.prices_are_incl_tax,
        workflow_id=plan.workflow_id,
        document_style_id=plan.document_style_id,
        details_attributes=invoice_details(plan),
    )


def external_invoice_body(plan: DocumentPlan, *, contact_id: str) -> ExternalSalesInvoiceCreate:
    return ExternalSalesInvoiceCreate(
        contact_id=contact_id,
        reference=plan.reference,
        date=plan.invoice_date,
        currency=plan.currency,
        prices_are_incl_tax=plan.prices_are_incl_tax,
        source=SOURCE,
        details_attributes=invoice_details(plan),
    )
