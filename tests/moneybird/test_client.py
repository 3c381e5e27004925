from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.logs import configure_logging
from app.moneybird.client import MoneybirdClient, wide_period
from app.moneybird.errors import (
    MoneybirdAuthError,
    MoneybirdBadRequest,
    MoneybirdConfigurationError,
    MoneybirdConnectionError,
    MoneybirdNotFound,
    MoneybirdPaymentRequired,
    MoneybirdRateLimited,
    MoneybirdRejected,
    MoneybirdServerError,
    MoneybirdTimeout,
    MoneybirdUnexpectedResponse,
    MoneybirdValidationError,
)
from app.moneybird.http import rate_limit_reset
from app.moneybird.models import (
    ContactCreate,
    ExternalSalesInvoiceCreate,
    InvoiceDetail,
    PaymentCreate,
    SalesInvoiceCreate,
    SalesInvoiceSending,
)
from app.moneybird.ratelimit import RateLimiter
from app.settings import load_settings
from tests.moneybird import bodies
from tests.moneybird.conftest import ADMINISTRATION_ID, BASE_URL, TOKEN

MakeClient = Callable[..., MoneybirdClient]


def _invoice_create() -> SalesInvoiceCreate:
    return SalesInvoiceCreate(
        contact_id=bodies.CONTACT_ID,
        reference="WooCommerce #1042",
        prices_are_incl_tax=False,
        details_attributes=[
            InvoiceDetail(
                description="Teak bench",
                amount=Decimal(2),
                price=Decimal("64.95"),
                tax_rate_id=bodies.TAX_21,
                ledger_account_id=bodies.REVENUE,
            )
        ],
    )


def _sent(request: httpx.Request) -> object:
    return json.loads(request.content)


# ── request shapes ────────────────────────────────────────────────────────────────────────────


async def test_create_sales_invoice_sends_the_exact_body(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.post("/sales_invoices.json").respond(201, json=bodies.sales_invoice())

    invoice = await client.create_sales_invoice(_invoice_create())

    request = route.calls.last.request
    assert request.url == f"{BASE_URL}/{ADMINISTRATION_ID}/sales_invoices.json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert _sent(request) == {
        "sales_invoice": {
            "contact_id": bodies.CONTACT_ID,
            "reference": "WooCommerce #1042",
            "prices_are_incl_tax": False,
            "details_attributes": [
                {
                    "description": "Teak bench",
                    "amount": "2",
                    "price": "64.95",
                    "tax_rate_id": bodies.TAX_21,
                    "ledger_account_id": bodies.REVENUE,
                }
            ],
        }
    }
    assert invoice.id == bodies.INVOICE_ID
    assert invoice.total_price_incl_tax == Decimal("157.18")


