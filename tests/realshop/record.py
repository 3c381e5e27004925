"""Record what a real WooCommerce sends, as fixtures for the unit tests.

    WOOBIRD_TEST_WORDPRESS=… WOOBIRD_TEST_WOOCOMMERCE=…:… python -m tests.realshop.record

For every WooCommerce version named, it installs the rig's shop, places the orders of `CASES`
(REST and Store API), completes and refunds them as an owner would, and writes — into
`tests/fixtures/realshop/<version>/` — for each case:

- `<case>.order.json` — `GET /orders/{id}` as WooCommerce answers by default (`dp` 2);
- `<case>.order.dp6.json` — the same order with `?dp=6` (what woobird reads: raw per-rate taxes);
- `<case>.refunds.json` / `<case>.refunds.dp6.json` — `GET /orders/{id}/refunds`, when refunded;
- `<case>.webhook.json` — the last `order.updated` delivery about it: headers and the exact body;

and `ping.json`, the ping WooCommerce sends inside `POST /webhooks`, plus `shop.json` (versions,
tax rate ids and the webhook secret the signatures were made with). Bodies are kept byte for byte
(escaped slashes, the shop's random port in links); nothing is edited.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.realshop.orders import get_order, place_order, refund, set_status, store_checkout
from tests.realshop.shop import HOW_TO_RUN, RealShop, ShopSources, install_shop

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realshop"
WEBHOOK_SECRET = "recorded-webhook-secret-0123456789"
PENDING_DELIVERIES = (
    "return count(WC()->queue()->search(['hook' => 'woocommerce_deliver_webhook_async', "
    "'status' => 'pending', 'per_page' => 100], 'ids'));"
)


def _excl(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(shop, items=[("mug", 3)], email="sanne.devries@example.com", shipping="flat_nl")
    return set_status(shop, order, "completed")


def _incl_two_rates(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(True)
    order = place_order(
        shop, items=[("teapot", 1), ("tea", 3)], email="daan.bakker@example.com", shipping="flat_nl"
    )
    order = set_status(shop, order, "completed")
    teapot = next(line for line in order["line_items"] if line["name"].startswith("Theepot"))
    refund(shop, order, amount=Decimal("29.95"), lines={teapot["id"]: 1}, reason="Theepot gebarsten")
    return order


def _coupons(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(
        shop,
        items=[("plaid", 1), ("cookbook", 2), ("liquorice", 3)],
        coupons=["welkom10", "korting5"],
        email="emma.visser@example.com",
        shipping="flat_nl",
    )
    order = set_status(shop, order, "completed")
    refund(shop, order, amount=Decimal("10.00"), reason="Coulance")  # amount only
    return order


def _negative_fee(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(
        shop,
        items=[("mug", 3), ("tea", 3)],
        fees=[("Rembourskosten", "2.50", ""), ("Korting", "-4.69", "")],
        payment="cod",
        email="bram.mulder@example.com",
        shipping="flat_nl",
    )
    return set_status(shop, order, "completed")


def _voucher(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(
        shop, items=[("voucher", 1), ("mug", 1)], email="noor.jansen@example.com", shipping="flat_nl"
    )
    order = set_status(shop, order, "completed")
    voucher = next(line for line in order["line_items"] if line["name"] == "Cadeaubon")
    refund(shop, order, amount=Decimal("25.00"), lines={voucher["id"]: 1}, reason="Cadeaubon niet gebruikt")
    return order


def _shipping_refund(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(True)
    order = place_order(
        shop,
        items=[("shirt", 1, "S"), ("shirt", 1, "M")],
        email="julia.dekker@example.com",
        shipping="flat_nl",
    )
    order = set_status(shop, order, "completed")
    shipping = Decimal(order["shipping_total"]) + Decimal(order["shipping_tax"])
    refund(shop, order, amount=shipping, shipping=True, reason="Verzendkosten terug")
    return order


def _oss(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(True)
    order = place_order(
        shop, items=[("teapot", 1)], country="DE", email="lena.schmidt@example.de", shipping="flat_eu"
    )
    return set_status(shop, order, "completed")


def _reverse_charge(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(
        shop,
        items=[("plaid", 2)],
        country="BE",
        company="Brouwerij De Klok BV",
        meta={"is_vat_exempt": "yes", "_billing_vat_number": "BE0123456749"},
        email="inkoop.declok@example.be",
        shipping="flat_eu",
    )
    return set_status(shop, order, "completed")


def _export(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(False)
    order = place_order(
        shop, items=[("plaid", 1)], country="US", email="john.miller@example.com", shipping="flat_world"
    )
    return set_status(shop, order, "completed")


def _store_checkout(shop: RealShop) -> dict[str, Any]:
    shop.set_prices_include_tax(True)
    order = store_checkout(
        shop, items=[("shirt", 2, "M"), ("tea", 3)], coupons=["welkom10"], email="jan.jansen@example.com"
    )
    return set_status(shop, order, "completed")


CASES: dict[str, Callable[[RealShop], dict[str, Any]]] = {
    "excl-21-flat": _excl,
    "incl-21-9-line-refund": _incl_two_rates,
    "coupons-mixed-amount-refund": _coupons,
    "negative-fee-21-9": _negative_fee,
    "voucher-0-line-refund": _voucher,
    "variations-shipping-refund": _shipping_refund,
    "oss-de": _oss,
    "reverse-charge-be": _reverse_charge,
    "export-us": _export,
    "store-api-checkout": _store_checkout,
}


class _Receiver(BaseHTTPRequestHandler):
    deliveries: list[dict[str, Any]]

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {
            key: value
            for key, value in self.headers.items()
            if key.lower().startswith(("x-wc-", "content-type", "user-agent"))
        }
        self.deliveries.append({"headers": headers, "body": body.decode(), "received": time.time()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # http.server's name
        return


@contextmanager
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    deliveries: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"deliveries": deliveries})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/woocommerce", deliveries
    finally:
        server.shutdown()
        server.server_close()


def _write(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _last_delivery(deliveries: list[dict[str, Any]], order_id: int) -> dict[str, Any] | None:
    about = [
        d for d in deliveries if d["body"].startswith("{") and json.loads(d["body"]).get("id") == order_id
    ]
    return about[-1] if about else None


def record(shop: RealShop, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    with receiver() as (url, deliveries):
        created = shop.rest.post(
            "/wc/v3/webhooks",
            json={
                "name": "recorder",
                "topic": "order.updated",
                "delivery_url": url,
                "secret": WEBHOOK_SECRET,
            },
        )
        created.raise_for_status()
        ping = deliveries[0] if deliveries else None
        orders = {name: case(shop) for name, case in CASES.items()}
        # Every order's last change must have been delivered before the bodies are read.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            settled = shop.wp(PENDING_DELIVERIES) == 0
            if settled and all(_last_delivery(deliveries, order["id"]) for order in orders.values()):
                break
        for name, order in orders.items():
            _write(into / f"{name}.order.json", get_order(shop, order["id"]))
            _write(into / f"{name}.order.dp6.json", get_order(shop, order["id"], dp=6))
            if order["refunds"] or get_order(shop, order["id"])["refunds"]:
                for suffix, params in (("", {}), (".dp6", {"dp": 6})):
                    refunds = shop.rest.get(f"/wc/v3/orders/{order['id']}/refunds", params=params)
                    refunds.raise_for_status()
                    _write(into / f"{name}.refunds{suffix}.json", refunds.json())
            delivery = _last_delivery(deliveries, order["id"])
            if delivery is not None:
                _write(into / f"{name}.webhook.json", delivery)
        if ping is not None:
            _write(into / "ping.json", ping)
        _write(
            into / "shop.json",
            {
                "woocommerce": shop.woocommerce_version,
                "wordpress": shop.wordpress_version,
                "tax_rates": shop.facts["tax_rates"],
                "webhook_secret": WEBHOOK_SECRET,
                "webhook": created.json(),
            },
        )


def main() -> int:
    sources = ShopSources.from_env()
    if sources is None:
        print(HOW_TO_RUN)
        return 2
    for woocommerce in sources.woocommerce:
        with (
            tempfile.TemporaryDirectory() as workdir,
            install_shop(sources, woocommerce=woocommerce, workdir=Path(workdir) / "site") as shop,
        ):
            target = FIXTURES / shop.woocommerce_version
            record(shop, target)
            where = target.relative_to(FIXTURES.parents[1])
            print(f"recorded WooCommerce {shop.woocommerce_version} into {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
