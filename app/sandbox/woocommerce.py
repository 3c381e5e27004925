"""A fake WooCommerce shop: the REST v3 API and the webhook sender, faithful where woobird can tell.

Used three ways: tests drive `ShopSandbox` directly, the sandbox demo serves `create_app(shop)` over
real HTTP to the real web and worker processes, and the chaos suite pushes hundreds of orders
through it. A fake that accepts anything proves nothing, so this one refuses what WooCommerce
refuses (bad credentials, `per_page=500`, unknown ids, invalid topics) with WooCommerce's own error
bodies, and sends webhooks the way `WC_Webhook::deliver()` does — compact `wp_json_encode` bytes,
base64 HMAC-SHA256 signature, failure counting that disables a webhook on its 7th consecutive
failure, unsigned `webhook_id=N` pings that only count when answered with exactly 200.

Deliberate simplifications (WooCommerce behaviour that woobird does not depend on):
- the shop acts as if it runs on HTTPS: Basic auth and query-string keys are accepted on any
  scheme; OAuth 1.0a is not implemented;
- the order totals are whatever the caller puts in the document: checkout arithmetic lives in
  `app.sandbox.checkout`, never here;
- refund lines are pro-rata (line total x refunded quantity / quantity, rounded half-up to cents),
  as the admin screen pre-fills them; stock meta is not touched.

Time comes from a simulated clock (`now()`, `advance()`), so tests can move days in a line, and
an order's `date_modified` always moves forward even when it is saved twice in one second.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import math
import re
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.constants import WOOCOMMERCE_API_PREFIX

JsonDict = dict[str, Any]

WC_VERSION = "9.8.5"
WP_VERSION = "6.8.1"
SHOP_TIMEZONE = ZoneInfo("Europe/Amsterdam")
DEFAULT_SHOP_URL = "http://shop.sandbox.test"

# `woocommerce_max_webhook_delivery_failures`; the check is "count > max", hence the 7th failure.
MAX_DELIVERY_FAILURES = 5
DELIVERY_TIMEOUT_SECONDS = 60.0  # WC_Webhook::deliver uses MINUTE_IN_SECONDS
PING_TIMEOUT_SECONDS = 5.0  # wp_safe_remote_post's WordPress default

ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
    "trash",
)
# `status=any` is WooCommerce's default and leaves out what is not a real order yet or any more.
_HIDDEN_FROM_ANY = frozenset({"trash", "checkout-draft", "auto-draft"})
_EDITABLE_STATUSES = frozenset({"pending", "on-hold", "auto-draft", "checkout-draft"})
WEBHOOK_STATUSES = ("active", "paused", "disabled")
_WEBHOOK_RESOURCES = ("coupon", "customer", "order", "product")
_WEBHOOK_EVENTS = ("created", "updated", "deleted", "restored")
_BLOCKED_ACTION_HOOKS = frozenset(
    {
        "action.woocommerce_login_credentials",
        "action.woocommerce_product_csv_importer_check_import_file_path",
        "action.woocommerce_webhook_should_deliver",
    }
)
_ORDER_TOPIC_HOOKS: Mapping[str, list[str]] = {
    "order.created": ["woocommerce_new_order"],
    "order.updated": [
        "woocommerce_update_order",
        "woocommerce_order_refunded",
        "woocommerce_delete_order_refund",
    ],
    "order.deleted": ["wp_trash_post", "woocommerce_trash_order"],
    "order.restored": ["untrashed_post", "woocommerce_untrash_order"],
}
# wp_generate_password(50, true, true): letters, digits, special and "extra special" characters.
_WC_SECRET_ALPHABET = string.ascii_letters + string.digits + "!@#$%^&*()" + "-_ []{}<>~`+=,.;:/?|"
_CENT = Decimal("0.01")
_DATE_ARG = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")


# --------------------------------------------------------------------------------------------- wire


def wp_json_encode(value: Any) -> bytes:
    """Serialise like PHP's `wp_json_encode` with default flags: compact, `\\/`, `\\uXXXX`."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    # Outside strings JSON has no "/", so escaping the whole text only touches string content.
    return text.replace("/", "\\/").encode("ascii")


def sign(body: bytes, secret: str) -> str:
    """The `X-WC-Webhook-Signature` of `body`: base64 of the raw HMAC-SHA256 digest keyed by `secret`.

    Test vector (asserted in the tests, usable by anyone checking a verifier):
        secret    = "woobird-test-secret"
        body      = b'{"id":1041,"status":"completed","total":"36.00"}'
        signature = "212urU2mMSwyG1Yhuzwv1lZJXNDQCqJkDiRwlBGx8Qg="
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _signing_key(secret: str) -> str:
    """WooCommerce signs with `wp_specialchars_decode($secret, ENT_QUOTES)`: these entities only."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'")):
        secret = secret.replace(entity, char)
    return secret.replace("&amp;", "&")


