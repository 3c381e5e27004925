"""The invoice plan's options from the settings: where app.invoicing, which reads no settings, meets them."""

from __future__ import annotations

from app.invoicing.invoice_plan import PlanOptions
from app.settings import Settings


def plan_options(settings: Settings) -> PlanOptions:
    return PlanOptions(
        tax_rate_overrides=dict(settings.moneybird_tax_rates),
        ledger_account_id=settings.moneybird_ledger_account_id,
        shipping_ledger_account_id=settings.moneybird_shipping_ledger_account_id,
        workflow_id=settings.moneybird_workflow_id,
        document_style_id=settings.moneybird_document_style_id,
        exact_vat=settings.invoice_exact_vat,
        vat_number_meta_keys=tuple(settings.woocommerce_vat_number_meta_keys),
    )
