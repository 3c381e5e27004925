"""Moneybird API v2 on the wire: what woobird reads, and the bodies it sends.

Responses ignore fields we do not use, so Moneybird adding one never breaks a booking. Ids are
64-bit integers that Moneybird sends as strings; they stay strings here (an int from an older
fixture is turned into its digits, a float is refused: it has already lost digits). Money is
`Decimal` and never passes through float: the client parses JSON numbers as Decimal too.

Request models forbid unknown fields because Moneybird's create schemas do
(`unevaluatedProperties: false`), and list only fields those schemas define. They are sent with
`to_wire()`: no `None` keys, money and quantities as plain decimal strings, dates as ISO.
"""

from __future__ import annotations

import datetime as dt
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, SecretStr

# ── field types ───────────────────────────────────────────────────────────────────────────────


def _to_id(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise ValueError("a Moneybird id must be digits, not a float or boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and not value.isdigit():
        raise ValueError(f"a Moneybird id must be digits, got {value!r}")
    return value


def _to_optional_id(value: Any) -> Any:
    return None if value in (None, "") else _to_id(value)


def _to_decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):
        raise ValueError("money must be a decimal string, never a float")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            # Moneybird accepts (and may echo) a decimal comma: "10,95".
            return Decimal(value.strip().replace(",", "."))
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {value!r}") from exc
    return value


def _to_optional_decimal(value: Any) -> Any:
    return None if value in (None, "") else _to_decimal(value)


def _to_date(value: Any) -> Any:
    # Moneybird answers dates as "2026-08-21" but accepts (and sometimes echoes) full timestamps.
    if isinstance(value, str) and len(value) > 10:
        return value[:10]
    return value


def _to_optional_date(value: Any) -> Any:
    return None if value in (None, "") else _to_date(value)


def _decimal_text(value: Decimal) -> str:
    # Never "1E+2": Moneybird's money pattern is digits with an optional decimal point.
    return format(value, "f")


MoneybirdId = Annotated[str, BeforeValidator(_to_id)]
OptionalId = Annotated[str | None, BeforeValidator(_to_optional_id)]
Money = Annotated[Decimal, BeforeValidator(_to_decimal)]
OptionalMoney = Annotated[Decimal | None, BeforeValidator(_to_optional_decimal)]
WireDate = Annotated[date, BeforeValidator(_to_date)]
OptionalDate = Annotated[date | None, BeforeValidator(_to_optional_date)]

# Outgoing: the same values, written the way Moneybird's request schemas want them.
MoneyOut = Annotated[Decimal, PlainSerializer(_decimal_text, return_type=str)]
QuantityOut = Annotated[Decimal, PlainSerializer(_decimal_text, return_type=str)]
IdOut = Annotated[str, Field(pattern=r"^\d+$")]


# ── responses ─────────────────────────────────────────────────────────────────────────────────


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Administration(_Response):
    id: MoneybirdId
    name: str
    language: str | None = None
    currency: str = "EUR"
    country: str = "NL"
    time_zone: str | None = None
    access: str | None = None
    suspended: bool = False


class Contact(_Response):
    id: MoneybirdId
    administration_id: OptionalId = None
    company_name: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    address1: str | None = None
    address2: str | None = None
    zipcode: str | None = None
    city: str | None = None
    country: str | None = None
    phone: str | None = None
    customer_id: str | None = None
    tax_number: str | None = None
    chamber_of_commerce: str | None = None
    email: str | None = None
    send_invoices_to_email: str | None = None
    send_invoices_to_attention: str | None = None
    delivery_method: str | None = None
    invoice_workflow_id: OptionalId = None
    archived: bool = False
    version: int | None = None

    @property
    def invoice_emails(self) -> tuple[str, ...]:
        """Every address invoices go to, lower-cased (the field may hold several, comma-separated)."""
        raw = ",".join(v for v in (self.send_invoices_to_email, self.email) if v)
        return tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))


class ContactVersion(_Response):
    """One entry of GET /contacts/synchronization: a contact and the version it is at."""

    id: MoneybirdId
    version: int


class InvoiceDetailResponse(_Response):
    id: MoneybirdId
    description: str | None = None
    price: Money
    amount: str | None = None  # a display string such as "2 x"; `amount_decimal` is the number
    amount_decimal: OptionalMoney = None
    tax_rate_id: OptionalId = None
    ledger_account_id: OptionalId = None
    product_id: OptionalId = None
    row_order: int | None = None
    total_price_excl_tax_with_discount: OptionalMoney = None
    tax_report_reference: list[str] = Field(default_factory=list)


