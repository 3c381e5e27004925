"""Moneybird response bodies in the shapes the API uses (ids as strings, money as strings)."""

from __future__ import annotations

from typing import Any

ADMIN = "123456789012345678"
CONTACT_ID = "496081523137578258"
INVOICE_ID = "496081523381896487"
TAX_21 = "496081347565061258"
TAX_9 = "496081347565061259"
REVENUE = "496081347348006012"
WORKFLOW = "496081347889071247"
STYLE = "496081348199449753"


def contact(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": CONTACT_ID,
        "administration_id": ADMIN,
        "company_name": "",
        "firstname": "Sanne",
        "lastname": "de Vries",
        "address1": "Kerkstraat 8",
        "address2": "",
        "zipcode": "3512 AB",
        "city": "Utrecht",
        "country": "NL",
        "phone": "",
        "delivery_method": "Email",
        "customer_id": "woo-77",
        "tax_number": "",
        "email": "sanne@example.nl",
        "send_invoices_to_email": "sanne@example.nl",
        "invoice_workflow_id": None,
        "archived": False,
        "version": 1787320122,
        "events": [{"action": "contact_created", "data": {}}],
    }
    body.update(overrides)
    return body


def detail(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "496081523385042216",
        "administration_id": ADMIN,
        "tax_rate_id": TAX_21,
        "ledger_account_id": REVENUE,
        "project_id": None,
        "product_id": None,
        "amount": "2 x",
        "amount_decimal": "2.0",
        "description": "Teak bench",
        "price": "64.95",
        "period": None,
        "row_order": 0,
        "total_price_excl_tax_with_discount": "129.9",
        "total_price_excl_tax_with_discount_base": "129.9",
        "tax_report_reference": ["NL/1a"],
        "mandatory_tax_text": None,
    }
    body.update(overrides)
    return body


def sales_invoice(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": INVOICE_ID,
        "administration_id": 123,  # the official examples carry this one as a number
        "contact_id": CONTACT_ID,
        "contact": contact(),
        "invoice_id": None,
        "workflow_id": WORKFLOW,
        "document_style_id": STYLE,
        "draft_id": 7,
        "state": "draft",
        "invoice_date": None,
        "due_date": "2026-09-04",
        "reference": "WooCommerce #1042",
        "currency": "EUR",
        "discount": "0.0",
        "paid_at": None,
        "sent_at": None,
        "version": 1787320229,
        "details": [detail()],
        "payments": [],
        "total_paid": "0.0",
        "total_unpaid": "157.18",
        "total_unpaid_base": "157.18",
        "prices_are_incl_tax": False,
        "total_price_excl_tax": "129.9",
        "total_price_excl_tax_base": "129.9",
        "total_price_incl_tax": "157.18",
        "total_price_incl_tax_base": "157.18",
        "total_discount": "0.0",
        "url": "https://moneybird.test/123/external/abc/def/sales_invoice",
        "payment_url": "https://moneybird.test/123/external/abc/def/sales_invoice",
        "tax_totals": [
            {
                "tax_rate_id": TAX_21,
                "taxable_amount": "129.9",
                "taxable_amount_base": "129.9",
                "tax_amount": "27.28",
                "tax_amount_base": "27.28",
            }
        ],
        "events": [],
    }
    body.update(overrides)
    return body


def external_sales_invoice(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "496081458207654972",
        "administration_id": ADMIN,
        "contact_id": CONTACT_ID,
        "date": "2026-08-21",
        "state": "open",
        "due_date": None,
        "reference": "WooCommerce #1042",
        "entry_number": 3,
        "origin": "api",
        "source": "WooCommerce",
        "source_url": None,
        "currency": "EUR",
        "paid_at": None,
        "details": [detail()],
        "payments": [],
        "total_paid": "0.0",
        "total_unpaid": "157.18",
        "prices_are_incl_tax": False,
        "total_price_excl_tax": "129.9",
        "total_price_incl_tax": "157.18",
        "tax_totals": [{"tax_rate_id": TAX_21, "taxable_amount": "129.9", "tax_amount": "27.28"}],
    }
    body.update(overrides)
    return body


def payment(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "496081536082249007",
        "administration_id": ADMIN,
        "invoice_type": "SalesInvoice",
        "invoice_id": INVOICE_ID,
        "financial_account_id": None,
        "transaction_identifier": "tr_Wq8x2",
        "price": "157.18",
        "price_base": "157.18",
        "payment_date": "2026-08-21",
        "ledger_account_id": "496081347379463299",
        "manual_payment_action": None,
    }
    body.update(overrides)
    return body


def tax_rate(rate_id: str, percentage: str, kind: str = "sales_invoice", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rate_id,
        "administration_id": ADMIN,
        "name": f"{percentage.removesuffix('.0')}% btw",
        "percentage": percentage,
        "tax_rate_type": kind,
        "show_tax": True,
        "active": True,
        "country": None,
    }
    body.update(overrides)
    return body


def ledger_account(
    account_id: str, name: str, account_type: str = "revenue", **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": account_id,
        "administration_id": ADMIN,
        "name": name,
        "account_type": account_type,
        "account_id": "8000",
        "parent_id": None,
        "active": True,
        "allowed_document_types": ["sales_invoice", "general_journal_document"],
    }
    body.update(overrides)
    return body


def workflow(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": WORKFLOW,
        "administration_id": ADMIN,
        "type": "InvoiceWorkflow",
        "name": "Standaard",
        "default": True,
        "currency": "EUR",
        "language": "nl",
        "active": True,
        "prices_are_incl_tax": True,
        "steps": [{"step_order": 0, "due_interval": 14}],
    }
    body.update(overrides)
    return body


def document_style(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": STYLE, "administration_id": ADMIN, "name": "Standaard", "default": True}
    body.update(overrides)
    return body


def administration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ADMIN,
        "name": "Tuinmeubels B.V.",
        "language": "nl",
        "currency": "EUR",
        "country": "NL",
        "time_zone": "Europe/Amsterdam",
        "access": "user",
        "suspended": False,
    }
    body.update(overrides)
    return body


def product(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "496081472854165487",
        "administration_id": ADMIN,
        "description": "Teak bench",
        "title": None,
        "identifier": "BENCH-01",
        "price": "64.95",
        "currency": "EUR",
        "tax_rate_id": TAX_21,
        "ledger_account_id": REVENUE,
    }
    body.update(overrides)
    return body
