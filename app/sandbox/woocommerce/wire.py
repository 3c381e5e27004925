"""What every part of the fake shop shares: WooCommerce's constants, its wire formats (JSON bytes,
signatures, dates, money) and the records the shop keeps of requests and deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

JsonDict = dict[str, Any]

# What the fake imitates by default (`ShopSandbox(woocommerce_version=…)` picks another).
WC_VERSION = "10.0.2"
WP_VERSION = "6.8.3"
SHOP_TIMEZONE = ZoneInfo("Europe/Amsterdam")
DEFAULT_SHOP_URL = "https://shop.sandbox.test"

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

CENT = Decimal("0.01")

# --------------------------------------------------------------------------------------------- wire


def currency_symbol(currency: str) -> str:
    """The order's `currency_symbol`, as `get_woocommerce_currency_symbol` gives it."""
    return {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency)


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


def wc_dates(moment: datetime) -> tuple[str, str]:
    """A moment as WooCommerce's (site-local, GMT) pair of offset-less second-resolution strings."""
    local = moment.astimezone(SHOP_TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S")
    gmt = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return local, gmt


def raw_decimal(value: Decimal) -> str:
    """`wc_format_decimal` of a stored amount: up to 6 decimals, trailing zeros trimmed (`-5.2`, `0`)."""
    text = f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def money(value: Decimal | str | int) -> str:
    """A WooCommerce 2-decimal money string (half-up, like `number_format`), never `-0.00`."""
    amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{amount:.2f}" if amount else "0.00"


def parse_gmt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


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
