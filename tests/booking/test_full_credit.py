"""The full credit of a booked invoice when its order changed: the invoice mirrored, as it was booked."""

from __future__ import annotations

from datetime import date

from app.booking.rebook import full_credit
from app.moneybird.models import SalesInvoice
from tests.moneybird import bodies


def test_a_full_credit_keeps_the_invoices_workflow_and_style() -> None:
    # A customer reading the credit next to the invoice sees the same layout and the same flow.
    invoice = SalesInvoice.model_validate(bodies.sales_invoice(workflow_id="71", document_style_id="72"))
    plan = full_credit(invoice, reference="WooCommerce #1042 v2", today=date(2026, 9, 1))
    assert (plan.workflow_id, plan.document_style_id) == ("71", "72")
    assert plan.total == -invoice.total_price_incl_tax
    assert [line.quantity for line in plan.lines] == [
        -(detail.amount_decimal or 0) for detail in invoice.details
    ]