class TaxTotal(_Response):
    tax_rate_id: MoneybirdId
    taxable_amount: Money
    tax_amount: Money
    taxable_amount_base: OptionalMoney = None
    tax_amount_base: OptionalMoney = None


class Payment(_Response):
    id: MoneybirdId
    invoice_type: str | None = None
    invoice_id: OptionalId = None
    financial_account_id: OptionalId = None
    ledger_account_id: OptionalId = None
    transaction_identifier: str | None = None
    price: Money
    price_base: OptionalMoney = None
    payment_date: WireDate
    manual_payment_action: str | None = None
    credit_invoice_id: OptionalId = None


SalesInvoiceState = Literal[
    "draft", "scheduled", "open", "pending_payment", "reminded", "late", "paid", "uncollectible"
]


class SalesInvoice(_Response):
    id: MoneybirdId
    contact_id: OptionalId = None
    contact: Contact | None = None
    invoice_id: str | None = None  # the invoice number, e.g. "2026-0001"; None while a draft
    draft_id: int | None = None
    state: str
    reference: str | None = None
    invoice_date: OptionalDate = None
    due_date: OptionalDate = None
    currency: str = "EUR"
    prices_are_incl_tax: bool = False
    workflow_id: OptionalId = None
    document_style_id: OptionalId = None
    original_sales_invoice_id: OptionalId = None
    paid_at: OptionalDate = None
    sent_at: OptionalDate = None
    details: list[InvoiceDetailResponse] = Field(default_factory=list)
    tax_totals: list[TaxTotal] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    total_price_excl_tax: Money
    total_price_incl_tax: Money
    total_paid: Money = Decimal(0)
    total_unpaid: Money = Decimal(0)
    total_discount: OptionalMoney = None
    url: str | None = None
    payment_url: str | None = None
    version: int | None = None

    @property
    def is_draft(self) -> bool:
        return self.state == "draft"

    @property
    def total_tax(self) -> Decimal:
        # Moneybird has no total-tax field; the per-rate totals add up to incl − excl.
        return sum((t.tax_amount for t in self.tax_totals), Decimal(0))


class ExternalSalesInvoice(_Response):
    id: MoneybirdId
    contact_id: OptionalId = None
    reference: str | None = None
    date: OptionalDate = None
    due_date: OptionalDate = None
    state: str
    entry_number: int | None = None
    origin: str | None = None
    source: str | None = None
    source_url: str | None = None
    currency: str = "EUR"
    prices_are_incl_tax: bool = False
    paid_at: OptionalDate = None
    details: list[InvoiceDetailResponse] = Field(default_factory=list)
    tax_totals: list[TaxTotal] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    total_price_excl_tax: Money
    total_price_incl_tax: Money
    total_paid: Money = Decimal(0)
    total_unpaid: Money = Decimal(0)
    version: int | None = None


class TaxRateResponse(_Response):
    id: MoneybirdId
    name: str
    percentage: Money
    tax_rate_type: str
    show_tax: bool | None = None
    active: bool | None = None
    country: str | None = None


class LedgerAccountResponse(_Response):
    id: MoneybirdId
    name: str
    account_type: str
    account_id: str | None = None
    parent_id: OptionalId = None
    active: bool = True
    allowed_document_types: list[str] | None = None


class WorkflowStep(_Response):
    step_order: int | None = None
    due_interval: int | None = None


class WorkflowResponse(_Response):
    id: MoneybirdId
    type: str
    name: str
    default: bool = False
    currency: str = "EUR"
    language: str | None = None
    active: bool = True
    prices_are_incl_tax: bool = False
    steps: list[WorkflowStep] = Field(default_factory=list)


class DocumentStyleResponse(_Response):
    id: MoneybirdId
    name: str
    identity_id: OptionalId = None
    default: bool = False


class Product(_Response):
    id: MoneybirdId
    title: str | None = None
    description: str | None = None
    identifier: str | None = None
    price: Money
    currency: str | None = None
    tax_rate_id: OptionalId = None
    ledger_account_id: OptionalId = None


class FinancialAccount(_Response):
    id: MoneybirdId
    type: str
    name: str | None = None
    identifier: str | None = None
    currency: str | None = None
    provider: str | None = None
    active: bool = True