async def test_create_contact_wraps_in_root_key_without_none(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.post("/contacts.json").respond(201, json=bodies.contact())
    await client.create_contact(
        ContactCreate(
            firstname="Sanne", lastname="de Vries", country="NL", send_invoices_to_email="sanne@example.nl"
        )
    )
    assert _sent(route.calls.last.request) == {
        "contact": {
            "firstname": "Sanne",
            "lastname": "de Vries",
            "country": "NL",
            "send_invoices_to_email": "sanne@example.nl",
        }
    }


async def test_send_pay_and_credit_paths_and_bodies(router: respx.Router, client: MoneybirdClient) -> None:
    send = router.patch(f"/sales_invoices/{bodies.INVOICE_ID}/send_invoice.json").respond(
        200, json=bodies.sales_invoice(state="open", invoice_id="2026-0007", draft_id=None)
    )
    pay = router.post(f"/sales_invoices/{bodies.INVOICE_ID}/payments.json").respond(
        201, json=bodies.payment()
    )
    credit = router.patch(f"/sales_invoices/{bodies.INVOICE_ID}/duplicate_creditinvoice.json").respond(
        200, json=bodies.sales_invoice(id="496081531911014382", original_sales_invoice_id=bodies.INVOICE_ID)
    )
    settle = router.patch("/sales_invoices/496081531911014382/register_payment_creditinvoice.json").respond(
        200, json=bodies.sales_invoice(id="496081531911014382", state="paid")
    )

    sent = await client.send_sales_invoice(bodies.INVOICE_ID, SalesInvoiceSending(delivery_method="Manual"))
    payment = await client.create_sales_invoice_payment(
        bodies.INVOICE_ID, PaymentCreate(payment_date=date(2026, 8, 21), price=Decimal("157.18"))
    )
    credit_invoice = await client.duplicate_credit_invoice(bodies.INVOICE_ID)
    settled = await client.register_payment_creditinvoice(credit_invoice.id)

    assert _sent(send.calls.last.request) == {"sales_invoice_sending": {"delivery_method": "Manual"}}
    assert _sent(pay.calls.last.request) == {"payment": {"payment_date": "2026-08-21", "price": "157.18"}}
    assert _sent(credit.calls.last.request) == {}
    assert settle.called
    assert (sent.state, sent.invoice_id, payment.price, settled.state) == (
        "open",
        "2026-0007",
        Decimal("157.18"),
        "paid",
    )
    assert credit_invoice.original_sales_invoice_id == bodies.INVOICE_ID


async def test_external_invoice_create_and_payment(router: respx.Router, client: MoneybirdClient) -> None:
    created = router.post("/external_sales_invoices.json").respond(201, json=bodies.external_sales_invoice())
    pay = router.post("/external_sales_invoices/496081458207654972/payments.json").respond(
        201, json=bodies.payment(invoice_type="ExternalSalesInvoice")
    )
    invoice = await client.create_external_sales_invoice(
        ExternalSalesInvoiceCreate(
            contact_id=bodies.CONTACT_ID,
            reference="WooCommerce #1042",
            date=date(2026, 8, 21),
            source="WooCommerce",
            details_attributes=[
                InvoiceDetail(description="Bench", price=Decimal("129.90"), tax_rate_id=bodies.TAX_21)
            ],
        )
    )
    await client.create_external_sales_invoice_payment(
        invoice.id, PaymentCreate(payment_date=date(2026, 8, 21), price=Decimal("157.18"))
    )
    assert _sent(created.calls.last.request) == {
        "external_sales_invoice": {
            "contact_id": bodies.CONTACT_ID,
            "reference": "WooCommerce #1042",
            "date": "2026-08-21",
            "source": "WooCommerce",
            "details_attributes": [{"description": "Bench", "price": "129.90", "tax_rate_id": bodies.TAX_21}],
        }
    }
    assert pay.called


async def test_administrations_live_outside_the_administration() -> None:
    router = respx.Router(assert_all_called=False)
    route = router.get(f"{BASE_URL}/administrations.json").respond(200, json=[bodies.administration(id=123)])
    settings = load_settings(
        _env_file=None,
        moneybird_api_url=BASE_URL + "/",
        moneybird_api_token="mb-test-token-7f3e9a",
        moneybird_administration_id=ADMINISTRATION_ID,
    )
    transport = httpx.MockTransport(router.async_handler)
    async with MoneybirdClient.from_settings(settings, transport=transport) as own:
        administrations = await own.list_administrations()
    assert route.called
    assert administrations[0].id == "123"
    assert route.calls.last.request.headers["Authorization"] == "Bearer mb-test-token-7f3e9a"


def test_from_settings_names_a_missing_setting() -> None:
    settings = load_settings(_env_file=None, moneybird_administration_id=ADMINISTRATION_ID)
    with pytest.raises(MoneybirdConfigurationError, match="MONEYBIRD_API_TOKEN"):
        MoneybirdClient.from_settings(settings)


# ── lookups: 404 → None, encoded references, exact matches ────────────────────────────────────


async def test_find_by_reference_encodes_the_reference(router: respx.Router, client: MoneybirdClient) -> None:
    route = router.get(path__regex=r".*/sales_invoices/find_by_reference/.*").respond(
        200, json=bodies.sales_invoice(reference="WooCommerce #1042/b")
    )
    found = await client.find_sales_invoice_by_reference("WooCommerce #1042/b")
    assert found is not None
    assert route.calls.last.request.url.raw_path.decode().endswith(
        "/sales_invoices/find_by_reference/WooCommerce%20%231042%2Fb.json"
    )


async def test_find_by_reference_404_is_none(router: respx.Router, client: MoneybirdClient) -> None:
    router.get(path__regex=r".*/find_by_reference/.*").respond(
        404,
        json={
            "error": "Sales invoice with reference: x was not found",
            "symbolic": {"reference": "not_found"},
        },
    )
    assert await client.find_sales_invoice_by_reference("WooCommerce #1") is None


async def test_find_by_reference_never_adopts_a_near_match(
    router: respx.Router, client: MoneybirdClient
) -> None:
    router.get(path__regex=r".*/find_by_reference/.*").respond(
        200, json=bodies.sales_invoice(reference="WooCommerce #1234")
    )
    listing = router.get("/sales_invoices.json").respond(
        200,
        json=[
            bodies.sales_invoice(id="496081523381896499", reference="WooCommerce #1234"),
            bodies.sales_invoice(id="496081523381896488", reference="WooCommerce #123"),
        ],
    )
    found = await client.find_sales_invoice_by_reference("WooCommerce #123")
    assert found is not None
    assert found.id == "496081523381896488"
    params = listing.calls.last.request.url.params
    assert params["filter"] == f"reference:WooCommerce #123,state:all,period:{wide_period()}"


async def test_get_sales_invoice_404_is_not_found(router: respx.Router, client: MoneybirdClient) -> None:
    router.get("/sales_invoices/1.json").respond(
        404, json={"error": "record not found", "symbolic": {"id": "not_found"}}
    )
    with pytest.raises(MoneybirdNotFound) as caught:
        await client.get_sales_invoice("1")
    assert caught.value.message == "record not found (id: not_found)"
    assert caught.value.ids == {"administration_id": ADMINISTRATION_ID, "id": "1"}


async def test_contact_and_product_lookups(router: respx.Router, client: MoneybirdClient) -> None:
    router.get("/contacts/customer_id/woo-77.json").respond(200, json=bodies.contact())
    router.get("/contacts/customer_id/woo-78.json").respond(
        404, json={"error": "record not found", "symbolic": {"customer_id": "not_found"}}
    )
    router.get("/products/identifier/BENCH-01.json").respond(200, json=bodies.product())
    router.get("/products/identifier/NOPE.json").respond(404, json={"error": "record not found"})
    assert (await client.contact_by_customer_id("woo-77")) is not None
    assert await client.contact_by_customer_id("woo-78") is None
    product = await client.product_by_identifier("BENCH-01")
    assert product is not None
    assert product.price == Decimal("64.95")
    assert await client.product_by_identifier("NOPE") is None


async def test_external_invoices_listed_over_a_wide_period_and_matched_exactly(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.get("/external_sales_invoices.json").respond(
        200,
        json=[
            bodies.external_sales_invoice(id="2", reference="WooCommerce #10420"),
            bodies.external_sales_invoice(id="3", reference="WooCommerce #1042"),
        ],
    )
    found = await client.find_external_sales_invoices(
        reference="WooCommerce #1042", contact_id=bodies.CONTACT_ID
    )
    assert [i.id for i in found] == ["3"]
    filter_ = route.calls.last.request.url.params["filter"]
    assert filter_ == f"state:all,period:{wide_period()},contact_id:{bodies.CONTACT_ID}"
    assert wide_period(date(2026, 3, 1)) == "20000101..20271231"


async def test_lists_follow_pages(router: respx.Router, client: MoneybirdClient) -> None:
    page_1 = [bodies.tax_rate(str(1000 + n), "21.0") for n in range(100)]
    page_2 = [bodies.tax_rate(str(2000 + n), "9.0") for n in range(5)]
    route = router.get("/tax_rates.json")
    route.side_effect = [httpx.Response(200, json=page_1), httpx.Response(200, json=page_2)]
    rates = await client.tax_rates()
    assert len(rates) == 105
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"page": "1", "per_page": "100"},
        {"page": "2", "per_page": "100"},
    ]


