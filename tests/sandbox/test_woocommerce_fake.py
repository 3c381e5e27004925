"""The fake shop must refuse and answer like WooCommerce, or tests built on it prove nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from oauthlib import oauth1

from app.constants import WOOCOMMERCE_API_PREFIX
from app.sandbox.woocommerce import ShopSandbox, create_app, sign, wc_dates, wp_json_encode
from app.woocommerce.client import OAuth1Signature
from app.woocommerce.models import Order, Refund
from tests.invoicing.reference_carts import CARTS, order_document

START = datetime(2025, 6, 2, 10, 0, 0, tzinfo=UTC)
HOOK_URL = "https://woobird.example/webhooks/woocommerce"


def one_line_order(**overrides: Any) -> dict[str, Any]:
    """Two mugs at 10.00 ex VAT, 21 %: 20.00 + 4.20 tax = 24.20, no shipping (worked by hand)."""
    order: dict[str, Any] = {
        "status": "processing",
        "payment_method": "mollie_wc_gateway_ideal",
        "payment_method_title": "iDEAL",
        "billing": {
            "first_name": "Sanne",
            "last_name": "de Vries",
            "email": "sanne@example.com",
            "country": "NL",
        },
        "cart_tax": "4.20",
        "total": "24.20",
        "total_tax": "4.20",
        "line_items": [
            {
                "name": "Mok",
                "product_id": 1001,
                "quantity": 2,
                "subtotal": "20.00",
                "subtotal_tax": "4.20",
                "total": "20.00",
                "total_tax": "4.20",
                "taxes": [{"id": 1, "total": "4.2", "subtotal": "4.2"}],
            }
        ],
        "tax_lines": [
            {
                "rate_code": "NL-BTW-1",
                "rate_id": 1,
                "label": "BTW",
                "compound": False,
                "tax_total": "4.20",
                "shipping_tax_total": "0.00",
                "rate_percent": 21,
                "meta_data": [],
            }
        ],
    }
    return order | overrides


@pytest.fixture
def shop() -> ShopSandbox:
    return ShopSandbox(start=START, consumer_key="ck_test", consumer_secret="cs_test", ping_on_create=False)


@pytest.fixture
async def api(shop: ShopSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(shop))
    async with httpx.AsyncClient(
        transport=transport,
        base_url=shop.url + WOOCOMMERCE_API_PREFIX,
        auth=httpx.BasicAuth(shop.consumer_key, shop.consumer_secret),
    ) as client:
        yield client


class Receiver:
    """A stand-in webhook endpoint: answers with scripted statuses and keeps what it got."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.script = list(statuses)
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        outcome = self.script.pop(0) if self.script else 200
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


# ------------------------------------------------------------------------------------------- wire


def test_sign_matches_published_test_vector() -> None:
    body = b'{"id":1041,"status":"completed","total":"36.00"}'
    assert sign(body, "woobird-test-secret") == "212urU2mMSwyG1Yhuzwv1lZJXNDQCqJkDiRwlBGx8Qg="


def test_wp_json_encode_escapes_slashes_and_non_ascii() -> None:
    body = wp_json_encode({"url": "https://a.nl/x", "city": "België", "n": 12.4})
    assert body == b'{"url":"https:\\/\\/a.nl\\/x","city":"Belgi\\u00eb","n":12.4}'


def test_dates_are_local_amsterdam_and_gmt() -> None:
    assert wc_dates(datetime(2025, 3, 10, 13, 22, 5, tzinfo=UTC)) == (
        "2025-03-10T14:22:05",
        "2025-03-10T13:22:05",
    )
    assert wc_dates(datetime(2025, 7, 1, 8, 0, 0, tzinfo=UTC)) == (
        "2025-07-01T10:00:00",
        "2025-07-01T08:00:00",
    )


# ------------------------------------------------------------------------------------------- auth


async def test_missing_credentials_get_cannot_view(api: httpx.AsyncClient) -> None:
    response = await api.get("/orders", auth=None)
    assert response.status_code == 401
    assert response.json() == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }


async def test_over_tls_a_wrong_secret_is_refused_and_an_unknown_key_is_as_good_as_none(
    api: httpx.AsyncClient,
) -> None:
    """As WooCommerce's `perform_basic_authentication`: an unknown key sets no error."""
    wrong_secret = await api.get("/orders", auth=httpx.BasicAuth("ck_test", "cs_wrong"))
    unknown_key = await api.get("/orders", auth=httpx.BasicAuth("ck_wrong", "cs_test"))
    assert (wrong_secret.status_code, wrong_secret.json()["code"]) == (
        401,
        "woocommerce_rest_authentication_error",
    )
    assert wrong_secret.json()["message"] == "Consumer secret is invalid."
    assert (unknown_key.status_code, unknown_key.json()["code"]) == (401, "woocommerce_rest_cannot_view")