# ── requests ──────────────────────────────────────────────────────────────────────────────────


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object Moneybird expects inside the root key: no None keys, no floats."""
        return self.model_dump(mode="json", exclude_none=True)


class CustomFieldValue(_Request):
    id: IdOut
    value: str


class ContactPerson(_Request):
    firstname: str
    lastname: str


class _ContactFields(_Request):
    company_name: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    address1: str | None = None
    address2: str | None = None
    zipcode: str | None = None
    city: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone: str | None = None
    customer_id: str | None = None
    tax_number: str | None = None
    chamber_of_commerce: str | None = None
    # Moneybird's create/update schemas have no `email`; the invoice address is this one.
    send_invoices_to_email: str | None = None
    send_invoices_to_attention: str | None = None
    send_estimates_to_email: str | None = None
    send_estimates_to_attention: str | None = None
    delivery_method: Literal["Email", "Simplerinvoicing", "Peppol", "Manual"] | None = None
    email_ubl: bool | None = None
    invoice_workflow_id: IdOut | None = None
    estimate_workflow_id: IdOut | None = None
    si_identifier_type: str | None = None
    si_identifier: str | None = None
    custom_fields_attributes: list[CustomFieldValue] | None = None


class ContactCreate(_ContactFields):
    contact_person: ContactPerson | None = None


class ContactUpdate(_ContactFields):
    pass


class InvoiceDetail(_Request):
    """One invoice line, for sales and external sales invoices alike."""

    description: str
    price: MoneyOut
    amount: QuantityOut | None = None
    tax_rate_id: IdOut | None = None
    ledger_account_id: IdOut | None = None
    product_id: IdOut | None = None
    project_id: IdOut | None = None
    period: str | None = None
    row_order: int | None = None
    automated_tax_enabled: bool | None = None


class SalesInvoiceCreate(_Request):
    contact_id: IdOut
    reference: str | None = None
    invoice_date: date | None = None
    first_due_interval: int | None = None
    currency: str | None = None
    prices_are_incl_tax: bool | None = None
    workflow_id: IdOut | None = None
    document_style_id: IdOut | None = None
    invoice_sequence_id: IdOut | None = None
    contact_person_id: IdOut | None = None
    payment_conditions: str | None = None
    discount: MoneyOut | None = None
    details_attributes: list[InvoiceDetail]
    custom_fields_attributes: list[CustomFieldValue] | None = None


class ExternalSalesInvoiceCreate(_Request):
    contact_id: IdOut
    reference: str = Field(min_length=1)  # Moneybird answers 422 "can't be blank" without it
    # `dt.date`: a field called `date` shadows the type inside the class body.
    date: dt.date | None = None
    due_date: dt.date | None = None
    currency: str | None = None
    prices_are_incl_tax: bool | None = None
    source: str | None = None
    source_url: str | None = None
    details_attributes: list[InvoiceDetail]


class SalesInvoiceSending(_Request):
    # "Manual" marks the invoice sent without Moneybird e-mailing the customer.
    delivery_method: Literal["Email", "Peppol", "Manual"] | None = None
    sending_scheduled: bool | None = None
    deliver_ubl: bool | None = None
    mergeable: bool | None = None
    email_address: str | None = None
    email_message: str | None = None
    invoice_date: date | None = None


ManualPaymentAction = Literal[
    "private_payment",
    "payment_without_proof",
    "cash_payment",
    "rounding_error",
    "bank_transfer",
    "balance_settlement",
    "invoices_settlement",
]


class PaymentCreate(_Request):
    payment_date: date
    price: MoneyOut
    price_base: MoneyOut | None = None
    transaction_identifier: str | None = None
    manual_payment_action: ManualPaymentAction | None = None
    financial_account_id: IdOut | None = None
    financial_mutation_id: IdOut | None = None
    ledger_account_id: IdOut | None = None
    invoice_id: IdOut | None = None


class ProductCreate(_Request):
    price: MoneyOut
    ledger_account_id: IdOut
    title: str | None = None
    description: str | None = None
    identifier: str | None = None
    tax_rate_id: IdOut | None = None
    currency: str | None = None
    product_type: Literal["digital_service", "service", "product"] | None = None
    vat_rate_type: Literal["standard", "reduced"] | None = None
    document_style_id: IdOut | None = None
    workflow_id: IdOut | None = None


class MoneybirdWebhook(_Response):
    """A webhook of the administration (`/webhooks`): where Moneybird pushes which events.

    `secret` (what pushes are signed with) comes back only from the create; it is never logged.
    """

    id: MoneybirdId
    url: str
    enabled_events: list[str] = Field(default_factory=list)
    last_http_status: int | str | None = None
    secret: SecretStr | None = None
    deactivated_at: str | None = None