async def test_search_contacts_stops_at_link_without_next(
    router: respx.Router, client: MoneybirdClient
) -> None:
    route = router.get("/contacts.json").respond(
        200,
        json=[bodies.contact(id=str(10 + n)) for n in range(100)],
        headers={"Link": f'<{BASE_URL}/{ADMINISTRATION_ID}/contacts.json?page=0>; rel="prev"'},
    )
    contacts = await client.search_contacts("sanne@example.nl")
    assert len(contacts) == 100
    assert route.call_count == 1
    assert route.calls.last.request.url.params["query"] == "sanne@example.nl"


# ── errors ────────────────────────────────────────────────────────────────────────────────────


async def test_422_field_shape_reads_as_a_sentence(router: respx.Router, client: MoneybirdClient) -> None:
    router.patch(f"/sales_invoices/{bodies.INVOICE_ID}/send_invoice.json").respond(
        422,
        json={
            "error": {"email_address": ["can't be blank"]},
            "details": {"email_address": [{"error": "blank"}]},
        },
    )
    with pytest.raises(MoneybirdValidationError) as caught:
        await client.send_sales_invoice(bodies.INVOICE_ID, SalesInvoiceSending(delivery_method="Email"))
    assert caught.value.message == "email_address: can't be blank"
    assert caught.value.status == 422
    assert caught.value.body["details"] == {"email_address": [{"error": "blank"}]}
    assert caught.value.path == f"/{ADMINISTRATION_ID}/sales_invoices/{bodies.INVOICE_ID}/send_invoice.json"


