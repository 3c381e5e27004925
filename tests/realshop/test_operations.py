"""What a shop owner runs against the real shop: `webhook install` (WooCommerce's real ping),
`check`, a webhook WooCommerce disabled, `backfill` of orders paid before SYNC_SINCE, `products`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.constants import WEBHOOK_PATH
from tests.realshop.checks import check_booked
from tests.realshop.orders import place_order, set_status
from tests.realshop.stack import NotYet, Stack, eventually

pytestmark = pytest.mark.realshop


def _our_webhooks(stack: Stack) -> list[dict[str, Any]]:
    hooks = stack.shop.rest.get("/wc/v3/webhooks", params={"status": "all"}).json()
    return [hook for hook in hooks if hook["delivery_url"] == stack.web_url + WEBHOOK_PATH]


def _metric(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.web_url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_webhook_install_registers_the_webhook_and_woocommerce_pings_woobird(stack: Stack) -> None:
    """WooCommerce pings inside `POST /webhooks`, so web answered it during `webhook install`."""
    assert "created" in stack.install_output.lower(), stack.install_output
    (hook,) = _our_webhooks(stack)
    assert (hook["status"], hook["topic"]) == ("active", "order.updated")
    assert _metric(stack, "woobird_webhook_deliveries_total", connection="1", outcome="ping") >= 1

    again = stack.woobird("webhook", "install")

    assert again.returncode == 0, again.stdout + again.stderr
    assert [h["id"] for h in _our_webhooks(stack)] == [hook["id"]]


def test_check_is_green_on_a_good_setup(stack: Stack) -> None:
    result = stack.woobird("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uses plain HTTP" in result.stdout  # a note, not a failure


@pytest.mark.parametrize(
    ("setting", "value", "named", "says"),
    [
        (
            "WOOCOMMERCE_CONSUMER_KEY",
            "ck_" + "0" * 40,
            "WOOCOMMERCE_CONSUMER_KEY",
            "the shop has no such key",
        ),
        (
            "WOOCOMMERCE_CONSUMER_SECRET",
            "cs_" + "0" * 40,
            "WOOCOMMERCE_CONSUMER_SECRET",
            "secret does not match",
        ),
        ("PUBLIC_URL", "http://127.0.0.1:9", "webhook", "run `woobird webhook install`"),
        pytest.param(
            "MONEYBIRD_API_TOKEN",
            "mbtoken" + "0" * 32,
            "MONEYBIRD_API_TOKEN",
            "",
            # Moneybird (the fake) refuses the token; the shop's version plays no part.
            marks=pytest.mark.first_version_only("Moneybird's answer, not the shop's"),
            id="MONEYBIRD_API_TOKEN",
        ),
    ],
)
def test_check_names_each_bad_setting(stack: Stack, setting: str, value: str, named: str, says: str) -> None:
    result = stack.woobird("check", env={setting: value})
    assert result.returncode == 1, result.stdout
    assert f"✗ {named}" in result.stdout
    assert says in result.stdout


def test_a_webhook_disabled_in_the_shop_is_healed_by_reconciliation(stack: Stack) -> None:
    (hook,) = _our_webhooks(stack)
    stack.shop.rest.put(f"/wc/v3/webhooks/{hook['id']}", json={"status": "disabled"}).raise_for_status()
    stack.shop.set_prices_include_tax(True)
    order = set_status(
        stack.shop, place_order(stack.shop, items=[("teapot", 1)], email="stil@example.com"), "completed"
    )

    # No delivery comes; the next reconciliation pass (every 30 s here) books it and switches the hook on.
    check_booked(stack, order, kind="incl. VAT: booked by reconciliation, webhook disabled")

    def reactivated() -> None:
        if _our_webhooks(stack)[0]["status"] != "active":
            raise NotYet("the webhook is still disabled")

    eventually(reactivated, within=10)


def test_backfill_books_the_orders_paid_before_sync_since(
    stack: Stack, history: list[dict[str, Any]]
) -> None:
    assert all(stack.invoices(f"WooCommerce #{order['number']}") == [] for order in history)
    first_paid = min(datetime.fromisoformat(order["date_paid_gmt"]) for order in history)
    since, until = first_paid - timedelta(minutes=1), stack.since
    moments = [moment.strftime("%Y-%m-%dT%H:%M:%S") for moment in (since, until)]

    result = stack.woobird("backfill", "--since", moments[0], "--until", moments[1])

    assert result.returncode == 0, result.stdout + result.stderr
    for order in history:
        check_booked(stack, order, kind="backfill: paid before SYNC_SINCE")


def test_products_copies_every_sku_once(stack: Stack) -> None:
    # Moneybird has two revenue accounts here, so `products` needs to be told which one (as a user is).
    revenue = stack.moneybird.ledger_account_id("Omzet")
    result = stack.woobird("products", env={"MONEYBIRD_LEDGER_ACCOUNT_ID": revenue})
    assert result.returncode == 0, result.stdout + result.stderr
    skus = set()
    for product in stack.shop.rest.get("/wc/v3/products", params={"per_page": 100}).json():
        if product["type"] == "variable":
            variations = stack.shop.rest.get(f"/wc/v3/products/{product['id']}/variations").json()
            # A variation without its own SKU reports its parent's: that identifies nothing.
            skus |= {
                variation["sku"] for variation in variations if variation["sku"] not in ("", product["sku"])
            }
        elif product["sku"]:
            skus.add(product["sku"])
    with stack.moneybird.lock:
        identifiers = [product["identifier"] for product in stack.moneybird.products.values()]
    assert sorted(identifiers) == sorted(skus), result.stdout


def test_each_delivery_s_lag_is_measured_against_the_shop_s_own_clock(stack: Stack) -> None:
    """The shop sits in Europe/Amsterdam: a lag read from the local `date_modified` would be an hour."""
    before = _metric(stack, "woobird_webhook_delivery_lag_seconds_count", connection="1")
    stack.shop.set_prices_include_tax(True)
    order = set_status(
        stack.shop, place_order(stack.shop, items=[("mug", 1)], email="snel@example.com"), "completed"
    )
    check_booked(stack, order, kind="incl. VAT: 21 %, its delivery's lag measured")

    assert _metric(stack, "woobird_webhook_delivery_lag_seconds_count", connection="1") > before
    status = stack.woobird("status")
    median = re.search(r"Webhook delivery lag: median ([0-9.]+) s", status.stdout)
    assert median, status.stdout
    # The rig runs the shop's queue every half second, as a system cron would: well within a minute.
    assert float(median[1]) < 30, status.stdout
    assert "arrive late" not in status.stdout
