"""The fake shop: `ShopSandbox`, its orders, catalog, tax table, faults and request log.

Refunds (`refunds`) and webhooks (`webhooks`) are the other parts of the same object; `state`
holds what they all share.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import httpx

from app.sandbox.woocommerce.refunds import ShopRefunds
from app.sandbox.woocommerce.state import (
    SimulatedClock,
    apply_status,
    fill_line_item,
    refresh_derived,
    set_date,
    set_field,
)
from app.sandbox.woocommerce.webhooks import ShopWebhooks
from app.sandbox.woocommerce.wire import (
    DEFAULT_SHOP_URL,
    WC_VERSION,
    Fault,
    JsonDict,
    RecordedRequest,
    currency_symbol,
    money,
    parse_gmt,
    wc_dates,
)


class ShopSandbox(ShopRefunds, ShopWebhooks):
    """State and switches of one fake shop. Mutators behave like the shop's own code paths."""

    def __init__(
        self,
        *,
        url: str = DEFAULT_SHOP_URL,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        key_permissions: Literal["read", "write", "read_write"] = "read_write",
        start: datetime | None = None,
        currency: str = "EUR",
        prices_include_tax: bool = False,
        ping_on_create: bool = True,
        http_client: httpx.AsyncClient | None = None,
        seed_catalog: bool = True,
        woocommerce_version: str = WC_VERSION,
    ) -> None:
        self.url = url
        # 10.0 and later round each rate's share of a line's tax to `dp` decimals on the wire (precision.py).
        self.woocommerce_version = woocommerce_version
        self.consumer_key = consumer_key or f"ck_{secrets.token_hex(20)}"
        self.consumer_secret = consumer_secret or f"cs_{secrets.token_hex(20)}"
        self.key_permissions = key_permissions
        # Keys made by app authorizations (/wc-auth/v1): consumer key → (secret, permissions).
        self.issued_keys: dict[str, tuple[str, str]] = {}
        self.authorization_requests: list[dict[str, str]] = []
        self.currency = currency
        self.prices_include_tax = prices_include_tax
        self.tax_round_at_subtotal = False
        # REST-triggered pings (create, and saves while a ping is pending) are skipped when False.
        self.ping_on_create = ping_on_create
        # Used for deliveries and pings unless a call passes its own; None → a short-lived client.
        self.http_client = http_client
        # How long a `kind="timeout"` fault holds a request before failing it.
        self.fault_timeout_seconds = 10.0
        self.clock = SimulatedClock(start)

        self.orders = {}
        self.refunds = {}
        self.notes = {}
        self.webhooks = {}
        self.products = {}
        self.variations = {}
        self.tax_rates = {}
        self.requests = []
        self.deliveries = []
        self.faults = []
        self.saved_orders = []
        # WooCommerce's own gateways, as a fresh shop lists them (only what woobird reads is filled).
        self.payment_gateways = [
            {"id": "bacs", "title": "Direct bank transfer", "enabled": True},
            {"id": "cheque", "title": "Check payments", "enabled": False},
            {"id": "cod", "title": "Cash on delivery", "enabled": False},
        ]

        self._next_post_id = 1001  # orders, refunds and products share WordPress's post ids
        self._next_item_id = 1
        self._next_meta_id = 1
        self._next_webhook_id = 1
        self._next_comment_id = 1
        self._delivery_salt = secrets.token_bytes(16)

        self.add_tax_rate(rate="21", name="BTW", tax_class="standard")
        self.add_tax_rate(rate="9", name="BTW verlaagd", tax_class="reduced-rate", shipping=False)
        if seed_catalog:
            self._seed_catalog()

    # ------------------------------------------------------------------ orders

    def add_order(self, order: Mapping[str, Any]) -> JsonDict:
        """Store an order as the shop would return it; missing fields get WooCommerce's defaults.

        `id`/`number` are assigned when absent, `date_created` is kept when given (imported
        history) and otherwise now, `date_modified` is always now: the shop just saved it.
        Totals are taken as given — build them with `app.sandbox.woocommerce.checkout`.
        """
        document = self._order_skeleton()
        given = copy.deepcopy(dict(order))
        for address in ("billing", "shipping"):
            # A partial address (a test's name and e-mail) still yields every field the REST API shows.
            given[address] = document[address] | given.get(address, {})
        document.update(given)
        document["id"] = self._post_id(order.get("id"))
        document["number"] = str(order.get("number") or document["id"])
        document["order_key"] = document["order_key"] or f"wc_order_{_random_alnum(13)}"
        self._fill_line_ids(document)
        moment = self.clock.now()
        if not document.get("date_created_gmt"):
            set_date(document, "date_created", moment)
        set_date(document, "date_modified", moment)
        refresh_derived(document)
        document["_links"] = self._order_links(document)
        self.orders[document["id"]] = document
        self.refunds.setdefault(document["id"], [])
        return document

    def update_order(self, order_id: int, **changes: Any) -> JsonDict:
        """Save changes the way the shop does: status side effects, then a strictly later modified date.

        A `status` change sets `date_paid`/`date_completed` as WooCommerce does (see
        `apply_status`); explicit `date_*` changes (datetime or None) win over those. Decimal
        values for top-level money fields are formatted as money strings.
        """
        order = self._order(order_id)
        moment = self.clock.later_than(parse_gmt(order.get("date_modified_gmt")))
        new_status = changes.pop("status", None)
        if new_status is not None and new_status != order["status"]:
            apply_status(order, new_status, at=moment)
        for key, value in changes.items():
            set_field(order, key, value)
        set_date(order, "date_modified", moment)
        refresh_derived(order)
        return order

    def save_order_through_rest(self, order_id: int, *, status: str | None) -> JsonDict:
        """`PUT /orders/{id}` as WC_REST_Orders_Controller saves it: the status set (its transition sets
        `date_paid` on reaching the payment-complete status), the order saved — a later modified date —
        and an order.updated delivery queued, even when nothing changed."""
        order = self.update_order(order_id, **({"status": status} if status is not None else {}))
        self.saved_orders.append(order_id)
        return order

    async def deliver_saved(self, *, client: httpx.AsyncClient | None = None) -> list[int]:
        """Send the order.updated deliveries that REST saves queued; returns the order ids sent."""
        sent, self.saved_orders = self.saved_orders, []
        for order_id in sent:
            await self.deliver(order_id, client=client)
        return sent

    def complete_order(self, order_id: int, *, paid_at: datetime | None = None) -> JsonDict:
        """Mark completed; `date_paid` is set (to `paid_at` or now) only if it was never set."""
        order = self._order(order_id)
        changes: JsonDict = {"status": "completed"}
        if paid_at is not None and not order.get("date_paid_gmt"):
            changes["date_paid"] = paid_at
        return self.update_order(order_id, **changes)

    def pay_order(self, order_id: int, *, transaction_id: str = "") -> JsonDict:
        """`WC_Order::payment_complete()`: what a gateway calls when the money arrived."""
        order = self._order(order_id)
        if order["status"] not in ("pending", "on-hold", "failed", "cancelled", "checkout-draft"):
            return order
        status = "processing" if order.get("needs_processing", True) else "completed"
        changes: JsonDict = {"status": status}
        if transaction_id:
            changes["transaction_id"] = transaction_id
        return self.update_order(order_id, **changes)

    def add_note(self, order_id: int, note: str, *, customer_note: bool = False) -> JsonDict:
        """`WC_Order::add_order_note()`: a comment on the order. The order itself is not saved — its
        `date_modified` stays and no `order.updated` delivery is queued."""
        self._order(order_id)
        local, gmt = wc_dates(self.clock.now())
        stored: JsonDict = {
            "id": self._next_comment_id,
            # Added through the REST API without `added_by_user`: WooCommerce itself is the author.
            "author": "system",
            "date_created": local,
            "date_created_gmt": gmt,
            "note": note,
            "customer_note": customer_note,
        }
        self._next_comment_id += 1
        self.notes.setdefault(order_id, []).append(stored)
        return stored

    def _order_skeleton(self) -> JsonDict:
        blank_address = dict.fromkeys(
            ("first_name", "last_name", "company", "address_1", "address_2", "city", "state", "postcode"), ""
        )
        return {
            "id": 0,
            "parent_id": 0,
            "status": "pending",
            "currency": self.currency,
            "version": self.woocommerce_version,
            "prices_include_tax": self.prices_include_tax,
            "date_created": None,
            "date_modified": None,
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": "0.00",
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": "0.00",
            "total_tax": "0.00",
            "customer_id": 0,
            "order_key": "",
            "billing": blank_address | {"country": "NL", "email": "", "phone": ""},
            "shipping": blank_address | {"country": "NL", "phone": ""},
            "payment_method": "",
            "payment_method_title": "",
            "transaction_id": "",
            "customer_ip_address": "",
            "customer_user_agent": "",
            "created_via": "checkout",
            "customer_note": "",
            "date_completed": None,
            "date_paid": None,
            "cart_hash": "",
            "number": "",
            "meta_data": [],
            "line_items": [],
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [],
            "payment_url": "",
            "is_editable": True,
            "needs_payment": True,
            "needs_processing": True,
            "date_created_gmt": None,
            "date_modified_gmt": None,
            "date_completed_gmt": None,
            "date_paid_gmt": None,
            "currency_symbol": currency_symbol(self.currency),
        }

    def _fill_line_ids(self, order: JsonDict) -> None:
        for key in ("line_items", "tax_lines", "shipping_lines", "fee_lines", "coupon_lines"):
            order[key] = [dict(line) for line in order.get(key) or []]
            for line in order[key]:
                line["id"] = self._item_id(line.get("id"))
                line["meta_data"] = [dict(meta) for meta in line.get("meta_data") or []]
                for meta in line["meta_data"]:
                    if "id" not in meta:
                        meta["id"] = self._meta("", None)["id"]
        for item in order["line_items"]:
            fill_line_item(item)
        for shipping in order["shipping_lines"]:
            shipping.setdefault("tax_status", "taxable")

    # ------------------------------------------------------------------ products and taxes

    def add_product(
        self, name: str, *, price: Decimal | str, sku: str = "", tax_class: str = "", type: str = "simple"
    ) -> JsonDict:
        product_id = self._post_id()
        local, gmt = wc_dates(self.clock.now())
        amount = money(price) if type != "variable" else ""
        product: JsonDict = {
            "id": product_id,
            "name": name,
            "slug": _slug(name),
            "permalink": f"{self.url.rstrip('/')}/product/{_slug(name)}/",
            "date_created": local,
            "date_created_gmt": gmt,
            "date_modified": local,
            "date_modified_gmt": gmt,
            "type": type,
            "status": "publish",
            "catalog_visibility": "visible",
            "sku": sku,
            "price": amount,
            "regular_price": amount,
            "sale_price": "",
            "on_sale": False,
            "purchasable": True,
            "virtual": False,
            "downloadable": False,
            "tax_status": "taxable",
            "tax_class": tax_class,
            "manage_stock": False,
            "stock_quantity": None,
            "stock_status": "instock",
            "parent_id": 0,
            "attributes": [],
            "variations": [],
            "meta_data": [],
        }
        self.products[product_id] = product
        return product

    def add_variable_product(
        self,
        name: str,
        *,
        attribute: str,
        options: Mapping[str, Decimal | str],
        sku: str = "",
        tax_class: str = "",
    ) -> JsonDict:
        """A variable product with one variation per option, priced per option."""
        parent = self.add_product(name, price="0", sku=sku, tax_class=tax_class, type="variable")
        parent["attributes"] = [
            {
                "id": 0,
                "name": attribute,
                "position": 0,
                "visible": True,
                "variation": True,
                "options": [*options],
            }
        ]
        variations = self.variations.setdefault(parent["id"], [])
        for option, price in options.items():
            variation = self._variation(parent, attribute=attribute, option=option, price=price)
            variations.append(variation)
            parent["variations"].append(variation["id"])
        prices = sorted(Decimal(str(price)) for price in options.values())
        parent["price"] = money(prices[0]) if prices else ""
        return parent

    def _variation(
        self, parent: Mapping[str, Any], *, attribute: str, option: str, price: Decimal | str
    ) -> JsonDict:
        variation_id = self._post_id()
        suffix = _slug(option).upper()
        return {
            "id": variation_id,
            "date_created": parent["date_created"],
            "date_created_gmt": parent["date_created_gmt"],
            "date_modified": parent["date_modified"],
            "date_modified_gmt": parent["date_modified_gmt"],
            "permalink": f"{parent['permalink']}?attribute_{_slug(attribute)}={_slug(option)}",
            "sku": f"{parent['sku']}-{suffix}" if parent["sku"] else "",
            "price": money(price),
            "regular_price": money(price),
            "sale_price": "",
            "on_sale": False,
            "status": "publish",
            "purchasable": True,
            "virtual": False,
            "downloadable": False,
            "tax_status": "taxable",
            "tax_class": parent["tax_class"],
            "manage_stock": False,
            "stock_quantity": None,
            "stock_status": "instock",
            "parent_id": parent["id"],
            "attributes": [{"id": 0, "name": attribute, "option": option}],
            "meta_data": [],
        }

    def add_tax_rate(
        self,
        *,
        rate: Decimal | str,
        name: str,
        tax_class: str = "standard",
        country: str = "NL",
        shipping: bool = True,
    ) -> JsonDict:
        rate_id = len(self.tax_rates) + 1
        document: JsonDict = {
            "id": rate_id,
            "country": country,
            "state": "",
            "postcode": "",
            "city": "",
            "postcodes": [],
            "cities": [],
            "rate": f"{Decimal(str(rate)):.4f}",
            "name": name,
            "priority": 1,
            "compound": False,
            "shipping": shipping,
            "order": rate_id - 1,
            "class": tax_class,
        }
        self.tax_rates[rate_id] = document
        return document

    def _seed_catalog(self) -> None:
        self.add_product("Koffiemok Delfts Blauw", price="12.40", sku="MOK-DB-01")
        self.add_product("Katoenen schort Olijfgroen", price="34.95", sku="SCH-KAT-OLIJF")
        self.add_product("Kookboek Hollandse Pot", price="24.50", sku="BOEK-HP", tax_class="reduced-rate")
        self.add_variable_product(
            "Losse thee",
            attribute="Gewicht",
            options={"100 g": "6.49", "250 g": "13.95"},
            sku="THEE",
            tax_class="reduced-rate",
        )

    # ------------------------------------------------------------------ faults and request log

    def fail_next(
        self,
        route: str,
        *,
        status: int = 500,
        times: int = 1,
        kind: Literal["status", "timeout"] = "status",
    ) -> None:
        """Make the next `times` requests matching `route` fail.

        `route` is a template (`'GET /orders/{id}'`), a concrete request (`'GET /orders/1041'`)
        or `'*'`. `kind='timeout'` holds the request `fault_timeout_seconds` and then raises
        `httpx.ReadTimeout` — which an in-process `httpx.ASGITransport` client receives as is; a
        client over real HTTP should time out first (or sees the connection dropped).
        """
        self.faults.append(Fault(route=route, status=status, remaining=times, kind=kind))

    def calls(self, route: str) -> list[RecordedRequest]:
        """Requests that matched `route` (same forms as `fail_next`), oldest first."""
        return [request for request in self.requests if _route_matches(route, request)]

    def _take_fault(self, method: str, path: str, route: str | None) -> Fault | None:
        probe = RecordedRequest(method, path, route, "", 0)
        for fault in self.faults:
            if fault.remaining > 0 and _route_matches(fault.route, probe):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _random_alnum(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _route_matches(pattern: str, request: RecordedRequest) -> bool:
    if pattern == "*":
        return True
    return pattern in (request.route, f"{request.method} {request.path}")