async def test_422_symbolic_shape_reads_as_a_sentence(router: respx.Router, client: MoneybirdClient) -> None:
    router.post("/sales_invoices.json").respond(
        422, json={"error": "Tax rate is not valid", "symbolic": {"details.tax_rate_id": "invalid"}}
    )
    with pytest.raises(MoneybirdValidationError) as caught:
        await client.create_sales_invoice(_invoice_create())
    assert caught.value.message == "Tax rate is not valid (details.tax_rate_id: invalid)"
    assert caught.value.ids["reference"] == "WooCommerce #1042"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {"error": "details cannot be empty", "symbolic": {"sales_invoice": "details_cannot_be_empty"}},
            MoneybirdBadRequest,
        ),
        (
            402,
            {"error": "creating sales invoices is limited", "symbolic": {"administration": "limit_reached"}},
            MoneybirdPaymentRequired,
        ),
        (409, {"error": "conflict"}, MoneybirdRejected),
    ],
)
async def test_other_4xx_are_rejections(
    router: respx.Router, client: MoneybirdClient, status: int, body: object, error: type[Exception]
) -> None:
    route = router.post("/sales_invoices.json").respond(status, json=body)
    with pytest.raises(error):
        await client.create_sales_invoice(_invoice_create())
    assert route.call_count == 1


@pytest.mark.parametrize(
    "body",
    [
        {"error": "token is invalid", "symbolic": {"request": "invalid_grant"}},
        {"error": "No access to settings"},
    ],
)
async def test_401_is_a_configuration_error(
    router: respx.Router, client: MoneybirdClient, body: object
) -> None:
    router.get("/tax_rates.json").respond(401, json=body)
    with pytest.raises(MoneybirdAuthError) as caught:
        await client.tax_rates()
    assert isinstance(caught.value, MoneybirdConfigurationError)
    assert not isinstance(caught.value, MoneybirdRejected)
    assert "MONEYBIRD_API_TOKEN" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(client)


