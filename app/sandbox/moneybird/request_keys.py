"""Which keys each Moneybird request body may carry, and of what kind (from the OpenAPI request schemas).

Every create/update schema in Moneybird's OpenAPI document sets `unevaluatedProperties: false`,
so a key missing from these tables is answered with 422 by the fake.
"""

from __future__ import annotations

from typing import Final

from app.sandbox.moneybird.wire import Kind

_CONTACT_COMMON: Final[dict[str, Kind]] = {
    "company_name": "string",
    "firstname": "string",
    "lastname": "string",
    "address1": "string",
    "address2": "string",
    "zipcode": "string",
    "city": "string",
    "country": "string",
    "phone": "string",
    "delivery_method": "string",
    "customer_id": "string",
    "tax_number": "string",
    "chamber_of_commerce": "string",
    "bank_account": "string",
    "send_invoices_to_attention": "string",
    "send_invoices_to_email": "string",
    "send_estimates_to_attention": "string",
    "send_estimates_to_email": "string",
    "sepa_active": "bool",
    "sepa_iban": "string",
    "sepa_iban_account_name": "string",
    "sepa_bic": "string",
    "sepa_mandate_id": "string",
    "sepa_mandate_date": "string",
    "sepa_sequence_type": "string",
    "si_identifier_type": "string",
    "si_identifier": "string",
    "invoice_workflow_id": "id",
    "estimate_workflow_id": "id",
    "email_ubl": "bool",
    "direct_debit": "bool",
    "custom_fields_attributes": "any",
    # Not in the schema, but Moneybird's own integration guides send it and it is reported to work.
    "email": "string",
}
CONTACT_UPDATE: Final[dict[str, Kind]] = dict(_CONTACT_COMMON)
CONTACT_CREATE: Final[dict[str, Kind]] = {**_CONTACT_COMMON, "contact_person": "any"}
CONTACT_PERSON: Final[frozenset[str]] = frozenset({"firstname", "lastname"})
DELIVERY_METHODS: Final = ("Email", "Simplerinvoicing", "Peppol", "Manual", "Post")

SALES_INVOICE_CREATE: Final[dict[str, Kind]] = {
    "contact_id": "id",
    "contact_person_id": "id",
    "original_estimate_id": "id",
    "document_style_id": "id",
    "workflow_id": "id",
    "reference": "string",
    "invoice_sequence_id": "id",
    "invoice_date": "date",
    "first_due_interval": "int",
    "currency": "string",
    "prices_are_incl_tax": "bool",
    "payment_conditions": "string",
    "discount": "number",
    "time_entry_ids": "any",
    "details_attributes": "any",
    "custom_fields_attributes": "any",
}
SALES_INVOICE_UPDATE: Final[dict[str, Kind]] = {
    **SALES_INVOICE_CREATE,
    "update_contact": "bool",
    "remove_invoice_sequence_id": "bool",
}
SALES_INVOICE_TOP: Final = ("from_payment_request",)

DETAIL: Final[dict[str, Kind]] = {
    "id": "id",
    "description": "string",
    "period": "string",
    "price": "money",
    "amount": "quantity",
    "tax_rate_id": "id",
    "ledger_account_id": "id",
    "project_id": "id",
    "product_id": "id",
    "row_order": "row",
    "is_optional": "bool",
    "is_selected": "bool",
    "_destroy": "bool",
    "automated_tax_enabled": "bool",
}

SENDING: Final[dict[str, Kind]] = {
    "delivery_method": "string",
    "sending_scheduled": "bool",
    "deliver_ubl": "bool",
    "mergeable": "bool",
    "email_address": "string",
    "email_message": "string",
    "invoice_date": "date",
}
SEND_METHODS: Final = ("Email", "Peppol", "Manual")

PAYMENT: Final[dict[str, Kind]] = {
    "payment_date": "any",  # checked separately: the 422 names blank and invalid apart
    "price": "any",
    "price_base": "money",
    "financial_account_id": "id",
    "financial_mutation_id": "id",
    "transaction_identifier": "string",
    "manual_payment_action": "string",
    "ledger_account_id": "id",
    "invoice_id": "id",
}
MANUAL_PAYMENT_ACTIONS: Final = (
    "private_payment",
    "payment_without_proof",
    "cash_payment",
    "rounding_error",
    "bank_transfer",
    "balance_settlement",
    "invoices_settlement",
)

EXTERNAL_INVOICE: Final[dict[str, Kind]] = {
    "contact_id": "id",
    "reference": "string",
    "date": "any",  # a bad date is a 422 next to the other errors, so it is checked by hand
    "due_date": "date",
    "currency": "string",
    "prices_are_incl_tax": "bool",
    "source": "string",
    "source_url": "string",
    "details_attributes": "any",
}

PRODUCT: Final[dict[str, Kind]] = {
    "title": "string",
    "description": "string",
    "checkout_description": "string",
    "price": "money",
    "document_style_id": "id",
    "ledger_account_id": "id",
    "tax_rate_id": "id",
    "workflow_id": "id",
    "currency": "string",
    "checkout_type": "string",
    "frequency_type": "string",
    "frequency": "int",
    "product_type": "string",
    "vat_rate_type": "string",
    "max_amount_per_order": "int",
    "identifier": "string",
    "frequency_preset": "string",
}

PERIOD_PRESETS: Final = frozenset(
    f"{when}_{unit}" for when in ("this", "prev", "next") for unit in ("week", "month", "quarter", "year")
)
