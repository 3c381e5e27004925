"""The invoice plan's options from the settings: where app.invoicing, which reads no settings, meets them."""

from __future__ import annotations

from app.constants import ENVIRONMENT_CONNECTION_ID, INVOICE_REFERENCE_PREFIX
from app.invoicing.invoice_plan import PlanOptions
from app.settings import Settings


def reference_prefix(connection_id: int) -> str:
    """`WooCommerce #` for connection 1 (so the invoices it booked before are still adopted),
    `WooCommerce c2 #` for connection 2: two shops in one administration never share a reference."""
    if connection_id == ENVIRONMENT_CONNECTION_ID:
        return INVOICE_REFERENCE_PREFIX
    return INVOICE_REFERENCE_PREFIX.replace("#", f"c{connection_id} #")


def plan_options(settings: Settings, *, connection_id: int = ENVIRONMENT_CONNECTION_ID) -> PlanOptions:
    return PlanOptions(
        reference_prefix=reference_prefix(connection_id),
        tax_rate_overrides=dict(settings.moneybird_tax_rates),
        ledger_account_id=settings.moneybird_ledger_account_id,
        shipping_ledger_account_id=settings.moneybird_shipping_ledger_account_id,
        workflow_id=settings.moneybird_workflow_id,
        document_style_id=settings.moneybird_document_style_id,
        exact_vat=settings.invoice_exact_vat,
        vat_number_meta_keys=tuple(settings.woocommerce_vat_number_meta_keys),
    )
