"""The client against the project's Moneybird fake: it validates bodies, keys and states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import (
    MoneybirdAuthError,
    MoneybirdNotFound,
    MoneybirdRateLimited,
    MoneybirdServerError,
    MoneybirdTimeout,
    MoneybirdValidationError,
)
from app.moneybird.models import (
    ContactCreate,
    ContactUpdate,
    ExternalSalesInvoiceCreate,
    InvoiceDetail,
    PaymentCreate,
    ProductCreate,
    SalesInvoiceCreate,
    SalesInvoiceSending,
)
from app.moneybird.ratelimit import RateLimiter
from app.moneybird.reference import load_reference
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport

BASE_URL = "https://moneybird.test/api/v2"
TODAY = datetime.now(UTC).date()


@pytest.fixture
def sandbox() -> MoneybirdSandbox:
    return MoneybirdSandbox()


def _client(sandbox: MoneybirdSandbox, *, token: str | None = None, **kwargs: Any) -> MoneybirdClient:
    return MoneybirdClient(
        base_url=BASE_URL,
        token=token or sandbox.token,
        administration_id=sandbox.administration_id,
        transport=sandbox_transport(sandbox),
        blip_wait=(0.0, 0.0),
        **kwargs,
    )


@pytest.fixture
async def client(sandbox: MoneybirdSandbox) -> AsyncIterator[MoneybirdClient]:
    async with _client(sandbox) as client:
        yield client


async def _contact(client: MoneybirdClient) -> str:
    contact = await client.create_contact(
        ContactCreate(
            firstname="Sanne",
            lastname="de Vries",
            country="NL",
            customer_id="woo-77",
            send_invoices_to_email="sanne@example.nl",
            delivery_method="Email",
        )
    )
    return contact.id


def _lines(sandbox: MoneybirdSandbox) -> list[InvoiceDetail]:
    tax_21 = sandbox.tax_rate_id(21)
    revenue = sandbox.ledger_account_id("Omzet")
    return [
        InvoiceDetail(
            description="Teak bench",
            amount=Decimal(2),
            price=Decimal("64.95"),
            tax_rate_id=tax_21,
            ledger_account_id=revenue,
        ),
        InvoiceDetail(
            description="Verzending", price=Decimal("6.95"), tax_rate_id=tax_21, ledger_account_id=revenue
        ),
    ]


async def test_reference_data_loads(client: MoneybirdClient, sandbox: MoneybirdSandbox) -> None:
    reference = await load_reference(client)
    assert reference.administration_id == client.administration_id
    assert {r.id for r in reference.sales_tax_rates()} >= {sandbox.tax_rate_id(21), sandbox.tax_rate_id(9)}
    assert any(r.country == "DE" and r.percentage == Decimal(19) for r in reference.tax_rates)
    assert any(a.name == "Omzet" for a in reference.revenue_accounts())
    assert any(w.default and w.type == "InvoiceWorkflow" for w in reference.workflows)
    assert reference.document_styles


async def test_contact_lifecycle(client: MoneybirdClient) -> None:
    contact_id = await _contact(client)
    found = await client.contact_by_customer_id("woo-77")
    assert found is not None
    assert found.id == contact_id
    assert await client.contact_by_customer_id("woo-78") is None
    assert [c.id for c in await client.search_contacts("sanne@example.nl")] == [contact_id]
    updated = await client.update_contact(contact_id, ContactUpdate(city="Utrecht"))
    assert updated.city == "Utrecht"
    assert (await client.get_contact(contact_id)).invoice_emails == ("sanne@example.nl",)


async def test_sales_invoice_booked_sent_paid(client: MoneybirdClient, sandbox: MoneybirdSandbox) -> None:
    contact_id = await _contact(client)
    reference = "WooCommerce #1042"
    assert await client.find_sales_invoice_by_reference(reference) is None

    draft = await client.create_sales_invoice(
        SalesInvoiceCreate(
            contact_id=contact_id,
            reference=reference,
            invoice_date=TODAY,
            prices_are_incl_tax=True,
            details_attributes=_lines(sandbox),
        )
    )
    assert draft.is_draft
    assert draft.total_price_incl_tax == Decimal("136.85")
    adopted = await client.find_sales_invoice_by_reference(reference)
    assert adopted is not None
    assert adopted.id == draft.id

    with pytest.raises(MoneybirdValidationError) as refused:
        await client.create_sales_invoice_payment(
            draft.id, PaymentCreate(payment_date=TODAY, price=Decimal("136.85"))
        )
    assert "send the invoice first" in refused.value.message

    sent = await client.send_sales_invoice(draft.id, SalesInvoiceSending(delivery_method="Manual"))
    assert sent.state == "open"
    assert sent.invoice_id
    await client.create_sales_invoice_payment(
        draft.id, PaymentCreate(payment_date=TODAY, price=sent.total_unpaid, transaction_identifier="tr_1")
    )
    paid = await client.get_sales_invoice(draft.id)
    assert paid.state == "paid"
    assert paid.total_unpaid == 0
    assert paid.total_tax == paid.total_price_incl_tax - paid.total_price_excl_tax

    credit = await client.duplicate_credit_invoice(draft.id)
    assert credit.original_sales_invoice_id == draft.id
    await client.send_sales_invoice(credit.id, SalesInvoiceSending(delivery_method="Manual"))
    with pytest.raises(MoneybirdValidationError):
        # The original is paid already, so the settlement cannot take a payment.
        await client.register_payment_creditinvoice(credit.id)


async def test_external_sales_invoice_found_by_reference_and_paid(
    client: MoneybirdClient, sandbox: MoneybirdSandbox
) -> None:
    contact_id = await _contact(client)
    for reference in ("WooCommerce #1042", "WooCommerce #10420"):
        await client.create_external_sales_invoice(
            ExternalSalesInvoiceCreate(
                contact_id=contact_id,
                reference=reference,
                date=date(2024, 12, 30),  # last year's order: the default period would miss it
                source="WooCommerce",
                details_attributes=_lines(sandbox),
            )
        )
    found = await client.find_external_sales_invoices(reference="WooCommerce #1042", contact_id=contact_id)
    assert [i.reference for i in found] == ["WooCommerce #1042"]
    invoice = found[0]
    payment = await client.create_external_sales_invoice_payment(
        invoice.id, PaymentCreate(payment_date=TODAY, price=invoice.total_unpaid)
    )
    assert payment.invoice_id == invoice.id
    assert (await client.get_external_sales_invoice(invoice.id)).state == "paid"


async def test_products(client: MoneybirdClient, sandbox: MoneybirdSandbox) -> None:
    assert await client.product_by_identifier("BENCH-01") is None
    created = await client.create_product(
        ProductCreate(
            title="Teak bench",
            identifier="BENCH-01",
            price=Decimal("64.95"),
            ledger_account_id=sandbox.ledger_account_id("Omzet"),
            tax_rate_id=sandbox.tax_rate_id(21),
        )
    )
    found = await client.product_by_identifier("BENCH-01")
    assert found is not None
    assert found.id == created.id
    assert found.price == Decimal("64.95")
    assert [p.id for p in await client.list_products()] == [created.id]


async def test_wrong_token_and_unknown_record(sandbox: MoneybirdSandbox, client: MoneybirdClient) -> None:
    async with _client(sandbox, token="not-the-token") as wrong:
        with pytest.raises(MoneybirdAuthError):
            await wrong.tax_rates()
    with pytest.raises(MoneybirdNotFound):
        await client.get_sales_invoice("1")


async def test_blips_on_reads_are_absorbed_and_writes_are_not_repeated(
    client: MoneybirdClient, sandbox: MoneybirdSandbox
) -> None:
    contact_id = await _contact(client)
    sandbox.fail_next("GET /contacts/{id}", kind="status", status=502)
    assert (await client.get_contact(contact_id)).id == contact_id

    sandbox.fail_next("POST /sales_invoices", kind="lost")
    create = SalesInvoiceCreate(
        contact_id=contact_id, reference="WooCommerce #7", details_attributes=_lines(sandbox)
    )
    with pytest.raises(MoneybirdTimeout):
        await client.create_sales_invoice(create)
    assert client.calls["POST sales_invoices"] == 1
    # The lost create did happen; the booking layer adopts it instead of creating a twin.
    adopted = await client.find_sales_invoice_by_reference("WooCommerce #7")
    assert adopted is not None

    sandbox.fail_next("POST /contacts", kind="status", status=503)
    with pytest.raises(MoneybirdServerError):
        await client.create_contact(ContactCreate(firstname="Piet"))


async def test_sandbox_429_carries_an_epoch_reset(sandbox: MoneybirdSandbox) -> None:
    sandbox.rate_limit = (2, 300)
    async with _client(sandbox) as client:
        await client.workflows()
        await client.workflows()
        with pytest.raises(MoneybirdRateLimited) as caught:
            await client.workflows()
    assert caught.value.retry_at > 1e9
    assert not caught.value.local


async def test_limiter_keeps_a_burst_under_the_sandbox_limit(
    sandbox: MoneybirdSandbox, mb_redis: Redis
) -> None:
    sandbox.rate_limit = (5, 1.0)
    limiter = RateLimiter(mb_redis, limit=5, window=1.0, safety=0.05)
    async with _client(sandbox, limiter=limiter, limiter_max_wait=None) as client:
        for _ in range(12):
            await client.workflows()
    assert sandbox.count_429 == 0
