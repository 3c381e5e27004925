"""Where a person finds a Moneybird document: the administration's own page for it."""

from __future__ import annotations

from app.settings import Settings


def document_url(settings: Settings, document_id: str) -> str:
    """The bookkeeper's link to a (credit) invoice woobird booked, in the invoice kind it books."""
    kind = (
        "external_sales_invoices" if settings.invoice_kind == "external_sales_invoice" else "sales_invoices"
    )
    return f"https://moneybird.com/{settings.moneybird_administration_id}/{kind}/{document_id}"