async def test_get_is_retried_on_5xx_and_timeouts(router: respx.Router, client: MoneybirdClient) -> None:
    route = router.get(f"/sales_invoices/{bodies.INVOICE_ID}.json")
    route.side_effect = [
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=bodies.sales_invoice()),
    ]
    invoice = await client.get_sales_invoice(bodies.INVOICE_ID)
    assert invoice.id == bodies.INVOICE_ID
    assert route.call_count == 3
    assert client.calls["GET sales_invoices/{id}"] == 3


async def test_get_gives_up_after_three_attempts(router: respx.Router, client: MoneybirdClient) -> None:
    route = router.get(f"/sales_invoices/{bodies.INVOICE_ID}.json").respond(503, text="Service Unavailable")
    with pytest.raises(MoneybirdServerError) as caught:
        await client.get_sales_invoice(bodies.INVOICE_ID)
    assert caught.value.status == 503
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("effect", "error"),
    [
        (httpx.Response(500, json={"error": "internal"}), MoneybirdServerError),
        (httpx.ReadTimeout("lost"), MoneybirdTimeout),
        (httpx.ConnectError("refused"), MoneybirdConnectionError),
    ],
)
async def test_post_is_never_retried(
    router: respx.Router, client: MoneybirdClient, effect: httpx.Response | Exception, error: type[Exception]
) -> None:
    route = router.post("/sales_invoices.json")
    route.side_effect = [effect, httpx.Response(201, json=bodies.sales_invoice())]
    with pytest.raises(error):
        await client.create_sales_invoice(_invoice_create())
    assert route.call_count == 1


