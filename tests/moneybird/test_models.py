from __future__ import annotations

import gzip
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app.moneybird import models
from app.moneybird.models import (
    ContactCreate,
    ContactUpdate,
    ExternalSalesInvoiceCreate,
    InvoiceDetail,
    PaymentCreate,
    ProductCreate,
    SalesInvoice,
    SalesInvoiceCreate,
    SalesInvoiceSending,
)
from tests.moneybird import bodies

# Moneybird's own OpenAPI document, vendored with its source noted in data/README.md.
OPENAPI = Path(__file__).parent / "data" / "moneybird-openapi.json.gz"


def test_nineteen_digit_ids_stay_exact_strings() -> None:
    invoice = SalesInvoice.model_validate(bodies.sales_invoice(id="4960815233818964871"))
    assert invoice.id == "4960815233818964871"
    assert invoice.details[0].id == "496081523385042216"


def test_integer_ids_become_their_digits_and_floats_are_refused() -> None:
    assert SalesInvoice.model_validate(bodies.sales_invoice(contact_id=496081523137578258)).contact_id == (
        "496081523137578258"
    )
    with pytest.raises(ValidationError):
        SalesInvoice.model_validate(bodies.sales_invoice(id=4.960815233818965e17))


def test_money_is_decimal() -> None:
    invoice = SalesInvoice.model_validate(bodies.sales_invoice())
    assert invoice.total_price_incl_tax == Decimal("157.18")
    assert invoice.total_tax == Decimal("27.28")
    assert invoice.tax_totals[0].taxable_amount == Decimal("129.9")
    with pytest.raises(ValidationError):
        SalesInvoice.model_validate(bodies.sales_invoice(total_price_incl_tax=157.18))


def test_unknown_response_fields_are_ignored_and_timestamps_read_as_dates() -> None:
    payment = models.Payment.model_validate(
        bodies.payment(payment_date="2026-08-21T13:50:41.508Z", something_new={"x": 1})
    )
    assert payment.payment_date == date(2026, 8, 21)


def test_contact_invoice_emails() -> None:
    contact = models.Contact.model_validate(
        bodies.contact(send_invoices_to_email="Boekhouding@Example.nl, sanne@example.nl")
    )
    assert contact.invoice_emails == ("boekhouding@example.nl", "sanne@example.nl")


def test_sales_invoice_create_wire_shape() -> None:
    invoice = SalesInvoiceCreate(
        contact_id=bodies.CONTACT_ID,
        reference="WooCommerce #1042",
        invoice_date=date(2026, 8, 21),
        prices_are_incl_tax=True,
        workflow_id=bodies.WORKFLOW,
        details_attributes=[
            InvoiceDetail(
                description="Teak bench",
                amount=Decimal(2),
                price=Decimal("64.95"),
                tax_rate_id=bodies.TAX_21,
                ledger_account_id=bodies.REVENUE,
            ),
            InvoiceDetail(description="Korting", price=Decimal("-1E+1"), tax_rate_id=bodies.TAX_21),
        ],
    )
    assert invoice.to_wire() == {
        "contact_id": bodies.CONTACT_ID,
        "reference": "WooCommerce #1042",
        "invoice_date": "2026-08-21",
        "prices_are_incl_tax": True,
        "workflow_id": bodies.WORKFLOW,
        "details_attributes": [
            {
                "description": "Teak bench",
                "amount": "2",
                "price": "64.95",
                "tax_rate_id": bodies.TAX_21,
                "ledger_account_id": bodies.REVENUE,
            },
            {"description": "Korting", "price": "-10", "tax_rate_id": bodies.TAX_21},
        ],
    }


def test_request_models_refuse_unknown_fields_and_bad_ids() -> None:
    with pytest.raises(ValidationError):
        ContactCreate(firstname="Sanne", email="sanne@example.nl")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PaymentCreate(payment_date=date(2026, 8, 21), price=Decimal("1.00"), financial_account_id="abc")
    with pytest.raises(ValidationError):
        ExternalSalesInvoiceCreate(contact_id=bodies.CONTACT_ID, reference="", details_attributes=[])


def test_payment_and_sending_wire_shapes() -> None:
    payment = PaymentCreate(
        payment_date=date(2026, 8, 21), price=Decimal("157.18"), transaction_identifier="tr_1"
    )
    assert payment.to_wire() == {
        "payment_date": "2026-08-21",
        "price": "157.18",
        "transaction_identifier": "tr_1",
    }
    assert SalesInvoiceSending(delivery_method="Manual").to_wire() == {"delivery_method": "Manual"}


# ── the OpenAPI document as the contract ──────────────────────────────────────────────────────

