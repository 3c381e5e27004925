"""The state every part of the fake shop reads and writes, and how the shop fills in and changes an
order document: defaults of a line item, status transitions, dates.

`ShopState` declares the records and counters (`ShopSandbox.__init__` sets them) and the helpers
that the order, refund and webhook code all use; each concept adds its methods in its own module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx

from app.constants import WOOCOMMERCE_API_PREFIX
from app.sandbox.woocommerce.precision import DEFAULT_DP, with_precision
from app.sandbox.woocommerce.wire import (
    ORDER_STATUSES,
    Delivery,
    Fault,
    JsonDict,
    RecordedRequest,
    money,
    wc_dates,
)

_EDITABLE_STATUSES = frozenset({"pending", "on-hold", "auto-draft", "checkout-draft"})

# --------------------------------------------------------------------------------------------- clock


class SimulatedClock:
    """Wall time (or a fixed start) plus whatever tests have advanced it by; whole seconds only."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start.astimezone(UTC) if start else None
        self._offset = timedelta()

    def now(self) -> datetime:
        base = self._start if self._start is not None else datetime.now(UTC)
        return (base + self._offset).replace(microsecond=0)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the shop clock only moves forward")
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def later_than(self, previous: datetime | None) -> datetime:
        """Now, or — if `previous` is not yet in the past — one second after it, moving the clock there."""
        moment = self.now()
        if previous is not None and moment <= previous:
            self.advance((previous - moment).total_seconds() + 1)
            moment = self.now()
        return moment


