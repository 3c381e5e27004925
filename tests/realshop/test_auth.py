"""How the real shop lets woobird in: OAuth 1.0a signatures over plain HTTP, Basic auth over HTTPS,
and an answer that tells a shop that saw no key from a wrong key."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest

from app.woocommerce.client import OAuth1Signature, WooCommerceClient
from app.woocommerce.errors import AuthProblem, WooCommerceAuthError
from tests.realshop.shop import RealShop

pytestmark = pytest.mark.realshop


class TlsProxy(httpx.AsyncBaseTransport):
    """What a TLS-terminating proxy in front of the shop does: https:// outside, plain HTTP to PHP,
    `X-Forwarded-Proto: https` so WordPress knows (the rig's must-use plugin reads it)."""

    def __init__(self, *, drop_authorization: bool = False) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._drop_authorization = drop_authorization

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if not (self._drop_authorization and k.lower() == b"authorization")
        ]
        forwarded = httpx.Request(
            request.method,
            request.url.copy_with(scheme="http"),
            headers=[*headers, (b"X-Forwarded-Proto", b"https")],
            content=request.content,
        )
        return await self._inner.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self._inner.aclose()


class DropsAuthorization(httpx.AsyncBaseTransport):
    """A web server that does not hand the Authorization header to PHP."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["authorization"]
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_over_plain_http_the_shop_refuses_basic_auth_and_keys_in_the_query(shop: RealShop) -> None:
    async with httpx.AsyncClient(base_url=f"{shop.url}/wp-json/wc/v3") as http:
        basic = await http.get("/orders", auth=(shop.consumer_key, shop.consumer_secret))
        query = await http.get(
            "/orders", params={"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret}
        )
        signed = await http.get("/orders", auth=OAuth1Signature(shop.consumer_key, shop.consumer_secret))
    assert (basic.status_code, basic.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    assert (query.status_code, query.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    assert signed.status_code == 200
    # The signature travels in the Authorization header: nothing secret (or signed) is in the URL.
    assert "oauth_" not in str(signed.request.url)
    assert signed.request.headers["authorization"].startswith("OAuth ")


async def test_woobird_reads_and_writes_a_plain_http_shop_with_oauth_signatures(shop: RealShop) -> None:
    async with WooCommerceClient(
        shop_url=shop.url, consumer_key=shop.consumer_key, consumer_secret=shop.consumer_secret
    ) as client:
        page = await client.list_orders(statuses=["completed", "processing"], per_page=5)
        hook = await client.create_webhook(
            name="auth test",
            topic="order.updated",
            delivery_url="http://127.0.0.1:9/webhooks/woocommerce",
            secret=secrets.token_urlsafe(16),
        )
        paused = await client.update_webhook(hook.id, status="paused")
        taxes = await client.get_json("/taxes", per_page=100)
    assert page.total_pages >= 0
    assert (hook.status, paused.status) == ("active", "paused")
    assert {(rate["country"], rate["rate"]) for rate in taxes} >= {("NL", "21.0000"), ("NL", "9.0000")}
    shop.rest.delete(f"/wc/v3/webhooks/{hook.id}", params={"force": "true"}).raise_for_status()


async def test_over_https_woobird_uses_basic_auth(shop: RealShop) -> None:
    https_url = shop.url.replace("http://", "https://")
    async with WooCommerceClient(
        shop_url=https_url,
        consumer_key=shop.consumer_key,
        consumer_secret=shop.consumer_secret,
        transport=TlsProxy(),
    ) as client:
        taxes = await client.get_json("/taxes")
    assert taxes


Make = Callable[..., WooCommerceClient]


@pytest.fixture
def make_client(shop: RealShop) -> Make:
    def make(
        *, https: bool = False, key: str | None = None, secret: str | None = None, **kw: object
    ) -> WooCommerceClient:
        return WooCommerceClient(
            shop_url=shop.url.replace("http://", "https://") if https else shop.url,
            consumer_key=key or shop.consumer_key,
            consumer_secret=secret or shop.consumer_secret,
            **kw,  # type: ignore[arg-type]
        )

    return make


@pytest.mark.parametrize("https", [False, True], ids=["http-oauth", "https-basic"])
@pytest.mark.parametrize(
    ("wrong", "problem"),
    [("key", "unknown_key"), ("secret", "wrong_secret"), ("header", "not_authenticated")],
)
async def test_a_wrong_key_is_told_apart_from_a_key_the_shop_never_saw(
    shop: RealShop, make_client: Make, https: bool, wrong: str, problem: AuthProblem
) -> None:
    transport: httpx.AsyncBaseTransport
    if https:
        transport = TlsProxy(drop_authorization=wrong == "header")
    else:
        transport = DropsAuthorization() if wrong == "header" else httpx.AsyncHTTPTransport()
    key = f"ck_{secrets.token_hex(20)}" if wrong == "key" else None
    secret = f"cs_{secrets.token_hex(20)}" if wrong == "secret" else None
    async with make_client(https=https, key=key, secret=secret, transport=transport) as client:
        with pytest.raises(WooCommerceAuthError) as refused:
            await client.list_webhooks()
    # Over HTTPS WooCommerce answers an unknown key as if no key had come (`perform_basic_authentication`).
    expected = "not_authenticated" if https and wrong == "key" else problem
    assert refused.value.problem == expected
    assert shop.consumer_secret not in str(refused.value)


async def test_a_read_only_key_is_told_it_may_not_write(shop: RealShop, make_client: Make) -> None:
    key, secret = f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}"
    shop.wp(
        "global $wpdb; $wpdb->insert($wpdb->prefix . 'woocommerce_api_keys', ['user_id' => 1, "
        f"'description' => 'read only', 'permissions' => 'read', 'consumer_key' => wc_api_hash('{key}'), "
        f"'consumer_secret' => '{secret}', 'truncated_key' => substr('{key}', -7)]); return true;"
    )
    async with make_client(key=key, secret=secret) as client:
        assert await client.list_webhooks() is not None
        with pytest.raises(WooCommerceAuthError) as refused:
            await client.create_webhook(
                name="x", topic="order.updated", delivery_url="http://127.0.0.1:9/x", secret="s3cr3t-s3cr3t"
            )
    assert refused.value.problem == "no_rights"


async def test_a_list_goes_comma_separated_because_php_arrays_break_the_signature(shop: RealShop) -> None:
    async with httpx.AsyncClient(
        base_url=f"{shop.url}/wp-json/wc/v3", auth=OAuth1Signature(shop.consumer_key, shop.consumer_secret)
    ) as http:
        array = await http.get("/orders", params={"status[]": ["completed", "processing"]})
        comma = await http.get("/orders", params={"status": "completed,processing"})
    assert array.json()["message"] == "Invalid signature - provided signature does not match."
    assert comma.status_code == 200
    assert {order["status"] for order in comma.json()} <= {"completed", "processing"}