REQUEST_SCHEMAS: list[tuple[type[BaseModel], str, str, str]] = [
    (ContactCreate, "/{administration_id}/contacts{format}", "post", "contact"),
    (ContactUpdate, "/{administration_id}/contacts/{id}{format}", "patch", "contact"),
    (SalesInvoiceCreate, "/{administration_id}/sales_invoices{format}", "post", "sales_invoice"),
    (
        ExternalSalesInvoiceCreate,
        "/{administration_id}/external_sales_invoices{format}",
        "post",
        "external_sales_invoice",
    ),
    (
        SalesInvoiceSending,
        "/{administration_id}/sales_invoices/{id}/send_invoice{format}",
        "patch",
        "sales_invoice_sending",
    ),
    (
        PaymentCreate,
        "/{administration_id}/sales_invoices/{sales_invoice_id}/payments{format}",
        "post",
        "payment",
    ),
    (
        PaymentCreate,
        "/{administration_id}/external_sales_invoices/{external_sales_invoice_id}/payments{format}",
        "post",
        "payment",
    ),
    (ProductCreate, "/{administration_id}/products{format}", "post", "product"),
]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return json.loads(gzip.decompress(OPENAPI.read_bytes()))  # type: ignore[no-any-return]


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _properties(document: dict[str, Any], path: str, method: str, root: str) -> set[str]:
    body = _resolve(document, document["paths"][path][method]["requestBody"])
    schema = _resolve(document, body["content"]["application/*"]["schema"])
    return set(_resolve(document, schema["properties"][root])["properties"])


@pytest.mark.parametrize(("model", "path", "method", "root"), REQUEST_SCHEMAS)
def test_request_fields_exist_in_the_openapi_schema(
    openapi: dict[str, Any], model: type[BaseModel], path: str, method: str, root: str
) -> None:
    allowed = _properties(openapi, path, method, root)
    assert set(model.model_fields) <= allowed, set(model.model_fields) - allowed


def test_invoice_detail_fields_exist_in_the_openapi_schema(openapi: dict[str, Any]) -> None:
    body = _resolve(
        openapi, openapi["paths"]["/{administration_id}/sales_invoices{format}"]["post"]["requestBody"]
    )
    schema = _resolve(openapi, body["content"]["application/*"]["schema"])
    details = _resolve(
        openapi, _resolve(openapi, schema["properties"]["sales_invoice"])["properties"]["details_attributes"]
    )
    array = next(alt for alt in details["oneOf"] if alt.get("type") == "array")
    assert set(InvoiceDetail.model_fields) <= set(_resolve(openapi, array["items"])["properties"])


RESPONSE_EXAMPLES: list[tuple[type[BaseModel], str, str, bool]] = [
    (models.SalesInvoice, "/{administration_id}/sales_invoices{format}", "post", False),
    (models.SalesInvoice, "/{administration_id}/sales_invoices/{id}/send_invoice{format}", "patch", False),
    (
        models.SalesInvoice,
        "/{administration_id}/sales_invoices/{id}/duplicate_creditinvoice{format}",
        "patch",
        False,
    ),
    (models.ExternalSalesInvoice, "/{administration_id}/external_sales_invoices{format}", "post", False),
    (models.Contact, "/{administration_id}/contacts{format}", "post", False),
    (
        models.Payment,
        "/{administration_id}/sales_invoices/{sales_invoice_id}/payments{format}",
        "post",
        False,
    ),
    (models.TaxRateResponse, "/{administration_id}/tax_rates{format}", "get", True),
    (models.LedgerAccountResponse, "/{administration_id}/ledger_accounts{format}", "get", True),
    (models.WorkflowResponse, "/{administration_id}/workflows{format}", "get", True),
    (models.DocumentStyleResponse, "/{administration_id}/document_styles{format}", "get", True),
    (models.FinancialAccount, "/{administration_id}/financial_accounts{format}", "get", True),
    (models.Product, "/{administration_id}/products{format}", "get", True),
    (models.Administration, "/administrations{format}", "get", True),
]


@pytest.mark.parametrize(("model", "path", "method", "is_list"), RESPONSE_EXAMPLES)
def test_openapi_success_examples_parse(
    openapi: dict[str, Any], model: type[BaseModel], path: str, method: str, is_list: bool
) -> None:
    responses = openapi["paths"][path][method]["responses"]
    success = next(_resolve(openapi, r) for code, r in responses.items() if code.startswith("2"))
    examples = success["content"]["application/json"].get("examples", {})
    assert examples, f"no examples for {method} {path}"
    for example in examples.values():
        # Parse as the client does: JSON numbers become Decimal, never float.
        value = json.loads(json.dumps(_resolve(openapi, example)["value"]), parse_float=Decimal)
        for item in value if is_list else [value]:
            model.model_validate(item)