class ShopState:
    """The records and switches of one fake shop, and the helpers its parts share."""

    url: str
    woocommerce_version: str
    consumer_key: str
    consumer_secret: str
    key_permissions: Literal["read", "write", "read_write"]
    currency: str
    prices_include_tax: bool
    tax_round_at_subtotal: bool
    ping_on_create: bool
    http_client: httpx.AsyncClient | None
    fault_timeout_seconds: float
    clock: SimulatedClock

    orders: dict[int, JsonDict]
    refunds: dict[int, list[JsonDict]]
    # Order notes are WordPress comments: their ids are the comments', not the posts'.
    notes: dict[int, list[JsonDict]]
    webhooks: dict[int, JsonDict]
    products: dict[int, JsonDict]
    variations: dict[int, list[JsonDict]]
    tax_rates: dict[int, JsonDict]
    requests: list[RecordedRequest]
    deliveries: list[Delivery]
    faults: list[Fault]
    # The order.updated deliveries a save through the REST API queued (WooCommerce sends them from
    # Action Scheduler, after the answer): the order ids, oldest first, until `deliver_saved` sends them.
    saved_orders: list[int]
    # GET /payment_gateways: every gateway the shop has, enabled or not.
    payment_gateways: list[JsonDict]

    _next_post_id: int
    _next_item_id: int
    _next_meta_id: int
    _next_webhook_id: int
    _next_comment_id: int
    _delivery_salt: bytes

    # ------------------------------------------------------------------ clock

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    # ------------------------------------------------------------------ ids

    def _post_id(self, wanted: Any = None) -> int:
        if wanted:
            self._next_post_id = max(self._next_post_id, int(wanted) + 1)
            return int(wanted)
        self._next_post_id += 1
        return self._next_post_id - 1

    def _item_id(self, wanted: Any = None) -> int:
        if wanted:
            self._next_item_id = max(self._next_item_id, int(wanted) + 1)
            return int(wanted)
        self._next_item_id += 1
        return self._next_item_id - 1

    def _meta(self, key: str, value: Any, *, display: bool = True) -> JsonDict:
        self._next_meta_id += 1
        entry: JsonDict = {"id": self._next_meta_id - 1, "key": key, "value": value}
        if display:
            entry |= {"display_key": key, "display_value": value}
        return entry

    def _order(self, order_id: int) -> JsonDict:
        try:
            return self.orders[order_id]
        except KeyError:
            raise KeyError(f"no order {order_id} in the sandbox shop") from None

    def _order_links(self, order: Mapping[str, Any]) -> JsonDict:
        base = self._api_url("/orders")
        links: JsonDict = {
            "self": [
                {
                    "href": f"{base}/{order['id']}",
                    "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                }
            ],
            "collection": [{"href": base}],
        }
        if order.get("customer_id"):
            links["customer"] = [{"href": self._api_url(f"/customers/{order['customer_id']}")}]
        if order.get("parent_id"):
            links["up"] = [{"href": f"{base}/{order['parent_id']}"}]
        return links

    def order_view(self, order_id: int, *, dp: int = DEFAULT_DP) -> JsonDict:
        """The order exactly as `GET /orders/{id}?dp=…` (and an order webhook) shows it right now."""
        order = with_precision(self._order(order_id), version=self.woocommerce_version, dp=dp)
        order["_links"] = self._order_links(order)
        return order

    def _api_url(self, path: str) -> str:
        return f"{self.url.rstrip('/')}{WOOCOMMERCE_API_PREFIX}{path}"


# ------------------------------------------------------------------------------------ order documents


def set_date(document: JsonDict, name: str, moment: datetime | None) -> None:
    if moment is None:
        document[name] = document[f"{name}_gmt"] = None
        return
    document[name], document[f"{name}_gmt"] = wc_dates(moment)


_DATE_FIELDS = frozenset({"date_created", "date_modified", "date_paid", "date_completed"})
_MONEY_FIELDS = frozenset(
    {"discount_total", "discount_tax", "shipping_total", "shipping_tax", "cart_tax", "total", "total_tax"}
)


def set_field(order: JsonDict, key: str, value: Any) -> None:
    if key in _DATE_FIELDS and (value is None or isinstance(value, datetime)):
        set_date(order, key, value)
    elif key in _MONEY_FIELDS and isinstance(value, Decimal):
        order[key] = money(value)
    else:
        order[key] = value


def apply_status(order: JsonDict, status: str, *, at: datetime) -> None:
    """`WC_Order::status_transition`: `date_paid` once, `date_completed` on every completion.

    The payment-complete status is `processing`, or `completed` for cash on delivery (whose
    gateway filters it so), and for orders that need no processing.
    """
    if status not in ORDER_STATUSES:
        raise ValueError(f"unknown order status {status!r}")
    order["status"] = status
    cod_like = order.get("payment_method") == "cod" or not order.get("needs_processing", True)
    paid_status = "completed" if cod_like else "processing"
    reaches_paid = status == paid_status or (status == "completed" and paid_status == "processing")
    if reaches_paid and not order.get("date_paid_gmt"):
        set_date(order, "date_paid", at)
    if status == "completed":
        set_date(order, "date_completed", at)


def refresh_derived(order: JsonDict) -> None:
    order["is_editable"] = order["status"] in _EDITABLE_STATUSES
    order["needs_payment"] = order["status"] in ("pending", "failed") and Decimal(order["total"]) > 0


def fill_line_item(item: JsonDict) -> None:
    item.setdefault("product_id", 0)
    item.setdefault("variation_id", 0)
    item.setdefault("quantity", 1)
    item.setdefault("tax_class", "")
    item.setdefault("subtotal", item.get("total", "0.00"))
    item.setdefault("subtotal_tax", item.get("total_tax", "0.00"))
    item.setdefault("total", item["subtotal"])
    item.setdefault("total_tax", item["subtotal_tax"])
    item.setdefault("taxes", [])
    item.setdefault("sku", "")
    item.setdefault("price", php_price(Decimal(item["total"]), int(item["quantity"])))
    item.setdefault("image", {"id": "", "src": ""})  # no image: an empty string, not 0
    item.setdefault("parent_name", None)


def php_price(total: Decimal, quantity: int) -> int | float:
    """`price` is PHP's float division of the stored total by the quantity, e.g. 26.85/3 → 8.950000000000001.

    A JSON number on the wire, computed the way PHP computes it; it is display data, not money
    woobird adds up.
    """
    if not quantity:
        return 0
    value = float(total) / quantity
    return int(value) if value.is_integer() else value