def wc_dates(moment: datetime) -> tuple[str, str]:
    """A moment as WooCommerce's (site-local, GMT) pair of offset-less second-resolution strings."""
    local = moment.astimezone(SHOP_TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S")
    gmt = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return local, gmt


def money(value: Decimal | str | int) -> str:
    """A WooCommerce 2-decimal money string (half-up, like `number_format`), never `-0.00`."""
    amount = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    return f"{amount:.2f}" if amount else "0.00"


def _parse_gmt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


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


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # relative to /wp-json/wc/v3
    route: str | None  # e.g. "GET /orders/{id}"; None when no route matched
    query: str
    status: int


@dataclass
class Fault:
    route: str
    status: int
    remaining: int
    kind: Literal["status", "timeout"]


@dataclass(frozen=True)
class Delivery:
    """One webhook request the shop sent: a delivery or (`ping=True`) a ping."""

    webhook_id: int
    topic: str
    delivery_url: str
    body: bytes
    status: int | None  # None: transport error (timeout, refused, …)
    error: str | None
    ping: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


class RestError(Exception):
    """A WP_Error as the REST server renders it: `{"code", "message", "data": {"status", …}}`."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> JsonDict:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}


def _invalid_param(name: str, message: str, detail_code: str = "rest_invalid_param") -> RestError:
    return RestError(
        400,
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        params={name: message},
        details={name: {"code": detail_code, "message": message, "data": None}},
    )


# --------------------------------------------------------------------------------------------- shop


class ShopSandbox:
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
    ) -> None:
        self.url = url
        self.consumer_key = consumer_key or f"ck_{secrets.token_hex(20)}"
        self.consumer_secret = consumer_secret or f"cs_{secrets.token_hex(20)}"
        self.key_permissions = key_permissions
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

        self.orders: dict[int, JsonDict] = {}
        self.refunds: dict[int, list[JsonDict]] = {}
        self.webhooks: dict[int, JsonDict] = {}
        self.products: dict[int, JsonDict] = {}
        self.variations: dict[int, list[JsonDict]] = {}
        self.tax_rates: dict[int, JsonDict] = {}
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        self.faults: list[Fault] = []

        self._next_post_id = 1001  # orders, refunds and products share WordPress's post ids
        self._next_item_id = 1
        self._next_meta_id = 1
        self._next_webhook_id = 1
        self._delivery_salt = secrets.token_bytes(16)

        self.add_tax_rate(rate="21", name="BTW", tax_class="standard")
        self.add_tax_rate(rate="9", name="BTW verlaagd", tax_class="reduced-rate", shipping=False)
        if seed_catalog:
            self._seed_catalog()

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

    # ------------------------------------------------------------------ orders

    def add_order(self, order: Mapping[str, Any]) -> JsonDict:
        """Store an order as the shop would return it; missing fields get WooCommerce's defaults.

        `id`/`number` are assigned when absent, `date_created` is kept when given (imported
        history) and otherwise now, `date_modified` is always now: the shop just saved it.
        Totals are taken as given — build them with `app.sandbox.checkout`.
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
            _set_date(document, "date_created", moment)
        _set_date(document, "date_modified", moment)
        _refresh_derived(document)
        document["_links"] = self._order_links(document)
        self.orders[document["id"]] = document
        self.refunds.setdefault(document["id"], [])
        return document

    def update_order(self, order_id: int, **changes: Any) -> JsonDict:
        """Save changes the way the shop does: status side effects, then a strictly later modified date.

        A `status` change sets `date_paid`/`date_completed` as WooCommerce does (see
        `_apply_status`); explicit `date_*` changes (datetime or None) win over those. Decimal
        values for top-level money fields are formatted as money strings.
        """
        order = self._order(order_id)
        moment = self.clock.later_than(_parse_gmt(order.get("date_modified_gmt")))
        new_status = changes.pop("status", None)
        if new_status is not None and new_status != order["status"]:
            _apply_status(order, new_status, at=moment)
        for key, value in changes.items():
            _set_field(order, key, value)
        _set_date(order, "date_modified", moment)
        _refresh_derived(order)
        return order

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

    def _order(self, order_id: int) -> JsonDict:
        try:
            return self.orders[order_id]
        except KeyError:
            raise KeyError(f"no order {order_id} in the sandbox shop") from None

    def _order_skeleton(self) -> JsonDict:
        blank_address = dict.fromkeys(
            ("first_name", "last_name", "company", "address_1", "address_2", "city", "state", "postcode"), ""
        )
        return {
            "id": 0,
            "parent_id": 0,
            "status": "pending",
            "currency": self.currency,
            "version": WC_VERSION,
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
            _fill_line_item(item)

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

    def order_view(self, order_id: int) -> JsonDict:
        """The order exactly as `GET /orders/{id}` (and an order webhook) shows it right now."""
        order = dict(self._order(order_id))
        order["_links"] = self._order_links(order)
        return order

    def _api_url(self, path: str) -> str:
        return f"{self.url.rstrip('/')}{WOOCOMMERCE_API_PREFIX}{path}"

    # ------------------------------------------------------------------ refunds

    def add_refund(
        self,
        order_id: int,
        *,
        amount: Decimal | str | None,
        reason: str = "",
        line_items: Mapping[int, int] | Sequence[Mapping[str, Any]] | None = None,
        shipping: bool = False,
        refunded_payment: bool = True,
    ) -> JsonDict:
        """`wc_create_refund`: a refund resource, the order's `refunds[]` entry and a new modified date.

        `line_items` is either `{order_item_id: quantity}` (pro-rata amounts) or the REST form
        `[{"id", "quantity", "refund_total", "refund_tax": [{"id", "refund_total"}]}]`.
        `shipping=True` refunds every shipping line in full. `amount=None` means the sum of the
        refunded lines. The order's own amounts never change; a refund that leaves nothing to refund
        sets the status to `refunded`. Raises ValueError for amounts WooCommerce refuses.
        """
        order = self._order(order_id)
        items = [self._refund_item(order, spec) for spec in _refund_specs(line_items)]
        ship = [self._refund_shipping(line) for line in order["shipping_lines"]] if shipping else []
        lines_total = sum((_line_gross(line) for line in items + ship), Decimal(0))
        refund_amount = -lines_total if amount is None else Decimal(str(amount))
        remaining = self._remaining_refundable(order)
        if refund_amount <= 0 or refund_amount > remaining:
            raise ValueError(f"Invalid refund amount {refund_amount} (refundable: {remaining})")

        moment = self.clock.later_than(_parse_gmt(order.get("date_modified_gmt")))
        refund = self._refund_document(
            order, amount=refund_amount, reason=reason, items=items, ship=ship, moment=moment
        )
        refund["refunded_payment"] = refunded_payment
        self.refunds.setdefault(order_id, []).append(refund)
        order["refunds"] = [{"id": refund["id"], "reason": reason, "total": money(-refund_amount)}] + list(
            order["refunds"]
        )
        if refund_amount == remaining:
            _apply_status(order, "refunded", at=moment)
        _set_date(order, "date_modified", moment)
        _refresh_derived(order)
        return refund

    def delete_refund(self, order_id: int, refund_id: int) -> None:
        """Remove a refund; the order's status is left as it is (WooCommerce does not revert it)."""
        order = self._order(order_id)
        kept = [refund for refund in self.refunds.get(order_id, []) if refund["id"] != refund_id]
        if len(kept) == len(self.refunds.get(order_id, [])):
            raise KeyError(f"no refund {refund_id} on order {order_id}")
        self.refunds[order_id] = kept
        order["refunds"] = [entry for entry in order["refunds"] if entry["id"] != refund_id]
        moment = self.clock.later_than(_parse_gmt(order.get("date_modified_gmt")))
        _set_date(order, "date_modified", moment)

    def refund_view(self, order_id: int, refund: Mapping[str, Any]) -> JsonDict:
        base = self._api_url(f"/orders/{order_id}/refunds")
        return dict(refund) | {
            "_links": {
                "self": [{"href": f"{base}/{refund['id']}", "targetHints": {"allow": ["GET", "DELETE"]}}],
                "collection": [{"href": base}],
                "up": [{"href": self._api_url(f"/orders/{order_id}")}],
            }
        }

    def _remaining_refundable(self, order: Mapping[str, Any]) -> Decimal:
        refunded = sum(
            (Decimal(refund["amount"]) for refund in self.refunds.get(order["id"], [])), Decimal(0)
        )
        return Decimal(order["total"]) - refunded

    def _refund_item(self, order: Mapping[str, Any], spec: Mapping[str, Any]) -> JsonDict:
        original = next((line for line in order["line_items"] if line["id"] == int(spec["id"])), None)
        if original is None:
            raise ValueError(f"order {order['id']} has no line item {spec['id']}")
        ordered = Decimal(str(original["quantity"]))
        quantity = Decimal(str(spec.get("quantity", original["quantity"])))
        if not 0 <= quantity <= ordered:
            raise ValueError(f"cannot refund {quantity} of line {original['id']} (ordered: {ordered})")
        share = quantity / ordered if ordered else Decimal(0)
        total = _explicit_or(spec.get("refund_total"), Decimal(original["total"]) * share)
        explicit_taxes = {int(tax["id"]): tax["refund_total"] for tax in spec.get("refund_tax", [])}
        taxes = {
            int(tax["id"]): _explicit_or(explicit_taxes.get(int(tax["id"])), _raw(tax["total"]) * share)
            for tax in original.get("taxes", [])
        }
        tax_total = sum(taxes.values(), Decimal(0))
        return {
            "id": self._item_id(),
            "name": original["name"],
            "product_id": original.get("product_id", 0),
            "variation_id": original.get("variation_id", 0),
            "quantity": -int(quantity),
            "tax_class": original.get("tax_class", ""),
            "subtotal": money(-total),
            "subtotal_tax": money(-tax_total),
            "total": money(-total),
            "total_tax": money(-tax_total),
            "taxes": [{"id": rate, "total": money(-t), "subtotal": money(-t)} for rate, t in taxes.items()],
            "meta_data": [self._meta("_refunded_item_id", str(original["id"]))],
            "sku": original.get("sku", ""),
            "price": _php_price(-total, -int(quantity)),
            "image": original.get("image", {"id": 0, "src": ""}),
            "parent_name": original.get("parent_name"),
        }

    def _refund_shipping(self, original: Mapping[str, Any]) -> JsonDict:
        return {
            "id": self._item_id(),
            "method_title": original.get("method_title", ""),
            "method_id": original.get("method_id", ""),
            "instance_id": original.get("instance_id", ""),
            "total": money(-Decimal(original["total"])),
            "total_tax": money(-Decimal(original.get("total_tax", "0"))),
            "taxes": [
                {"id": tax["id"], "total": money(-_raw(tax["total"])), "subtotal": ""}
                for tax in original.get("taxes", [])
            ],
            "meta_data": [self._meta("_refunded_item_id", str(original["id"]))],
        }

    def _refund_document(
        self,
        order: Mapping[str, Any],
        *,
        amount: Decimal,
        reason: str,
        items: list[JsonDict],
        ship: list[JsonDict],
        moment: datetime,
    ) -> JsonDict:
        local, gmt = wc_dates(moment)
        return {
            "id": self._post_id(),
            "date_created": local,
            "date_created_gmt": gmt,
            "amount": money(amount),
            "reason": reason,
            "refunded_by": 1,
            "refunded_payment": True,
            "meta_data": [],
            "line_items": items,
            "shipping_lines": ship,
            "tax_lines": self._refund_tax_lines(order, items, ship),
            "fee_lines": [],
        }

    def _refund_tax_lines(
        self, order: Mapping[str, Any], items: list[JsonDict], ship: list[JsonDict]
    ) -> list[JsonDict]:
        item_tax = _taxes_by_rate(items)
        ship_tax = _taxes_by_rate(ship)
        lines = []
        for tax_line in order["tax_lines"]:
            rate = tax_line["rate_id"]
            if rate not in item_tax and rate not in ship_tax:
                continue
            lines.append(
                {
                    "id": self._item_id(),
                    "rate_code": tax_line["rate_code"],
                    "rate_id": rate,
                    "label": tax_line["label"],
                    "compound": tax_line.get("compound", False),
                    "tax_total": money(item_tax.get(rate, 0)),
                    "shipping_tax_total": money(ship_tax.get(rate, 0)),
                    "rate_percent": tax_line.get("rate_percent"),
                    "meta_data": [],
                }
            )
        return lines

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

    # ------------------------------------------------------------------ webhooks

    def add_webhook(
        self,
        *,
        delivery_url: str,
        topic: str = "order.updated",
        secret: str | None = None,
        name: str | None = None,
        pending_delivery: bool = False,
    ) -> JsonDict:
        """Store an active webhook directly (no ping). REST `POST /webhooks` goes through here too."""
        if not valid_topic(topic):
            raise ValueError(f"invalid webhook topic {topic!r}")
        moment = self.clock.now()
        local, gmt = wc_dates(moment)
        webhook_id = self._next_webhook_id
        self._next_webhook_id += 1
        webhook: JsonDict = {
            "id": webhook_id,
            "name": name or f"Webhook created on {moment.astimezone(SHOP_TIMEZONE):%b %d, %Y @ %I:%M %p}",
            "status": "active",
            "topic": topic,
            "delivery_url": delivery_url,
            "secret": secret if secret is not None else _random_secret(),
            "api_version": 3,
            "failure_count": 0,
            "pending_delivery": pending_delivery,
            "user_id": 1,
            "date_created": local,
            "date_created_gmt": gmt,
            "date_modified": local,
            "date_modified_gmt": gmt,
        }
        self.webhooks[webhook_id] = webhook
        return webhook

    def disable_webhook(self, webhook_id: int) -> JsonDict:
        """What the shop does after too many failures (the failure count is kept)."""
        webhook = self.webhooks[webhook_id]
        webhook["status"] = "disabled"
        return webhook

    def webhook_view(self, webhook: Mapping[str, Any]) -> JsonDict:
        """The REST representation: everything but the secret and the internal counters."""
        topic = webhook["topic"]
        resource, _, event = topic.partition(".")
        base = self._api_url("/webhooks")
        return {
            "id": webhook["id"],
            "name": webhook["name"],
            "status": webhook["status"],
            "topic": topic,
            "resource": resource,
            "event": event,
            "hooks": _topic_hooks(topic),
            "delivery_url": webhook["delivery_url"],
            "date_created": webhook["date_created"],
            "date_created_gmt": webhook["date_created_gmt"],
            "date_modified": webhook["date_modified"],
            "date_modified_gmt": webhook["date_modified_gmt"],
            "_links": {"self": [{"href": f"{base}/{webhook['id']}"}], "collection": [{"href": base}]},
        }

    def webhook_body(self, order_id: int, topic: str = "order.updated") -> bytes:
        """The exact bytes WooCommerce would POST for `topic` about this order, built now."""
        resource, _, event = topic.partition(".")
        if resource == "action":
            payload: Any = {"action": event, "arg": order_id}
        elif event == "deleted":
            payload = {"id": order_id}
        else:
            payload = self.order_view(order_id)
        return wp_json_encode(payload)

    def delivery_headers(
        self, webhook: Mapping[str, Any], body: bytes, topic: str = "order.updated"
    ) -> dict[str, str]:
        # For `action.<hook>` topics this yields resource "action" and the hook as event, as WooCommerce does.
        resource, _, event = topic.partition(".")
        return {
            "User-Agent": self.user_agent,
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": self.url.rstrip("/") + "/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": sign(body, _signing_key(webhook["secret"])),
            "X-WC-Webhook-ID": str(webhook["id"]),
            "X-WC-Webhook-Delivery-ID": self._delivery_id(webhook["id"]),
        }

    @property
    def user_agent(self) -> str:
        return f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"

    def _delivery_id(self, webhook_id: int) -> str:
        # wp_hash(id . time()): same webhook in the same second → same id, as in WooCommerce.
        stamp = f"{webhook_id}{int(self.clock.now().timestamp())}".encode()
        return hmac.new(self._delivery_salt, stamp, hashlib.md5).hexdigest()

    async def deliver(
        self, order_id: int, *, client: httpx.AsyncClient | None = None, topic: str = "order.updated"
    ) -> int | None:
        """POST the order to every active webhook on `topic`; returns the last response status.

        None when no webhook was active for the topic or the last attempt failed in transport.
        Each attempt is appended to `deliveries` and counted like `WC_Webhook::deliver()`.
        """
        self._order(order_id)
        status: int | None = None
        for webhook in list(self.webhooks.values()):
            if webhook["status"] == "active" and webhook["topic"] == topic:
                status = await self._deliver_one(webhook, order_id, topic=topic, client=client)
        return status

    async def _deliver_one(
        self, webhook: JsonDict, order_id: int, *, topic: str, client: httpx.AsyncClient | None
    ) -> int | None:
        body = self.webhook_body(order_id, topic)
        headers = self.delivery_headers(webhook, body, topic)
        status, error = None, None
        async with self._client(client) as http:
            try:
                response = await http.post(
                    webhook["delivery_url"],
                    content=body,
                    headers=headers,
                    timeout=DELIVERY_TIMEOUT_SECONDS,
                    follow_redirects=False,
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(
            Delivery(webhook["id"], topic, webhook["delivery_url"], body, status, error, headers=headers)
        )
        self._count_delivery(webhook, succeeded=status is not None and 200 <= status <= 302)
        await self._after_save(webhook, url_changed=False, client=client)
        return status

    def _count_delivery(self, webhook: JsonDict, *, succeeded: bool) -> None:
        if succeeded:
            webhook["failure_count"] = 0
        elif webhook["failure_count"] > MAX_DELIVERY_FAILURES:
            webhook["status"] = "disabled"
        else:
            webhook["failure_count"] += 1

    async def ping(self, webhook_id: int, *, client: httpx.AsyncClient | None = None) -> bool:
        """`WC_Webhook::deliver_ping()`: unsigned `webhook_id=N`; only exactly 200 counts as success."""
        webhook = self.webhooks[webhook_id]
        body = f"webhook_id={webhook_id}".encode()
        headers = {"User-Agent": self.user_agent, "Content-Type": "application/x-www-form-urlencoded"}
        status, error = None, None
        async with self._client(client) as http:
            try:
                response = await http.post(
                    webhook["delivery_url"],
                    content=body,
                    headers=headers,
                    timeout=PING_TIMEOUT_SECONDS,
                    follow_redirects=True,
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(
            Delivery(
                webhook_id, webhook["topic"], webhook["delivery_url"], body, status, error, True, headers
            )
        )
        if status == 200:
            webhook["pending_delivery"] = False
        return status == 200

    async def _after_save(
        self, webhook: JsonDict, *, url_changed: bool, client: httpx.AsyncClient | None
    ) -> None:
        """The webhook data store pings on save while active and (new URL or never pinged OK)."""
        if not self.ping_on_create or webhook["status"] != "active":
            return
        if url_changed or webhook.get("pending_delivery"):
            await self.ping(webhook["id"], client=client)

    @asynccontextmanager
    async def _client(self, client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
        chosen = client or self.http_client
        if chosen is not None:
            yield chosen
            return
        async with httpx.AsyncClient() as temporary:
            yield temporary

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


# --------------------------------------------------------------------------------------------- order helpers


def _set_date(document: JsonDict, name: str, moment: datetime | None) -> None:
    if moment is None:
        document[name] = document[f"{name}_gmt"] = None
        return
    document[name], document[f"{name}_gmt"] = wc_dates(moment)


_DATE_FIELDS = frozenset({"date_created", "date_modified", "date_paid", "date_completed"})
_MONEY_FIELDS = frozenset(
    {"discount_total", "discount_tax", "shipping_total", "shipping_tax", "cart_tax", "total", "total_tax"}
)


def _set_field(order: JsonDict, key: str, value: Any) -> None:
    if key in _DATE_FIELDS and (value is None or isinstance(value, datetime)):
        _set_date(order, key, value)
    elif key in _MONEY_FIELDS and isinstance(value, Decimal):
        order[key] = money(value)
    else:
        order[key] = value


def _apply_status(order: JsonDict, status: str, *, at: datetime) -> None:
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
        _set_date(order, "date_paid", at)
    if status == "completed":
        _set_date(order, "date_completed", at)


def _refresh_derived(order: JsonDict) -> None:
    order["is_editable"] = order["status"] in _EDITABLE_STATUSES
    order["needs_payment"] = order["status"] in ("pending", "failed") and Decimal(order["total"]) > 0


def _fill_line_item(item: JsonDict) -> None:
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
    item.setdefault("price", _php_price(Decimal(item["total"]), int(item["quantity"])))
    item.setdefault("image", {"id": 0, "src": ""})
    item.setdefault("parent_name", None)


def _php_price(total: Decimal, quantity: int) -> int | float:
    """`price` is PHP's float division of the stored total by the quantity, e.g. 26.85/3 → 8.950000000000001.

    A JSON number on the wire, computed the way PHP computes it; it is display data, not money
    woobird adds up.
    """
    if not quantity:
        return 0
    value = float(total) / quantity
    return int(value) if value.is_integer() else value


def _raw(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _explicit_or(explicit: Any, pro_rata: Decimal) -> Decimal:
    value = Decimal(str(explicit)) if explicit not in (None, "") else pro_rata
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _refund_specs(
    line_items: Mapping[int, int] | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    if line_items is None:
        return []
    if isinstance(line_items, Mapping):
        return [{"id": item_id, "quantity": quantity} for item_id, quantity in line_items.items()]
    return list(line_items)


def _line_gross(line: Mapping[str, Any]) -> Decimal:
    return Decimal(line["total"]) + Decimal(line["total_tax"])


def _taxes_by_rate(lines: Iterable[Mapping[str, Any]]) -> dict[int, Decimal]:
    totals: dict[int, Decimal] = {}
    for line in lines:
        for tax in line.get("taxes", []):
            totals[tax["id"]] = totals.get(tax["id"], Decimal(0)) + _raw(tax["total"])
    return totals


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _random_alnum(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _random_secret() -> str:
    return "".join(secrets.choice(_WC_SECRET_ALPHABET) for _ in range(50))


def valid_topic(topic: str) -> bool:
    """`wc_is_webhook_valid_topic`: resource.event, product.published, or an allowed action hook."""
    if topic.startswith("action."):
        hook = topic.removeprefix("action.")
        allowed = hook.startswith(("woocommerce_", "wc_"))
        return allowed and topic not in _BLOCKED_ACTION_HOOKS
    resource, _, event = topic.partition(".")
    if topic == "product.published":
        return True
    return resource in _WEBHOOK_RESOURCES and event in _WEBHOOK_EVENTS


def _topic_hooks(topic: str) -> list[str]:
    if topic.startswith("action."):
        return [topic.removeprefix("action.")]
    if topic in _ORDER_TOPIC_HOOKS:
        return list(_ORDER_TOPIC_HOOKS[topic])
    resource, _, event = topic.partition(".")
    return [f"woocommerce_{event}_{resource}"]


def _route_matches(pattern: str, request: RecordedRequest) -> bool:
    if pattern == "*":
        return True
    return pattern in (request.route, f"{request.method} {request.path}")


# --------------------------------------------------------------------------------------------- REST app

Handler = Callable[["_Call"], Awaitable[Response]]


@dataclass
class _Call:
    """One REST request: path ids, merged query/body parameters and the raw query pairs."""

    request: Request
    ids: dict[str, str]
    params: dict[str, Any]
    pairs: list[tuple[str, str]]

    def id(self, name: str = "id") -> int:
        return int(self.ids[name])


@dataclass(frozen=True)
class _Route:
    methods: frozenset[str]
    template: str
    pattern: re.Pattern[str]
    action: Literal["list", "read", "create", "edit", "delete"]
    handler: Handler


_FORBIDDEN = {
    "list": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "read": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "create": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
    "edit": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
    "delete": ("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource."),
}


def create_app(shop: ShopSandbox) -> ASGIApp:
    """The shop's `/wp-json/wc/v3` API as an ASGI app (serve it, or wrap it in `httpx.ASGITransport`)."""
    api = _RestApi(shop)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route(WOOCOMMERCE_API_PREFIX + "/{rest:path}", api.dispatch, methods=methods)])


class _RestApi:
    def __init__(self, shop: ShopSandbox) -> None:
        self.shop = shop
        self.routes = [
            self._route("GET", "/orders", "list", self.list_orders),
            self._route("GET", "/orders/{id}", "read", self.get_order),
            self._route("GET", "/orders/{id}/refunds", "list", self.list_refunds),
            self._route("GET", "/orders/{id}/refunds/{rid}", "read", self.get_refund),
            self._route("GET", "/webhooks", "list", self.list_webhooks),
            self._route("POST", "/webhooks", "create", self.create_webhook),
            self._route("GET", "/webhooks/{id}", "read", self.get_webhook),
            self._route("POST PUT PATCH", "/webhooks/{id}", "edit", self.update_webhook),
            self._route("DELETE", "/webhooks/{id}", "delete", self.delete_webhook),
            self._route("GET", "/products", "list", self.list_products),
            self._route("GET", "/products/{id}", "read", self.get_product),
            self._route("GET", "/products/{id}/variations", "list", self.list_variations),
            self._route("GET", "/taxes", "list", self.list_taxes),
            self._route("GET", "/system_status", "read", self.system_status),
            self._route("GET", "/settings/{group}", "list", self.list_settings),
            self._route("GET", "/settings/{group}/{setting}", "read", self.get_setting),
        ]

    @staticmethod
    def _route(methods: str, template: str, action: Any, handler: Handler) -> _Route:
        regex = re.sub(r"\{(id|rid)\}", r"(?P<\1>\\d+)", template)
        regex = re.sub(r"\{(group|setting)\}", r"(?P<\1>[\\w-]+)", regex)
        return _Route(frozenset(methods.split()), template, re.compile(f"^{regex}/?$"), action, handler)

    # ------------------------------------------------------------------ dispatch

    async def dispatch(self, request: Request) -> Response:
        path = "/" + str(request.path_params["rest"]).strip("/")
        method = request.method
        route, ids = self._match(method, path)
        template = f"{method} {route.template}" if route else None
        response = await self._respond(request, route, ids, template=template, path=path)
        self.shop.requests.append(
            RecordedRequest(method, path, template, request.url.query, response.status_code)
        )
        return response

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and method in route.methods:
                return route, found.groupdict()
        return None, {}

    async def _respond(
        self, request: Request, route: _Route | None, ids: dict[str, str], *, template: str | None, path: str
    ) -> Response:
        fault = self.shop._take_fault(request.method, path, template)
        if fault is not None:
            return await self._fault(request, fault, template=template, path=path)
        try:
            if route is None:
                raise RestError(
                    404, "rest_no_route", "No route was found matching the URL and request method."
                )
            self._authenticate(request, route.action)
            pairs = parse_qsl(request.url.query, keep_blank_values=True)
            call = _Call(request, ids, await _params(request, pairs), pairs)
            return await route.handler(call)
        except RestError as error:
            return _json(error.body(), status=error.status)

    async def _fault(self, request: Request, fault: Fault, *, template: str | None, path: str) -> Response:
        if fault.kind == "status":
            return _fault_response(fault.status)
        if await _hold(request, self.shop.fault_timeout_seconds):
            # The client gave up, which was the point; nobody reads this answer.
            return Response(status_code=499)
        self.shop.requests.append(RecordedRequest(request.method, path, template, request.url.query, 0))
        raise httpx.ReadTimeout(f"sandbox shop: simulated timeout on {request.method} {path}")

    def _authenticate(self, request: Request, action: str) -> None:
        """`WC_REST_Authentication` for an HTTPS site: query-string keys win over Basic auth."""
        key = request.query_params.get("consumer_key")
        secret = request.query_params.get("consumer_secret")
        if key is None or secret is None:
            key, secret = _basic_credentials(request.headers.get("authorization", ""))
        if key is None or secret is None:
            code, message = _FORBIDDEN[action]
            raise RestError(401, code, message)
        if not hmac.compare_digest(key.encode(), self.shop.consumer_key.encode()):
            raise RestError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(secret.encode(), self.shop.consumer_secret.encode()):
            raise RestError(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        writes = request.method not in ("GET", "HEAD")
        allowed = {"read": not writes, "write": writes, "read_write": True}[self.shop.key_permissions]
        if not allowed:
            kind = "write" if writes else "read"
            message = f"The API key provided does not have {kind} permissions."
            raise RestError(401, "woocommerce_rest_authentication_error", message)

    # ------------------------------------------------------------------ orders

    async def list_orders(self, call: _Call) -> Response:
        args = _Args(call)
        page, per_page = args.paging()
        statuses = args.enum_list("status", ("any", *ORDER_STATUSES)) or ["any"]
        include = args.int_list("include")
        exclude = args.int_list("exclude")
        gmt = args.boolean("dates_are_gmt", default=False)
        windows = {
            name: args.date(name, gmt=gmt)
            for name in ("after", "before", "modified_after", "modified_before")
        }
        orderby = args.enum("orderby", ("date", "id", "include", "title", "slug", "modified"), "date")
        descending = args.enum("order", ("asc", "desc"), "desc") == "desc"
        customer = args.integer("customer", default=None, minimum=0)
        offset = args.integer("offset", default=None, minimum=0)

        def wanted(order: JsonDict) -> bool:
            if not _status_wanted(order["status"], statuses):
                return False
            if (include and order["id"] not in include) or order["id"] in exclude:
                return False
            if customer is not None and order["customer_id"] != customer:
                return False
            return _in_windows(order, windows, gmt=gmt)

        found = [order for order in self.shop.orders.values() if wanted(order)]
        found.sort(key=_order_sort_key(orderby, include), reverse=descending and orderby != "include")
        views = [self.shop.order_view(order["id"]) for order in found]
        return self._page(call, views, page=page, per_page=per_page, offset=offset)

    async def get_order(self, call: _Call) -> Response:
        return _json(self.shop.order_view(self._order_id(call)))

    async def list_refunds(self, call: _Call) -> Response:
        order_id = self._order_id(call, code="woocommerce_rest_invalid_order_id", message="Invalid order ID.")
        args = _Args(call)
        page, per_page = args.paging()
        refunds = sorted(self.shop.refunds.get(order_id, []), key=lambda refund: refund["id"], reverse=True)
        views = [self.shop.refund_view(order_id, refund) for refund in refunds]
        return self._page(call, views, page=page, per_page=per_page)

    async def get_refund(self, call: _Call) -> Response:
        order_id = self._order_id(call, code="woocommerce_rest_invalid_order_id", message="Invalid order ID.")
        for refund in self.shop.refunds.get(order_id, []):
            if refund["id"] == call.id("rid"):
                return _json(self.shop.refund_view(order_id, refund))
        raise RestError(404, "woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.")

    def _order_id(
        self,
        call: _Call,
        *,
        code: str = "woocommerce_rest_shop_order_invalid_id",
        message: str = "Invalid ID.",
    ) -> int:
        order_id = call.id()
        if order_id not in self.shop.orders:
            raise RestError(404, code, message)
        return order_id

    # ------------------------------------------------------------------ webhooks

    async def list_webhooks(self, call: _Call) -> Response:
        args = _Args(call)
        page, per_page = args.paging()
        status = args.enum("status", ("all", *WEBHOOK_STATUSES), "all")
        orderby = args.enum("orderby", ("date", "id", "title"), "date")
        descending = args.enum("order", ("asc", "desc"), "desc") == "desc"
        include = args.int_list("include")
        hooks = [
            hook
            for hook in self.shop.webhooks.values()
            if status in ("all", hook["status"]) and (not include or hook["id"] in include)
        ]
        sort_keys = {
            "date": lambda hook: (hook["date_created_gmt"], hook["id"]),
            "id": lambda hook: (hook["id"],),
            "title": lambda hook: (hook["name"], hook["id"]),
        }
        hooks.sort(key=sort_keys[orderby], reverse=descending)
        views = [self.shop.webhook_view(hook) for hook in hooks]
        return self._page(call, views, page=page, per_page=per_page)

    async def get_webhook(self, call: _Call) -> Response:
        return _json(self.shop.webhook_view(self._webhook(call)))

    async def create_webhook(self, call: _Call) -> Response:
        if call.params.get("id"):
            raise RestError(
                400, "woocommerce_rest_shop_webhook_exists", "Cannot create existing shop_webhook."
            )
        topic = _valid_topic_param(call.params.get("topic"))
        delivery_url = _valid_url_param(call.params.get("delivery_url"))
        secret = call.params.get("secret") or None
        name = call.params.get("name") or None
        # `status` is accepted and ignored: a new webhook is always active.
        webhook = self.shop.add_webhook(
            delivery_url=delivery_url, topic=topic, secret=secret, name=name, pending_delivery=True
        )
        await self.shop._after_save(webhook, url_changed=True, client=None)
        response = _json(self.shop.webhook_view(webhook), status=201)
        response.headers["Location"] = self.shop._api_url(f"/webhooks/{webhook['id']}")
        return response

    async def update_webhook(self, call: _Call) -> Response:
        webhook = self._webhook(call)
        params = call.params
        changes: JsonDict = {}
        if "topic" in params:
            changes["topic"] = _valid_topic_param(params["topic"])
        if "delivery_url" in params:
            changes["delivery_url"] = _valid_url_param(params["delivery_url"])
        if "status" in params:
            changes["status"] = _Args(call).enum("status", WEBHOOK_STATUSES, "active")
        changes |= {key: str(params[key]) for key in ("secret", "name") if params.get(key)}
        url_changed = changes.get("delivery_url", webhook["delivery_url"]) != webhook["delivery_url"]
        webhook.update(changes)
        webhook["date_modified"], webhook["date_modified_gmt"] = wc_dates(self.shop.clock.now())
        await self.shop._after_save(webhook, url_changed=url_changed, client=None)
        return _json(self.shop.webhook_view(webhook))

    async def delete_webhook(self, call: _Call) -> Response:
        webhook = self._webhook(call)
        if not _Args(call).boolean("force", default=False):
            raise RestError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        view = self.shop.webhook_view(webhook)
        del self.shop.webhooks[webhook["id"]]
        return _json(view)

    def _webhook(self, call: _Call) -> JsonDict:
        webhook = self.shop.webhooks.get(call.id())
        if webhook is None:
            raise RestError(404, "woocommerce_rest_shop_webhook_invalid_id", "Invalid ID.")
        return webhook

    # ------------------------------------------------------------------ products, taxes, status

    async def list_products(self, call: _Call) -> Response:
        args = _Args(call)
        page, per_page = args.paging()
        kind = args.enum("type", ("simple", "grouped", "external", "variable"), None)
        skus = set(args.str_list("sku"))
        products = [
            product
            for product in self.shop.products.values()
            if (kind is None or product["type"] == kind) and (not skus or product["sku"] in skus)
        ]
        descending = args.enum("order", ("asc", "desc"), "desc") == "desc"
        products.sort(key=lambda product: (product["date_created_gmt"], product["id"]), reverse=descending)
        views = [self._product_view(product) for product in products]
        return self._page(call, views, page=page, per_page=per_page)

    async def get_product(self, call: _Call) -> Response:
        return _json(self._product_view(self._product(call)))

    async def list_variations(self, call: _Call) -> Response:
        product = self._product(call)
        args = _Args(call)
        page, per_page = args.paging()
        base = self.shop._api_url(f"/products/{product['id']}/variations")
        views = [
            variation
            | {
                "_links": {
                    "self": [{"href": f"{base}/{variation['id']}"}],
                    "collection": [{"href": base}],
                    "up": [{"href": self.shop._api_url(f"/products/{product['id']}")}],
                }
            }
            for variation in sorted(self.shop.variations.get(product["id"], []), key=lambda v: v["id"])
        ]
        return self._page(call, views, page=page, per_page=per_page)

    def _product(self, call: _Call) -> JsonDict:
        product = self.shop.products.get(call.id())
        if product is None:
            raise RestError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return product

    def _product_view(self, product: Mapping[str, Any]) -> JsonDict:
        base = self.shop._api_url("/products")
        return dict(product) | {
            "_links": {"self": [{"href": f"{base}/{product['id']}"}], "collection": [{"href": base}]}
        }

    async def list_taxes(self, call: _Call) -> Response:
        args = _Args(call)
        page, per_page = args.paging()
        tax_class = call.params.get("class")
        rates = [rate for rate in self.shop.tax_rates.values() if tax_class in (None, "", rate["class"])]
        rates.sort(key=lambda rate: (rate["order"], rate["id"]))
        base = self.shop._api_url("/taxes")
        views = [
            rate | {"_links": {"self": [{"href": f"{base}/{rate['id']}"}], "collection": [{"href": base}]}}
            for rate in rates
        ]
        return self._page(call, views, page=page, per_page=per_page)

    async def system_status(self, call: _Call) -> Response:
        shop = self.shop
        home = shop.url.rstrip("/")
        return _json(
            {
                "environment": {
                    "home_url": home,
                    "site_url": home,
                    "version": WC_VERSION,
                    "wp_version": WP_VERSION,
                    "wp_multisite": False,
                    "language": "nl_NL",
                    "default_timezone": "UTC",
                },
                "database": {"wc_database_version": WC_VERSION},
                "active_plugins": [],
                "settings": {
                    "api_enabled": True,
                    "force_ssl": False,
                    "currency": shop.currency,
                    "currency_symbol": "&euro;" if shop.currency == "EUR" else shop.currency,
                    "currency_position": "left_space",
                    "thousand_separator": ".",
                    "decimal_separator": ",",
                    "number_of_decimals": 2,
                    "geolocation_enabled": False,
                },
                "security": {"secure_connection": home.startswith("https://"), "hide_errors": True},
                "pages": [],
            }
        )

    async def list_settings(self, call: _Call) -> Response:
        return _json(list(self._settings_group(call.ids["group"]).values()))

    async def get_setting(self, call: _Call) -> Response:
        setting = self._settings_group(call.ids["group"]).get(call.ids["setting"])
        if setting is None:
            raise RestError(404, "rest_setting_setting_invalid", "Invalid setting.")
        return _json(setting)

    def _settings_group(self, group: str) -> dict[str, JsonDict]:
        shop = self.shop
        yes_no = {True: "yes", False: "no"}
        values: dict[str, dict[str, tuple[str, str]]] = {
            "general": {
                "woocommerce_default_country": ("Default country / state", "NL"),
                "woocommerce_currency": ("Currency", shop.currency),
                "woocommerce_calc_taxes": ("Enable taxes", "yes"),
                "woocommerce_price_num_decimals": ("Number of decimals", "2"),
            },
            "tax": {
                "woocommerce_prices_include_tax": (
                    "Prices entered with tax",
                    yes_no[shop.prices_include_tax],
                ),
                "woocommerce_tax_based_on": ("Calculate tax based on", "shipping"),
                "woocommerce_shipping_tax_class": ("Shipping tax class", "inherit"),
                "woocommerce_tax_round_at_subtotal": ("Rounding", yes_no[shop.tax_round_at_subtotal]),
            },
        }
        if group not in values:
            raise RestError(404, "rest_setting_setting_group_invalid", "Invalid setting group.")
        base = shop._api_url(f"/settings/{group}")
        return {
            key: {
                "id": key,
                "label": label,
                "description": "",
                "type": "select",
                "default": "",
                "value": value,
                "_links": {"self": [{"href": f"{base}/{key}"}], "collection": [{"href": base}]},
            }
            for key, (label, value) in values[group].items()
        }

    # ------------------------------------------------------------------ paging

    def _page(
        self, call: _Call, items: list[JsonDict], *, page: int, per_page: int, offset: int | None = None
    ) -> Response:
        total = len(items)
        start = offset if offset is not None else (page - 1) * per_page
        pages = math.ceil(total / per_page) if total else 0
        response = _json(items[start : start + per_page])
        response.headers["X-WP-Total"] = str(total)
        response.headers["X-WP-TotalPages"] = str(pages)
        base = self.shop._api_url(call.request.url.path.removeprefix(WOOCOMMERCE_API_PREFIX))
        kept = [(key, value) for key, value in call.pairs if key != "page"]
        if page > 1:
            previous = min(page - 1, pages) if pages else 1
            response.headers.append("Link", f'<{base}?{urlencode([*kept, ("page", previous)])}>; rel="prev"')
        if page < pages:
            response.headers.append("Link", f'<{base}?{urlencode([*kept, ("page", page + 1)])}>; rel="next"')
        return response


# --------------------------------------------------------------------------------------------- REST helpers


class _Args:
    """WP REST argument validation for the query parameters this shop understands."""

    def __init__(self, call: _Call) -> None:
        self.params = call.params
        self.pairs = call.pairs

    def raw_list(self, name: str) -> list[str] | None:
        """`name`, `name[]` and `name[N]` values, each split on commas like `wp_parse_list`."""
        values = [value for key, value in self.pairs if key == name or re.fullmatch(rf"{name}\[\d*\]", key)]
        if not values and isinstance(self.params.get(name), list):
            values = [str(value) for value in self.params[name]]
        elif not values and name in self.params:
            values = [str(self.params[name])]
        if not values:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]

    def str_list(self, name: str) -> list[str]:
        return self.raw_list(name) or []

    def int_list(self, name: str) -> list[int]:
        values = self.raw_list(name) or []
        for index, value in enumerate(values):
            if not value.isdigit():
                raise _invalid_param(name, f"{name}[{index}] is not of type integer.", "rest_invalid_type")
        return [int(value) for value in values]

    def enum_list(self, name: str, allowed: Sequence[str]) -> list[str]:
        values = self.raw_list(name) or []
        for index, value in enumerate(values):
            if value not in allowed:
                message = f"{name}[{index}] is not one of {', '.join(allowed)}."
                raise _invalid_param(name, message, "rest_not_in_enum")
        return values

    def enum(self, name: str, allowed: Sequence[str], default: Any) -> Any:
        value = self.params.get(name)
        if value is None:
            return default
        if value not in allowed:
            raise _invalid_param(name, f"{name} is not one of {', '.join(allowed)}.", "rest_not_in_enum")
        return value

    def integer(self, name: str, *, default: Any, minimum: int, maximum: int | None = None) -> Any:
        value = self.params.get(name)
        if value is None:
            return default
        if not re.fullmatch(r"-?\d+", str(value)):
            raise _invalid_param(name, f"{name} is not of type integer.", "rest_invalid_type")
        number = int(value)
        if maximum is not None and not minimum <= number <= maximum:
            message = f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)"
            raise _invalid_param(name, message, "rest_out_of_bounds")
        if number < minimum:
            message = f"{name} must be greater than or equal to {minimum}"
            raise _invalid_param(name, message, "rest_out_of_bounds")
        return number

    def paging(self) -> tuple[int, int]:
        return (
            self.integer("page", default=1, minimum=1),
            self.integer("per_page", default=10, minimum=1, maximum=100),
        )

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        text = str(value).lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no", ""):
            return False
        raise _invalid_param(name, f"{name} is not of type boolean.", "rest_invalid_type")

    def date(self, name: str, *, gmt: bool) -> datetime | None:
        """A naive datetime in the column's frame: GMT with `dates_are_gmt`, else the shop's local time."""
        value = self.params.get(name)
        if value is None:
            return None
        text = str(value)
        if not _DATE_ARG.match(text):
            raise _invalid_param(name, "Invalid date.", "rest_invalid_date")
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC if gmt else SHOP_TIMEZONE).replace(tzinfo=None)
        return parsed


def _status_wanted(status: str, wanted: Sequence[str]) -> bool:
    if status in wanted:
        return True
    return "any" in wanted and status not in _HIDDEN_FROM_ANY


def _in_windows(order: Mapping[str, Any], windows: Mapping[str, datetime | None], *, gmt: bool) -> bool:
    """WordPress date queries are exclusive at both ends."""
    suffix = "_gmt" if gmt else ""
    created = datetime.fromisoformat(order[f"date_created{suffix}"])
    modified = datetime.fromisoformat(order[f"date_modified{suffix}"])
    lower = (windows["after"], created), (windows["modified_after"], modified)
    upper = (windows["before"], created), (windows["modified_before"], modified)
    return all(limit is None or value > limit for limit, value in lower) and all(
        limit is None or value < limit for limit, value in upper
    )


def _order_sort_key(orderby: str, include: Sequence[int]) -> Callable[[JsonDict], tuple[Any, ...]]:
    if orderby == "modified":
        return lambda order: (order["date_modified_gmt"], order["id"])
    if orderby == "id":
        return lambda order: (order["id"],)
    if orderby == "include":
        return lambda order: (include.index(order["id"]) if order["id"] in include else len(include),)
    return lambda order: (order["date_created_gmt"], order["id"])


def _valid_topic_param(value: Any) -> str:
    topic = str(value or "").lower()
    if not topic or not valid_topic(topic):
        raise RestError(
            400, "woocommerce_rest_shop_webhook_invalid_topic", "Webhook topic is required and must be valid."
        )
    return topic


def _valid_url_param(value: Any) -> str:
    url = str(value or "")
    if not re.match(r"^https?://[^\s/]+", url):
        message = "Webhook delivery URL must be a valid URL starting with http:// or https://."
        raise RestError(400, "woocommerce_rest_shop_webhook_invalid_delivery_url", message)
    return url


async def _params(request: Request, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query, then form or JSON body parameters, later sources winning — as WP_REST_Request merges them."""
    params: dict[str, Any] = dict(pairs)
    if request.method in ("GET", "HEAD", "DELETE"):
        return params
    raw = await request.body()
    if not raw:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if isinstance(decoded, dict):
            params.update(decoded)
    else:
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        return None, None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else (None, None)


def _json(body: Any, *, status: int = 200) -> Response:
    return Response(wp_json_encode(body), status_code=status, media_type="application/json; charset=UTF-8")


def _fault_response(status: int) -> Response:
    """What a broken shop or its proxy answers: WordPress's JSON for 500, a proxy's HTML for 502–504."""
    if status == 500:
        body = {
            "code": "internal_server_error",
            "message": "<p>There has been a critical error on this website.</p>",
            "data": {"status": 500},
            "additional_errors": [],
        }
        return _json(body, status=500)
    if status in (502, 503, 504):
        html = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        return Response(html, status_code=status, media_type="text/html")
    return _json(
        {"code": "sandbox_fault", "message": "Injected fault.", "data": {"status": status}}, status=status
    )


async def _hold(request: Request, seconds: float) -> bool:
    """Keep a request hanging until `seconds` pass; True if the client disconnected first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return False
