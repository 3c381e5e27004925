"""The shop client against the fake shop, which answers like WooCommerce 9.9.5 or 10.0.2 would."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app.sandbox.woocommerce import ShopSandbox, create_app
from app.woocommerce.client import WooCommerceClient
from tests import recorded

PLAIN_HTTP_SHOP = "http://winkel.local"


@pytest.fixture
def negative_fee_order() -> tuple[ShopSandbox, int]:
    """The recorded 9.9.5 order whose -4.69 fee WooCommerce split into -0.685836 and -0.12817 of tax."""
    shop = ShopSandbox(url=PLAIN_HTTP_SHOP, woocommerce_version="10.0.2", ping_on_create=False)
    document = recorded.order("9.9.5", "negative-fee-21-9")
    document["refunds"] = []
    order = shop.add_order(document)
    return shop, order["id"]


def _client(shop: ShopSandbox) -> WooCommerceClient:
    return WooCommerceClient(
        shop_url=shop.url,
        consumer_key=shop.consumer_key,
        consumer_secret=shop.consumer_secret,
        transport=httpx.ASGITransport(app=create_app(shop)),
    )


async def test_orders_are_read_with_the_raw_per_rate_taxes_of_a_10_0_shop(
    negative_fee_order: tuple[ShopSandbox, int],
) -> None:
    """10.0 rounds each rate's share to cents unless asked for `dp=6`: woobird asks."""
    shop, order_id = negative_fee_order
    async with _client(shop) as client:
        order = await client.get_order(order_id)
        (listed,) = (await client.list_orders(statuses=["completed"])).orders
    for read in (order, listed):
        fee = next(line for line in read.fee_lines if line.total < 0)
        assert [tax.total for tax in fee.taxes] == [Decimal("-0.685836"), Decimal("-0.12817")]
    # Amounts that are whole cents read as cents, whatever the precision asked for.
    assert str(order.total) == str(recorded.order("9.9.5", "negative-fee-21-9")["total"])


async def test_a_plain_http_shop_is_read_with_signatures_and_no_credential_in_any_url(
    negative_fee_order: tuple[ShopSandbox, int],
) -> None:
    shop, order_id = negative_fee_order
    async with _client(shop) as client:
        await client.get_order(order_id)
        await client.list_orders(statuses=["completed", "processing"])
        await client.create_webhook(
            name="woobird", topic="order.updated", delivery_url="https://woobird.example/w", secret="s3cr3t-x"
        )
    assert [request.status for request in shop.requests] == [200, 200, 201]
    for request in shop.requests:
        assert shop.consumer_key not in request.query
        assert "consumer_secret" not in request.query
        assert "oauth_" not in request.query
