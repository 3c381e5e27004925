"""Every client method as Moneybird sees it and as a failure names it; how far lists may run on.

A person reading a failed order, or a dashboard counting calls by method, sees the call the way
Moneybird's documentation writes it ("POST contacts") and the records involved. Reads are tried
again after a blip, writes never: that rests on each method naming its HTTP method exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Literal

import httpx
import pytest
import respx
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import (
    MoneybirdConfigurationError,
    MoneybirdRateLimited,
    MoneybirdServerError,
    MoneybirdTimeout,
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
from app.moneybird.ratelimit import RateLimitBusy, RateLimiter
from app.settings import load_settings
from tests.moneybird import bodies
from tests.moneybird.conftest import ADMINISTRATION_ID, BASE_URL, TOKEN

MakeClient = Callable[..., MoneybirdClient]
Call = Callable[[MoneybirdClient], Awaitable[object]]

LINE = InvoiceDetail(description="Teak bench", price=Decimal("64.95"), tax_rate_id=bodies.TAX_21)
PAYMENT = PaymentCreate(payment_date=date(2026, 8, 21), price=Decimal("64.95"))
INVOICE = SalesInvoiceCreate(
    contact_id=bodies.CONTACT_ID, reference="WooCommerce #1042", details_attributes=[LINE]
)
EXTERNAL = ExternalSalesInvoiceCreate(
    contact_id=bodies.CONTACT_ID, reference="WooCommerce #1042", details_attributes=[LINE]
)
PRODUCT = ProductCreate(price=Decimal("64.95"), ledger_account_id=bodies.REVENUE, identifier="BENCH-01")
ID = bodies.INVOICE_ID

# (the call, the method and route it is counted under, the records its failure names)
ENDPOINTS: list[tuple[Call, str, dict[str, str]]] = [
    (lambda c: c.tax_rates(), "GET tax_rates", {}),
    (lambda c: c.ledger_accounts(), "GET ledger_accounts", {}),
    (lambda c: c.workflows(), "GET workflows", {}),
    (lambda c: c.document_styles(), "GET document_styles", {}),
    (lambda c: c.financial_accounts(), "GET financial_accounts", {}),
    (lambda c: c.search_contacts("sanne@example.nl"), "GET contacts", {}),
    (
        lambda c: c.contact_by_customer_id("woo-7"),
        "GET contacts/customer_id/{customer_id}",
        {"customer_id": "woo-7"},
    ),
    (lambda c: c.get_contact("9"), "GET contacts/{contact_id}", {"contact_id": "9"}),
    (
        lambda c: c.create_contact(ContactCreate(firstname="Sanne", customer_id="woo-7")),
        "POST contacts",
        {"customer_id": "woo-7"},
    ),
    (
        lambda c: c.update_contact("9", ContactUpdate(firstname="Sanne")),
        "PATCH contacts/{contact_id}",
        {"contact_id": "9"},
    ),
    (
        lambda c: c.create_sales_invoice(INVOICE),
        "POST sales_invoices",
        {"contact_id": bodies.CONTACT_ID, "reference": "WooCommerce #1042"},
    ),
    (lambda c: c.get_sales_invoice(ID), "GET sales_invoices/{id}", {"id": ID}),
    (
        lambda c: c.find_sales_invoice_by_reference("WooCommerce #1042"),
        "GET sales_invoices/find_by_reference/{reference}",
        {"reference": "WooCommerce #1042"},
    ),
    (lambda c: c.find_sales_invoices(reference="WooCommerce #1042"), "GET sales_invoices", {}),
    (
        lambda c: c.send_sales_invoice(ID, SalesInvoiceSending(delivery_method="Manual")),
        "PATCH sales_invoices/{id}/send_invoice",
        {"id": ID},
    ),
    (lambda c: c.create_sales_invoice_payment(ID, PAYMENT), "POST sales_invoices/{id}/payments", {"id": ID}),
    (
        lambda c: c.duplicate_credit_invoice(ID),
        "PATCH sales_invoices/{id}/duplicate_creditinvoice",
        {"id": ID},
    ),
    (
        lambda c: c.register_payment_creditinvoice(ID),
        "PATCH sales_invoices/{id}/register_payment_creditinvoice",
        {"id": ID},
    ),
    (
        lambda c: c.create_external_sales_invoice(EXTERNAL),
        "POST external_sales_invoices",
        {"contact_id": bodies.CONTACT_ID, "reference": "WooCommerce #1042"},
    ),
    (lambda c: c.get_external_sales_invoice(ID), "GET external_sales_invoices/{id}", {"id": ID}),
    (
        lambda c: c.find_external_sales_invoices(reference="WooCommerce #1042"),
        "GET external_sales_invoices",
        {},
    ),
    (
        lambda c: c.create_external_sales_invoice_payment(ID, PAYMENT),
        "POST external_sales_invoices/{id}/payments",
        {"id": ID},
    ),
    (
        lambda c: c.product_by_identifier("BENCH-01"),
        "GET products/identifier/{identifier}",
        {"identifier": "BENCH-01"},
    ),
    (lambda c: c.create_product(PRODUCT), "POST products", {"identifier": "BENCH-01"}),
    (lambda c: c.list_products(), "GET products", {}),
    (
        lambda c: c.invoices_dated("sales_invoice", start=date(2026, 1, 1), end=date(2026, 1, 31)),
        "GET sales_invoices",
        {},
    ),
    (
        lambda c: c.invoices_by_id("external_sales_invoice", ["7"]),
        "POST external_sales_invoices/synchronization",
        {},
    ),
]


@pytest.mark.parametrize(("call", "counted", "names"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_each_call_is_named_as_moneybird_writes_it_and_only_reads_are_tried_again(
    make_client: MakeClient, call: Call, counted: str, names: dict[str, str]
) -> None:
    everything = respx.Router(assert_all_called=False)
    everything.route().respond(500, json={"error": "internal"})
    client = make_client(transport=httpx.MockTransport(everything.async_handler))
    with pytest.raises(MoneybirdServerError) as caught:
        await call(client)
    method = counted.split()[0]
    assert client.calls == {counted: 3 if method == "GET" else 1}
    assert {r.request.method for r in everything.calls} == {method}
    assert caught.value.method == method
    assert caught.value.ids == {"administration_id": ADMINISTRATION_ID, **names}


async def test_administrations_are_counted_as_a_read(make_client: MakeClient) -> None:
    everything = respx.Router(assert_all_called=False)
    everything.route().respond(500, json={"error": "internal"})
    client = make_client(transport=httpx.MockTransport(everything.async_handler))
    with pytest.raises(MoneybirdServerError):
        await client.list_administrations()
    assert client.calls == {"GET administrations": 3}


# ── lists are bounded: Moneybird's answers are outside input ─────────────────────────────────


@pytest.mark.parametrize(
    ("call", "route", "pages"),
    [
        (lambda c: c.search_contacts("sanne"), "/contacts.json", 5),
        (lambda c: c.find_sales_invoices(reference="WooCommerce #1042"), "/sales_invoices.json", 5),
        (
            lambda c: c.find_external_sales_invoices(reference="WooCommerce #1042"),
            "/external_sales_invoices.json",
            20,
        ),
        (lambda c: c.list_products(), "/products.json", 20),
    ],
    ids=["contacts", "sales_invoices", "external_sales_invoices", "products"],
)
async def test_a_list_that_never_ends_is_read_to_its_bound_and_no_further(
    router: respx.Router, client: MoneybirdClient, call: Call, route: str, pages: int
) -> None:
    full_page = [bodies.contact(id=str(10 + n)) for n in range(100)]
    if "invoices" in route:
        full_page = [bodies.sales_invoice(id=str(10 + n), reference="WooCommerce #7") for n in range(100)]
    if "products" in route:
        full_page = [bodies.product() for _ in range(100)]
    listing = router.get(route).respond(200, json=full_page)
    with capture_logs() as logs:
        await call(client)
    assert listing.call_count == pages
    assert [entry["pages"] for entry in logs if entry["event"] == "moneybird list truncated"] == [pages]


async def test_products_are_listed_by_query_or_all(router: respx.Router, client: MoneybirdClient) -> None:
    listing = router.get("/products.json").respond(200, json=[bodies.product()])
    await client.list_products(query="bench")
    await client.list_products()
    assert [dict(c.request.url.params) for c in listing.calls] == [
        {"query": "bench", "page": "1", "per_page": "100"},
        {"page": "1", "per_page": "100"},
    ]


@pytest.mark.parametrize("reference", ["WooCommerce #1042,state:open", "WooCommerce #1042|1043"])
async def test_a_reference_holding_filter_syntax_is_refused_before_any_request(
    router: respx.Router, client: MoneybirdClient, reference: str
) -> None:
    with pytest.raises(
        ValueError, match=r"^cannot filter on a reference containing ',' or '\|': 'WooCommerce"
    ):
        await client.find_sales_invoices(reference=reference)
    assert client.calls_total == 0


async def test_any_other_reference_is_looked_up(router: respx.Router, client: MoneybirdClient) -> None:
    listing = router.get("/sales_invoices.json").respond(
        200, json=[bodies.sales_invoice(reference="XL order X-7")]
    )
    assert [i.reference for i in await client.find_sales_invoices(reference="XL order X-7")] == [
        "XL order X-7"
    ]
    assert listing.call_count == 1


async def test_find_by_reference_answering_another_is_said_and_nothing_is_adopted(
    router: respx.Router, client: MoneybirdClient
) -> None:
    router.get(path__regex=r".*/find_by_reference/.*").respond(
        200, json=bodies.sales_invoice(id="496081523381896499", reference="WooCommerce #1234")
    )
    router.get("/sales_invoices.json").respond(200, json=[])
    with capture_logs() as logs:
        assert await client.find_sales_invoice_by_reference("WooCommerce #123") is None
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning == {
        "event": "find_by_reference answered another reference; searching the list instead",
        "log_level": "warning",
        "reference": "WooCommerce #123",
        "invoice_id": "496081523381896499",
        "answered": "WooCommerce #1234",
    }


# ── from settings ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("token", "administration", "message"),
    [
        ("", ADMINISTRATION_ID, "MONEYBIRD_API_TOKEN is not set"),
        ("  ", ADMINISTRATION_ID, "MONEYBIRD_API_TOKEN is not set"),
        (TOKEN, "", "MONEYBIRD_ADMINISTRATION_ID is not set"),
    ],
)
def test_from_settings_names_the_missing_setting_as_it_is_spelled(
    token: str, administration: str, message: str
) -> None:
    settings = load_settings(
        _env_file=None, moneybird_api_token=SecretStr(token), moneybird_administration_id=administration
    )
    with pytest.raises(MoneybirdConfigurationError) as caught:
        MoneybirdClient.from_settings(settings)
    assert str(caught.value) == message


async def test_from_settings_keeps_the_limiter_timeout_and_hooks_it_is_given(mb_redis: Redis) -> None:
    settings = load_settings(
        _env_file=None,
        moneybird_api_token=SecretStr(TOKEN),
        moneybird_administration_id=ADMINISTRATION_ID,
        moneybird_api_url=BASE_URL,
        moneybird_timeout_seconds=7,
    )
    router = respx.Router(base_url=f"{BASE_URL}/{ADMINISTRATION_ID}", assert_all_called=False)
    router.get("/contacts/1.json").respond(401, json={"error": "token is invalid"})
    router.post("/contacts.json").side_effect = httpx.ReadTimeout("lost")
    seen: list[tuple[str, str, int]] = []
    refused: list[str] = []

    async def refresh(token: str) -> str | None:
        refused.append(token)
        return None

    limiter = RateLimiter(mb_redis, limit=2, window=60, safety=0)
    async with MoneybirdClient.from_settings(
        settings,
        limiter=limiter,
        transport=httpx.MockTransport(router.async_handler),
        on_response=lambda method, route, status, _: seen.append((method, route, status)),
        on_unauthorized=refresh,
    ) as client:
        with pytest.raises(MoneybirdConfigurationError):
            await client.get_contact("1")
        with pytest.raises(MoneybirdTimeout, match=r"did not answer within 7 s"):
            await client.create_contact(ContactCreate(firstname="Sanne"))
        with pytest.raises(MoneybirdRateLimited) as caught:
            await client.get_contact("1")
    assert refused == [TOKEN]
    assert seen == [("GET", "contacts/{contact_id}", 401), ("POST", "contacts", 0)]
    assert caught.value.local


async def test_a_limiter_without_a_slot_soon_enough_says_until_when(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=1, window=60, safety=0)
    await limiter.acquire()
    with pytest.raises(RateLimitBusy) as caught:
        await limiter.acquire(max_wait=0.1)
    retry_at = caught.value.retry_at
    assert retry_at is not None
    assert retry_at > time.time() + 50
    assert str(caught.value) == f"rate limit slots are taken until {retry_at:.0f}"


async def test_no_pause_reads_as_none(mb_redis: Redis) -> None:
    limiter = RateLimiter(mb_redis, limit=1, window=60, safety=0)
    assert await limiter.paused_until() is None
    await limiter.pause_until(time.time() + 30)
    paused = await limiter.paused_until()
    assert paused is not None
    assert paused > time.time() + 25


@pytest.mark.parametrize(
    ("limit", "window", "safety"), [(0, 10.0, 0.0), (1, 0.0, 0.0), (1, -1.0, 0.0), (1, 10.0, -0.5)]
)
def test_a_limiter_that_could_never_grant_or_would_grant_too_much_is_refused(
    mb_redis: Redis, limit: int, window: float, safety: float
) -> None:
    with pytest.raises(ValueError, match=r"^limit must be ≥ 1, window > 0 and safety ≥ 0$"):
        RateLimiter(mb_redis, limit=limit, window=window, safety=safety)
    assert RateLimiter(mb_redis, limit=1, window=0.5, safety=0.0).limit == 1


async def test_an_archived_contact_is_asked_for_only_when_wanted(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.get("/contacts/9.json").respond(200, json=bodies.contact(id="9"))
    await client.get_contact("9")
    await client.get_contact("9", include_archived=True)
    assert [dict(c.request.url.params) for c in route.calls] == [{}, {"include_archived": "true"}]


async def test_a_429_resetting_in_more_than_3_s_is_left_to_the_job_queue(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.post("/contacts.json")
    route.side_effect = [
        httpx.Response(429, text="Retry later", headers={"Retry-After": f"{time.time() + 3.6:.3f}"}),
        httpx.Response(201, json=bodies.contact()),
    ]
    with pytest.raises(MoneybirdRateLimited):
        await client.create_contact(ContactCreate(firstname="Sanne"))
    assert route.call_count == 1


async def test_the_client_waits_at_most_20_s_for_its_limiter(mb_redis: Redis) -> None:
    # A slot 20.5 s away: a job waiting that long would rather be deferred (the slot goes to another).
    limiter = RateLimiter(mb_redis, limit=1, window=20.5, safety=0)
    router = respx.Router(base_url=f"{BASE_URL}/{ADMINISTRATION_ID}", assert_all_called=False)
    router.get("/workflows.json").respond(200, json=[bodies.workflow()])
    client = MoneybirdClient(
        base_url=BASE_URL,
        token=TOKEN,
        administration_id=ADMINISTRATION_ID,
        limiter=limiter,
        transport=httpx.MockTransport(router.async_handler),
    )
    async with client:
        await client.workflows()
        started = time.monotonic()
        with pytest.raises(MoneybirdRateLimited):
            await client.workflows()
    assert time.monotonic() - started < 5


# ── verification: invoices as Moneybird holds them now ───────────────────────────────────────


@pytest.mark.parametrize(
    ("kind", "route", "document", "number", "dated"),
    [
        ("sales_invoice", "/sales_invoices.json", bodies.sales_invoice, "2026-0007", "invoice_date"),
        (
            "external_sales_invoice",
            "/external_sales_invoices.json",
            bodies.external_sales_invoice,
            None,
            "date",
        ),
    ],
)
async def test_the_invoices_of_a_month_are_listed_in_any_state_with_what_verification_reads(
    router: respx.Router,
    client: MoneybirdClient,
    kind: Literal["sales_invoice", "external_sales_invoice"],
    route: str,
    document: Callable[..., dict[str, object]],
    number: str | None,
    dated: str,
) -> None:
    answer = document(id="5", state="paid", invoice_id="2026-0007", total_price_incl_tax="-12.10")
    answer |= {"total_unpaid": "0.0", dated: "2026-01-09"}
    listing = router.get(route).respond(200, json=[answer])
    found, complete = await client.invoices_dated(kind, start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert complete
    assert listing.calls.last.request.url.params["filter"] == "period:20260101..20260131,state:all"
    (one,) = found
    expected_number = number or answer["reference"]
    assert (one.id, one.number, one.state, one.total, one.unpaid, one.invoice_date, one.paid) == (
        "5",
        expected_number,
        "paid",
        Decimal("-12.10"),
        Decimal(0),
        date(2026, 1, 9),
        True,
    )


async def test_a_month_longer_than_its_page_bound_says_it_is_incomplete(
    router: respx.Router, client: MoneybirdClient
) -> None:
    router.get("/sales_invoices.json").respond(
        200, json=[bodies.sales_invoice(id=str(n)) for n in range(100)]
    )
    found, complete = await client.invoices_dated(
        "sales_invoice", start=date(2026, 1, 1), end=date(2026, 1, 31), max_pages=2
    )
    assert (len(found), complete) == (200, False)
    found, complete = await client.invoices_dated(
        "sales_invoice", start=date(2026, 1, 1), end=date(2026, 1, 31)
    )
    assert (len(found), complete) == (100 * 100, False)  # a hundred pages unless told otherwise


async def test_invoices_are_looked_up_by_id_a_hundred_at_a_time(
    router: respx.Router, client: MoneybirdClient
) -> None:
    sync = router.post("/sales_invoices/synchronization.json")
    sync.side_effect = [
        httpx.Response(200, json=[bodies.sales_invoice(id="1", state="open", invoice_id="2026-0001")]),
        httpx.Response(200, json=[bodies.sales_invoice(id="149", state="paid", invoice_id="2026-0149")]),
    ]
    found = await client.invoices_by_id("sales_invoice", [str(n) for n in range(150)])
    assert [json.loads(call.request.content) for call in sync.calls] == [
        {"ids": [str(n) for n in range(100)]},
        {"ids": [str(n) for n in range(100, 150)]},
    ]
    # Read as sales invoices: the number is the invoice number, not the reference.
    assert [(one.id, one.number, one.paid) for one in found] == [
        ("1", "2026-0001", False),
        ("149", "2026-0149", True),
    ]