async def test_query_string_credentials_win_over_basic(api: httpx.AsyncClient) -> None:
    params = {"consumer_key": "ck_test", "consumer_secret": "cs_test"}
    response = await api.get("/orders", params=params, auth=httpx.BasicAuth("ck_wrong", "cs_wrong"))
    assert response.status_code == 200


# Over plain HTTP, as the real shop: keys only count with TLS, OAuth 1.0a signatures always.


def _signer(key: str, secret: str, **fixed: str) -> httpx.Auth:
    class Fixed(httpx.Auth):
        def __init__(self) -> None:
            self.client = oauth1.Client(
                key, client_secret=secret, signature_method=oauth1.SIGNATURE_HMAC_SHA256, **fixed
            )

        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            _, headers, _ = self.client.sign(str(request.url), http_method=request.method)
            request.headers["Authorization"] = headers["Authorization"]
            yield request

    return Fixed()


@pytest.fixture
async def plain_http(shop: ShopSandbox) -> AsyncIterator[httpx.AsyncClient]:
    shop.url = "http://winkel.local"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(shop)), base_url=shop.url + WOOCOMMERCE_API_PREFIX
    ) as client:
        yield client


async def test_over_plain_http_basic_auth_and_query_keys_are_not_even_looked_at(
    plain_http: httpx.AsyncClient,
) -> None:
    basic = await plain_http.get("/orders", auth=httpx.BasicAuth("ck_test", "cs_test"))
    query = await plain_http.get("/orders", params={"consumer_key": "ck_test", "consumer_secret": "cs_test"})
    proxied = await plain_http.get(
        "/orders", auth=httpx.BasicAuth("ck_test", "cs_test"), headers={"X-Forwarded-Proto": "https"}
    )
    for refused in (basic, query):
        assert (refused.status_code, refused.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    assert proxied.status_code == 200


async def test_over_plain_http_an_oauth_signature_is_checked_as_woocommerce_checks_it(
    plain_http: httpx.AsyncClient,
) -> None:
    good = await plain_http.get(
        "/orders", params={"status": "completed,processing"}, auth=OAuth1Signature("ck_test", "cs_test")
    )
    wrong_secret = await plain_http.get("/orders", auth=OAuth1Signature("ck_test", "cs_wrong"))
    unknown_key = await plain_http.get("/orders", auth=OAuth1Signature("ck_wrong", "cs_test"))
    # PHP reads `status[]=…` as an array, WooCommerce signs it as `status[0]`: no signature matches.
    array = await plain_http.get(
        "/orders", params={"status[]": ["completed"]}, auth=OAuth1Signature("ck_test", "cs_test")
    )
    stale = await plain_http.get(
        "/orders", auth=_signer("ck_test", "cs_test", timestamp=str(int(time.time()) - 3600))
    )
    assert good.status_code == 200
    assert [r.json()["message"] for r in (wrong_secret, array)] == [
        "Invalid signature - provided signature does not match."
    ] * 2
    assert unknown_key.json()["message"] == "Consumer key is invalid."
    assert stale.json()["message"] == "Invalid timestamp."


async def test_over_plain_http_a_signed_request_cannot_be_replayed(plain_http: httpx.AsyncClient) -> None:
    signer = _signer("ck_test", "cs_test", nonce="a" * 32, timestamp=str(int(time.time())))
    first = await plain_http.get("/orders", auth=signer)
    again = await plain_http.get("/orders", auth=signer)
    assert first.status_code == 200
    assert (again.status_code, again.json()["message"]) == (
        401,
        "Invalid nonce - nonce has already been used.",
    )


async def test_a_signature_covers_the_address_the_shop_knows_itself_by(
    shop: ShopSandbox, plain_http: httpx.AsyncClient
) -> None:
    shop.url = "http://127.0.0.1:8010"  # WordPress's own address; the request went to winkel.local
    response = await plain_http.get("/orders", auth=OAuth1Signature("ck_test", "cs_test"))
    assert response.json()["message"] == "Invalid signature - provided signature does not match."


async def test_read_only_key_cannot_write(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    shop.key_permissions = "read"
    response = await api.post("/webhooks", json={"topic": "order.updated", "delivery_url": HOOK_URL})
    assert response.status_code == 401
    assert response.json()["message"] == "The API key provided does not have write permissions."
    assert shop.webhooks == {}


async def test_unknown_route_is_rest_no_route(api: httpx.AsyncClient) -> None:
    response = await api.get("/orders/abc")
    assert response.status_code == 404
    assert response.json()["code"] == "rest_no_route"


# ------------------------------------------------------------------------------------------- orders


async def test_get_order_and_404(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    order = shop.add_order(one_line_order())
    response = await api.get(f"/orders/{order['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert Order.model_validate(response.json()).total == Decimal("24.20")
    assert response.json()["_links"]["self"][0]["href"].endswith(f"/wp-json/wc/v3/orders/{order['id']}")

    missing = await api.get("/orders/999999")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 404},
    }


def test_add_order_fills_the_rest_shape(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    assert order["number"] == str(order["id"])
    assert order["date_created_gmt"] == "2025-06-02T10:00:00"
    assert order["date_created"] == "2025-06-02T12:00:00"
    assert order["date_modified_gmt"] == order["date_created_gmt"]
    assert order["order_key"].startswith("wc_order_")
    line = order["line_items"][0]
    assert isinstance(line["id"], int)
    assert line["price"] == 10
    assert list(order)[:4] == ["id", "parent_id", "status", "currency"]
    assert order["billing"]["email"] == "sanne@example.com"
    assert order["billing"]["address_1"] == ""
    assert "email" not in order["shipping"]


async def test_paging_headers_and_links(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    for _ in range(25):
        shop.add_order(one_line_order())
        shop.advance(60)
    first = await api.get("/orders", params={"per_page": 10})
    assert first.headers["X-WP-Total"] == "25"
    assert first.headers["X-WP-TotalPages"] == "3"
    assert len(first.json()) == 10
    assert "prev" not in first.links
    assert "page=2" in first.links["next"]["url"]

    middle = await api.get("/orders", params={"per_page": 10, "page": 2})
    assert "page=1" in middle.links["prev"]["url"]
    assert "page=3" in middle.links["next"]["url"]

    last = await api.get("/orders", params={"per_page": 10, "page": 3})
    assert len(last.json()) == 5
    assert "next" not in last.links
    beyond = await api.get("/orders", params={"per_page": 10, "page": 9})
    assert beyond.status_code == 200
    assert beyond.json() == []

    seen = [o["id"] for page in (first, middle, last) for o in page.json()]
    assert seen == sorted(shop.orders, reverse=True)  # default: date desc


@pytest.mark.parametrize("per_page", ["0", "101", "abc"])
async def test_per_page_out_of_range_is_400(api: httpx.AsyncClient, per_page: str) -> None:
    response = await api.get("/orders", params={"per_page": per_page})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "rest_invalid_param"
    assert body["message"] == "Invalid parameter(s): per_page"
    assert body["data"]["status"] == 400
    assert "per_page" in body["data"]["params"]


async def test_status_filter_forms(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    ids = {status: shop.add_order(one_line_order(status=status))["id"] for status in ORDER_MIX}

    async def listed(query: str) -> set[int]:
        response = await api.get(f"/orders?{query}")
        assert response.status_code == 200, response.text
        return {order["id"] for order in response.json()}

    both = {ids["completed"], ids["processing"]}
    assert await listed("status[]=completed&status[]=processing") == both
    assert await listed("status=completed,processing") == both
    assert await listed("status=completed") == {ids["completed"]}
    assert await listed("") == set(ids.values()) - {ids["trash"], ids["checkout-draft"]}
    assert await listed("status=trash") == {ids["trash"]}
    bad = await api.get("/orders?status=paid")
    assert bad.status_code == 400
    assert bad.json()["code"] == "rest_invalid_param"


ORDER_MIX = ("pending", "processing", "completed", "on-hold", "trash", "checkout-draft")


async def test_modified_after_is_exclusive_and_honours_dates_are_gmt(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    early = shop.add_order(one_line_order())
    shop.advance(3600)
    late = shop.add_order(one_line_order())
    stamp_gmt = late["date_modified_gmt"]
    stamp_local = late["date_modified"]

    async def listed(**params: str) -> list[int]:
        response = await api.get("/orders", params=params | {"orderby": "modified", "order": "asc"})
        return [order["id"] for order in response.json()]

    assert await listed(modified_after=stamp_gmt, dates_are_gmt="true") == []
    one_second_before = (datetime.fromisoformat(stamp_gmt) - timedelta(seconds=1)).isoformat()
    assert await listed(modified_after=one_second_before, dates_are_gmt="true") == [late["id"]]
    # Without dates_are_gmt the value is read as shop-local time, 2 h ahead of GMT in summer.
    assert await listed(modified_after=stamp_gmt) == [early["id"], late["id"]]
    assert await listed(modified_after=early["date_modified"]) == [late["id"]]
    assert await listed(modified_after=stamp_local) == []
    assert await listed(modified_before=stamp_gmt, dates_are_gmt="1") == [early["id"]]
    assert await listed(modified_after=stamp_gmt + "Z", dates_are_gmt="true") == []
    bad = await api.get("/orders", params={"modified_after": "yesterday"})
    assert bad.status_code == 400


async def test_orderby_id_and_include(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    ids = [shop.add_order(one_line_order())["id"] for _ in range(4)]
    response = await api.get(
        "/orders", params={"orderby": "id", "order": "asc", "include": f"{ids[2]},{ids[0]}"}
    )
    assert [order["id"] for order in response.json()] == [ids[0], ids[2]]
    response = await api.get("/orders", params={"orderby": "include", "include[]": [ids[3], ids[1]]})
    assert [order["id"] for order in response.json()] == [ids[3], ids[1]]


def test_updates_in_the_same_second_still_move_modified_forward(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    stamps = [order["date_modified_gmt"]]
    for note in ("a", "b", "c"):
        stamps.append(shop.update_order(order["id"], customer_note=note)["date_modified_gmt"])
    assert stamps == sorted(set(stamps))
    assert len(set(stamps)) == 4
    assert shop.now() >= datetime.fromisoformat(stamps[-1]).replace(tzinfo=UTC)
    shop.advance(86400)
    assert shop.update_order(order["id"])["date_modified_gmt"] == "2025-06-03T10:00:03"


def test_complete_order_sets_paid_and_completed_dates(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="on-hold", payment_method="bacs"))
    assert order["date_paid"] is None
    paid_at = START + timedelta(minutes=5)
    shop.advance(3600)
    done = shop.complete_order(order["id"], paid_at=paid_at)
    assert done["status"] == "completed"
    assert done["date_paid_gmt"] == "2025-06-02T10:05:00"
    assert done["date_completed_gmt"] == "2025-06-02T11:00:00"
    assert done["needs_payment"] is False
    assert done["is_editable"] is False


def test_cash_on_delivery_is_paid_only_on_completion(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="pending", payment_method="cod"))
    shop.update_order(order["id"], status="processing")
    assert order["date_paid"] is None
    shop.advance(60)
    shop.complete_order(order["id"])
    assert order["date_paid_gmt"] == order["date_completed_gmt"] is not None


def test_pay_order_is_payment_complete(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="pending"))
    shop.pay_order(order["id"], transaction_id="tr_1")
    assert order["status"] == "processing"
    assert order["transaction_id"] == "tr_1"
    assert order["date_paid_gmt"] is not None


# ------------------------------------------------------------------------------------------- refunds


async def test_partial_refund_has_negative_lines_and_leaves_totals(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    order = shop.add_order(one_line_order(status="completed"))
    item_id = order["line_items"][0]["id"]
    before = order["date_modified_gmt"]
    refund = shop.add_refund(order["id"], amount="12.10", reason="kapot", line_items={item_id: 1})

    assert refund["amount"] == "12.10"
    line = refund["line_items"][0]
    assert line["quantity"] == -1
    assert (line["total"], line["total_tax"], line["subtotal"]) == ("-10.00", "-2.10", "-10.00")
    # Stored as WooCommerce keeps a tax (9.9.5 answers "-5.2"); 10.0 formats it with `dp` decimals.
    assert line["taxes"] == [{"id": 1, "total": "-2.1", "subtotal": "-2.1"}]
    (served,) = (await api.get(f"/orders/{order['id']}/refunds")).json()
    assert served["line_items"][0]["taxes"] == [{"id": 1, "total": "-2.10", "subtotal": "-2.10"}]
    assert {"key": "_refunded_item_id", "value": str(item_id)}.items() <= line["meta_data"][0].items()
    assert refund["tax_lines"][0]["tax_total"] == "-2.10"
    assert refund["tax_lines"][0]["rate_id"] == 1

    assert order["refunds"] == [{"id": refund["id"], "reason": "kapot", "total": "-12.10"}]
    assert order["total"] == "24.20"
    assert order["status"] == "completed"
    assert order["date_modified_gmt"] > before
    assert refund["date_created_gmt"] == order["date_modified_gmt"]

    listed = await api.get(f"/orders/{order['id']}/refunds")
    assert [r["id"] for r in listed.json()] == [refund["id"]]
    single = await api.get(f"/orders/{order['id']}/refunds/{refund['id']}")
    assert Refund.model_validate(single.json()).amount == Decimal("12.10")
    wrong = await api.get(f"/orders/{order['id']}/refunds/{refund['id'] + 100}")
    assert wrong.status_code == 404
    assert wrong.json()["code"] == "woocommerce_rest_invalid_order_refund_id"
    no_order = await api.get("/orders/999999/refunds")
    assert no_order.json()["code"] == "woocommerce_rest_invalid_order_id"


def test_over_refund_is_refused_and_line_refunds_default_to_their_amount(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="completed"))
    shop.add_refund(order["id"], amount="4.20")
    for amount in ("20.01", "0", "-1"):
        with pytest.raises(ValueError, match="Invalid refund amount"):
            shop.add_refund(order["id"], amount=amount)
    refund = shop.add_refund(order["id"], amount=None, line_items={order["line_items"][0]["id"]: 1})
    assert refund["amount"] == "12.10"
    assert order["status"] == "completed"


def test_refund_of_remaining_amount_marks_order_refunded(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="completed"))
    shop.add_refund(order["id"], amount="4.20")
    shop.add_refund(order["id"], amount=Decimal("20.00"))
    assert order["status"] == "refunded"
    assert [entry["total"] for entry in order["refunds"]] == ["-20.00", "-4.20"]


def test_delete_refund(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(status="completed"))
    refund = shop.add_refund(order["id"], amount="1.00")
    modified = order["date_modified_gmt"]
    shop.delete_refund(order["id"], refund["id"])
    assert order["refunds"] == []
    assert shop.refunds[order["id"]] == []
    assert order["date_modified_gmt"] > modified


# ------------------------------------------------------------------------------------------- webhooks REST


async def test_create_webhook_ignores_status_hides_secret_and_pings(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    receiver = Receiver(200)
    shop.ping_on_create = True
    shop.http_client = receiver.client()
    response = await api.post(
        "/webhooks",
        json={"topic": "order.updated", "delivery_url": HOOK_URL, "secret": "s3cret", "status": "paused"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active"
    assert "secret" not in body
    assert body["hooks"] == [
        "woocommerce_update_order",
        "woocommerce_order_refunded",
        "woocommerce_delete_order_refund",
    ]
    assert response.headers["location"].endswith(f"/webhooks/{body['id']}")
    assert shop.webhooks[body["id"]]["secret"] == "s3cret"
    assert shop.webhooks[body["id"]]["api_version"] == 3
    assert [request.content for request in receiver.received] == [f"webhook_id={body['id']}".encode()]
    assert shop.webhooks[body["id"]]["pending_delivery"] is False


async def test_create_webhook_generates_a_secret(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    response = await api.post("/webhooks", data={"topic": "order.created", "delivery_url": HOOK_URL})
    assert response.status_code == 201
    assert len(shop.webhooks[response.json()["id"]]["secret"]) == 50


INVALID_TOPIC = "woocommerce_rest_shop_webhook_invalid_topic"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"delivery_url": HOOK_URL}, "woocommerce_rest_shop_webhook_invalid_topic"),
        ({"topic": "order.paid", "delivery_url": HOOK_URL}, "woocommerce_rest_shop_webhook_invalid_topic"),
        ({"topic": "action.woocommerce_login_credentials", "delivery_url": HOOK_URL}, INVALID_TOPIC),
        ({"topic": "order.updated"}, "woocommerce_rest_shop_webhook_invalid_delivery_url"),
        (
            {"topic": "order.updated", "delivery_url": "ftp://x"},
            "woocommerce_rest_shop_webhook_invalid_delivery_url",
        ),
    ],
)
async def test_create_webhook_validation(api: httpx.AsyncClient, payload: dict[str, str], code: str) -> None:
    response = await api.post("/webhooks", json=payload)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_webhook_list_update_delete(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    first = shop.add_webhook(delivery_url=HOOK_URL)
    second = shop.add_webhook(delivery_url=HOOK_URL, topic="order.created")
    shop.disable_webhook(second["id"])

    disabled = await api.get("/webhooks", params={"status": "disabled"})
    assert [hook["id"] for hook in disabled.json()] == [second["id"]]
    assert disabled.headers["X-WP-Total"] == "1"
    everything = await api.get("/webhooks")
    assert {hook["id"] for hook in everything.json()} == {first["id"], second["id"]}

    updated = await api.put(f"/webhooks/{second['id']}", json={"status": "active", "name": "woobird"})
    assert updated.json()["status"] == "active"
    assert updated.json()["name"] == "woobird"
    assert shop.webhooks[second["id"]]["failure_count"] == 6  # re-activating keeps the count
    bad = await api.put(f"/webhooks/{second['id']}", json={"status": "asleep"})
    assert bad.status_code == 400

    no_force = await api.delete(f"/webhooks/{first['id']}")
    assert no_force.status_code == 501
    assert no_force.json()["code"] == "woocommerce_rest_trash_not_supported"
    forced = await api.delete(f"/webhooks/{first['id']}", params={"force": "true"})
    assert forced.status_code == 200
    assert forced.json()["id"] == first["id"]
    gone = await api.get(f"/webhooks/{first['id']}")
    assert gone.status_code == 404
    assert gone.json()["code"] == "woocommerce_rest_shop_webhook_invalid_id"


async def test_changing_delivery_url_pings_again(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    receiver = Receiver(200)
    shop.ping_on_create = True
    shop.http_client = receiver.client()
    hook = shop.add_webhook(delivery_url=HOOK_URL)
    await api.put(f"/webhooks/{hook['id']}", json={"delivery_url": HOOK_URL + "?v=2"})
    assert [str(request.url) for request in receiver.received] == [HOOK_URL + "?v=2"]


# ------------------------------------------------------------------------------------------- delivery


async def test_delivery_is_signed_over_the_exact_bytes(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order(billing={"city": "Liège", "email": "a@b.nl"}))
    hook = shop.add_webhook(delivery_url=HOOK_URL, secret="wh_secret_42")
    receiver = Receiver(200)
    async with receiver.client() as client:
        status = await shop.deliver(order["id"], client=client)
    assert status == 200
    request = receiver.received[0]
    expected = base64.b64encode(hmac.new(b"wh_secret_42", request.content, hashlib.sha256).digest()).decode()
    assert request.headers["x-wc-webhook-signature"] == expected
    assert b"\\/wp-json\\/wc\\/v3\\/orders\\/" in request.content
    assert b"Li\\u00e8ge" in request.content
    assert b'":' in request.content
    assert b'": ' not in request.content
    assert json.loads(request.content) == shop.order_view(order["id"])
    assert request.content == shop.webhook_body(order["id"])
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"WooCommerce/[\d.]+ Hookshot \(WordPress/[\d.]+\)", headers["user-agent"])
    assert headers["x-wc-webhook-topic"] == "order.updated"
    assert headers["x-wc-webhook-resource"] == "order"
    assert headers["x-wc-webhook-event"] == "updated"
    assert headers["x-wc-webhook-id"] == str(hook["id"])
    assert headers["x-wc-webhook-source"] == shop.url + "/"
    assert len(headers["x-wc-webhook-delivery-id"]) == 32


async def test_deliver_only_to_active_webhooks_on_the_topic(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    shop.add_webhook(delivery_url=HOOK_URL + "/a")
    shop.add_webhook(delivery_url=HOOK_URL + "/b", topic="order.created")
    paused = shop.add_webhook(delivery_url=HOOK_URL + "/c")
    paused["status"] = "paused"
    receiver = Receiver()
    async with receiver.client() as client:
        await shop.deliver(order["id"], client=client)
        assert [request.url.path for request in receiver.received] == ["/webhooks/woocommerce/a"]
        await shop.deliver(order["id"], client=client, topic="order.deleted")
    assert await shop.deliver(order["id"], topic="order.restored") is None


async def test_seventh_consecutive_failure_disables(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    hook = shop.add_webhook(delivery_url=HOOK_URL)
    receiver = Receiver(500, 404, 303, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 500, 500)
    async with receiver.client() as client:
        for expected_count in range(1, 7):
            await shop.deliver(order["id"], client=client)
            assert (hook["status"], hook["failure_count"]) == ("active", expected_count)
        await shop.deliver(order["id"], client=client)
        assert (hook["status"], hook["failure_count"]) == ("disabled", 6)
        assert await shop.deliver(order["id"], client=client) is None
    assert len(receiver.received) == 7
    assert [d.status for d in shop.deliveries][3:5] == [None, None]


async def test_success_resets_and_redirects_count_as_success(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    hook = shop.add_webhook(delivery_url=HOOK_URL)
    receiver = Receiver(500, 500, 302, 500)
    async with receiver.client() as client:
        for _ in range(3):
            await shop.deliver(order["id"], client=client)
        assert hook["failure_count"] == 0
        await shop.deliver(order["id"], client=client)
    assert hook["failure_count"] == 1


async def test_a_webhook_reactivated_through_rest_is_disabled_by_the_next_failure(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    order = shop.add_order(one_line_order())
    hook = shop.add_webhook(delivery_url=HOOK_URL)
    receiver = Receiver(*([500] * 7), 500, 200, 500)
    async with receiver.client() as client:
        for _ in range(7):
            await shop.deliver(order["id"], client=client)
        assert (hook["status"], hook["failure_count"]) == ("disabled", 6)
        await api.put(f"/webhooks/{hook['id']}", json={"status": "active"})
        assert (hook["status"], hook["failure_count"]) == ("active", 6)
        await shop.deliver(order["id"], client=client)  # one more failure is enough
        assert hook["status"] == "disabled"
        await api.put(f"/webhooks/{hook['id']}", json={"status": "active"})
        await shop.deliver(order["id"], client=client)  # a success resets the count
        assert (hook["status"], hook["failure_count"]) == ("active", 0)
        await shop.deliver(order["id"], client=client)
        assert (hook["status"], hook["failure_count"]) == ("active", 1)


async def test_reenabled_webhook_keeps_its_count(shop: ShopSandbox) -> None:
    order = shop.add_order(one_line_order())
    hook = shop.add_webhook(delivery_url=HOOK_URL)
    receiver = Receiver(*([500] * 8))
    async with receiver.client() as client:
        for _ in range(7):
            await shop.deliver(order["id"], client=client)
        hook["status"] = "active"
        await shop.deliver(order["id"], client=client)
    assert hook["status"] == "disabled"


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (201, False), (204, False), (302, False), (500, False)]
)
async def test_ping_needs_exactly_200(shop: ShopSandbox, status: int, ok: bool) -> None:
    hook = shop.add_webhook(delivery_url=HOOK_URL, pending_delivery=True)
    receiver = Receiver(status)
    async with receiver.client() as client:
        assert await shop.ping(hook["id"], client=client) is ok
    request = receiver.received[0]
    assert request.content == f"webhook_id={hook['id']}".encode()
    assert "x-wc-webhook-signature" not in request.headers
    assert hook["pending_delivery"] is not ok
    assert hook["failure_count"] == 0


async def test_unanswered_ping_is_repeated_after_each_delivery(shop: ShopSandbox) -> None:
    shop.ping_on_create = True
    order = shop.add_order(one_line_order())
    hook = shop.add_webhook(delivery_url=HOOK_URL, pending_delivery=True)
    receiver = Receiver(200, 204, 200, 200)
    async with receiver.client() as client:
        await shop.deliver(order["id"], client=client)
        await shop.deliver(order["id"], client=client)
        await shop.deliver(order["id"], client=client)
    bodies = [request.content.startswith(b"webhook_id=") for request in receiver.received]
    assert bodies == [False, True, False, True, False]
    assert hook["pending_delivery"] is False


# ------------------------------------------------------------------------------------------- faults and log


async def test_fail_next_by_template_concrete_path_and_star(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    order = shop.add_order(one_line_order())
    shop.fail_next("GET /orders/{id}", status=503, times=2)
    assert (await api.get(f"/orders/{order['id']}")).status_code == 503
    assert (await api.get("/orders")).status_code == 200
    assert (await api.get(f"/orders/{order['id']}")).status_code == 503
    assert (await api.get(f"/orders/{order['id']}")).status_code == 200

    shop.fail_next(f"GET /orders/{order['id']}")
    failed = await api.get(f"/orders/{order['id']}")
    assert failed.status_code == 500
    assert failed.json()["code"] == "internal_server_error"
    shop.fail_next("*", status=429)
    assert (await api.get("/taxes")).status_code == 429

    assert [call.status for call in shop.calls("GET /orders/{id}")] == [503, 503, 200, 500]
    assert [call.status for call in shop.calls("GET /orders")] == [200]
    assert len(shop.calls("*")) == 6


async def test_timeout_fault_reaches_an_in_process_client_as_a_timeout(
    shop: ShopSandbox, api: httpx.AsyncClient
) -> None:
    shop.fault_timeout_seconds = 0
    shop.fail_next("GET /orders", kind="timeout")
    with pytest.raises(httpx.ReadTimeout):
        await api.get("/orders")
    assert (await api.get("/orders")).status_code == 200


# ------------------------------------------------------------------------------------------- catalog, status


async def test_products_variations_taxes_and_status(shop: ShopSandbox, api: httpx.AsyncClient) -> None:
    products = (await api.get("/products", params={"per_page": 100})).json()
    assert {product["type"] for product in products} == {"simple", "variable"}
    variable = next(product for product in products if product["type"] == "variable")
    variations = (await api.get(f"/products/{variable['id']}/variations")).json()
    assert [v["id"] for v in variations] == variable["variations"]
    assert all(v["parent_id"] == variable["id"] for v in variations)
    by_sku = (await api.get("/products", params={"sku": "MOK-DB-01"})).json()
    assert [p["price"] for p in by_sku] == ["12.40"]
    assert (await api.get("/products/999999")).json()["code"] == "woocommerce_rest_product_invalid_id"

    taxes = (await api.get("/taxes")).json()
    assert [(t["rate"], t["class"], t["country"]) for t in taxes] == [
        ("21.0000", "standard", "NL"),
        ("9.0000", "reduced-rate", "NL"),
    ]
    status = (await api.get("/system_status")).json()
    assert status["environment"]["version"] == "10.0.2"  # what the fake imitates by default
    assert status["settings"]["currency"] == "EUR"
    incl = (await api.get("/settings/tax/woocommerce_prices_include_tax")).json()
    assert incl["value"] == "no"


# ------------------------------------------------------------------------------------------- end to end


async def test_paid_order_webhook_to_an_app_and_read_back(shop: ShopSandbox) -> None:
    """The usage pattern: a paid order, its webhook into a receiving app, the app reads it back."""
    shop_app = create_app(shop)
    seen: list[dict[str, Any]] = []

    async def receiving_app(scope: Any, receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        assert headers[b"x-wc-webhook-signature"].decode() == sign(body, "wh_e2e")
        order_id = json.loads(body)["id"]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=shop_app), base_url=shop.url + WOOCOMMERCE_API_PREFIX
        ) as woo:
            params = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret}
            seen.append((await woo.get(f"/orders/{order_id}", params=params)).json())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    order = shop.add_order(one_line_order(status="processing"))
    shop.complete_order(order["id"])
    shop.add_webhook(delivery_url="http://woobird.test/webhooks/woocommerce", secret="wh_e2e")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiving_app)) as client:
        assert await shop.deliver(order["id"], client=client) == 200
    assert seen[0]["status"] == "completed"
    assert seen[0]["date_paid_gmt"] is not None


# ------------------------------------------------------------------------------------------- reference orders


@pytest.mark.parametrize("name", sorted(CARTS))
async def test_reference_orders_round_trip(shop: ShopSandbox, api: httpx.AsyncClient, name: str) -> None:
    document = order_document(name)
    shop.url = "https://winkel.example.nl"
    shop.woocommerce_version = "9.9.5"  # sends the raw per-rate taxes it was given
    shop.add_order(document)
    served = (await api.get(f"/orders/{document['id']}")).json()
    ignored = {"date_modified", "date_modified_gmt", "_links"}
    assert {k: v for k, v in served.items() if k not in ignored} == {
        k: v for k, v in document.items() if k not in ignored
    }
    body = shop.webhook_body(document["id"])
    assert json.loads(body) == served
    Order.model_validate_json(body)


def test_reference_refund_matches_the_shop_refund(shop: ShopSandbox) -> None:
    """Order (f) minus its refund, refunded again here, gives the refund worked out by hand."""
    document = order_document("f")
    document["refunds"] = []
    order = shop.add_order(document)
    apron = next(line["id"] for line in document["line_items"] if "schort" in line["name"])
    refund = shop.add_refund(
        order["id"], amount="42.29", reason="Retour: schort in verkeerde maat", line_items={apron: 1}
    )
    line = refund["line_items"][0]
    assert (line["subtotal"], line["total"], line["total_tax"], line["price"]) == (
        "-34.95",
        "-34.95",
        "-7.34",
        34.95,
    )
    assert line["taxes"] == [{"id": 1, "total": "-7.34", "subtotal": "-7.34"}]
    tax_line = refund["tax_lines"][0]
    assert (tax_line["rate_code"], tax_line["tax_total"], tax_line["shipping_tax_total"]) == (
        "NL-BTW-1",
        "-7.34",
        "0.00",
    )
    assert order["refunds"][0]["total"] == "-42.29"
    assert order["status"] == "completed"