async def test_redirect_and_non_json_are_configuration_errors(
    router: respx.Router, client: MoneybirdClient
) -> None:
    router.get("/workflows.json").respond(301, headers={"Location": "https://moneybird.com/"})
    router.get("/document_styles.json").respond(
        200, text="<html>login</html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(MoneybirdUnexpectedResponse, match="MONEYBIRD_API_URL"):
        await client.workflows()
    with pytest.raises(MoneybirdUnexpectedResponse, match="not JSON"):
        await client.document_styles()


# ── 429 and the shared limiter ────────────────────────────────────────────────────────────────


async def test_429_raises_with_the_absolute_reset_and_pauses_everyone(
    router: respx.Router, make_client: MakeClient, mb_redis: Redis
) -> None:
    limiter = RateLimiter(mb_redis, limit=150, window=300, safety=0)
    client = make_client(limiter=limiter)
    reset = int(time.time()) + 120
    route = router.post("/sales_invoices.json").respond(
        429,
        text="Retry later",
        headers={
            "Retry-After": str(reset),
            "RateLimit-Reset": str(reset - 5),
            "RateLimit-Limit": "150",
            "RateLimit-Remaining": "0",
        },
    )
    with pytest.raises(MoneybirdRateLimited) as caught:
        await client.create_sales_invoice(_invoice_create())
    assert caught.value.retry_at == reset
    assert not caught.value.local
    assert "Retry later" in str(caught.value)
    assert route.call_count == 1
    paused = await limiter.paused_until()
    assert paused is not None
    assert paused >= reset


async def test_short_429_is_waited_out_once(router: respx.Router, client: MoneybirdClient) -> None:
    route = router.post("/contacts.json")
    route.side_effect = [
        httpx.Response(429, text="Retry later", headers={"Retry-After": f"{time.time() + 0.3:.3f}"}),
        httpx.Response(201, json=bodies.contact()),
    ]
    started = time.monotonic()
    await client.create_contact(ContactCreate(firstname="Sanne"))
    assert route.call_count == 2
    assert time.monotonic() - started >= 0.25


def test_rate_limit_reset_reads_epochs_delays_and_dates() -> None:
    now = 1_800_000_000.0
    assert rate_limit_reset(httpx.Headers({"Retry-After": "1800000090"}), now=now) == 1_800_000_090
    assert (
        rate_limit_reset(httpx.Headers({"Retry-After": "30", "RateLimit-Reset": "1800000045"}), now=now)
        == now + 45
    )
    assert (
        rate_limit_reset(httpx.Headers({"Retry-After": "Fri, 15 Jan 2027 08:00:40 GMT"}), now=now)
        == 1_800_000_040
    )
    assert rate_limit_reset(httpx.Headers({}), now=now) == now + 60
    # Read as seconds, a 1.8e9 "delay" would be 57 years; as a bad epoch it is capped.
    assert rate_limit_reset(httpx.Headers({"Retry-After": "9999999999"}), now=now) == now + 3600


async def test_limiter_refusal_is_a_local_rate_limit_without_a_request(
    router: respx.Router, make_client: MakeClient, mb_redis: Redis
) -> None:
    limiter = RateLimiter(mb_redis, limit=1, window=60, safety=0)
    client = make_client(limiter=limiter, limiter_max_wait=0.5)
    route = router.get("/workflows.json").respond(200, json=[bodies.workflow()])
    await client.workflows()
    with pytest.raises(MoneybirdRateLimited) as caught:
        await client.workflows()
    assert caught.value.local
    assert caught.value.retry_after_seconds(time.time()) > 50
    assert route.call_count == 1
    assert client.calls_total == 1


async def test_on_response_hook_sees_route_status_and_duration(
    router: respx.Router, make_client: MakeClient
) -> None:
    seen: list[tuple[str, str, int, float]] = []

    def hook(method: str, route: str, status: int, seconds: float) -> None:
        seen.append((method, route, status, seconds))
        raise RuntimeError("a broken hook must not break the call")

    client = make_client(on_response=hook)
    router.get(f"/contacts/{bodies.CONTACT_ID}.json").respond(200, json=bodies.contact())
    router.get("/contacts/9.json").side_effect = httpx.ConnectError("refused")
    await client.get_contact(bodies.CONTACT_ID)
    with pytest.raises(MoneybirdConnectionError):
        await client.get_contact("9")
    assert [(m, r, s) for m, r, s, _ in seen] == [("GET", "contacts/{contact_id}", 200)] + [
        ("GET", "contacts/{contact_id}", 0)
    ] * 3
    assert all(seconds >= 0 for *_, seconds in seen)
    assert client.calls == {"GET contacts/{contact_id}": 4}


# ── logging ───────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    yield capsys
    with capsys.disabled():  # bind the next tests' logger to the real stderr, not this test's capture
        configure_logging(level="INFO", fmt="console")


async def test_client_logs_are_structured_redacted_json_lines(
    router: respx.Router, make_client: MakeClient, json_logs: pytest.CaptureFixture[str]
) -> None:
    # Inside the test: the logger binds sys.stderr, which capsys replaces only while the test runs.
    configure_logging(level="INFO", fmt="json")
    client = make_client()
    route = router.get(f"/sales_invoices/{bodies.INVOICE_ID}.json")
    route.side_effect = [
        httpx.Response(503, json={"error": "contact jan.jansen@example.nl is being updated"}),
        httpx.Response(200, json=bodies.sales_invoice()),
    ]
    await client.get_sales_invoice(bodies.INVOICE_ID)
    router.post("/sales_invoices.json").respond(429, text="Retry later", headers={"Retry-After": "120"})
    with pytest.raises(MoneybirdRateLimited):
        await client.create_sales_invoice(_invoice_create())

    raw = json_logs.readouterr().err
    assert "jan.jansen@example.nl" not in raw
    assert TOKEN not in raw
    lines = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    retried = next(line for line in lines if line["event"] == "moneybird read failed; retrying")
    assert retried["call"] == f"GET /{ADMINISTRATION_ID}/sales_invoices/{bodies.INVOICE_ID}.json"
    assert "j…@example.nl" in str(retried["error"])
    throttled = next(
        line for line in lines if line["event"] == "moneybird answered 429; pausing every process"
    )
    assert throttled["level"] == "warning"
    assert throttled["call"] == f"POST /{ADMINISTRATION_ID}/sales_invoices.json"
