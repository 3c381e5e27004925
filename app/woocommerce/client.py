"""A typed async client for the shop's REST API (`/wp-json/wc/v3`).

How the consumer key and secret travel depends on the shop's address, because that is what
WooCommerce accepts:

- `https://` — Basic auth. WooCommerce only looks at Basic auth (or keys in the query string)
  when WordPress sees TLS (`is_ssl()`).
- `http://` (LocalWP, DDEV, a shop on the LAN) — OAuth 1.0a one-legged signatures (HMAC-SHA256)
  in the Authorization header, made by oauthlib. Over plain HTTP WooCommerce answers 401 to Basic
  auth and to keys in the query string; a signature proves the key without sending the secret.

Credentials never go into a URL. Lists go as comma-separated values (`status=a,b`): WordPress
reads those as arrays, and PHP's own `status[]` arrays would not match an OAuth signature.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from oauthlib import oauth1
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.constants import WOOCOMMERCE_API_PREFIX, WOOCOMMERCE_READ_DECIMALS
from app.redaction import safe_url
from app.retry import retry_at_from_header
from app.settings import Settings
from app.tls import client_tls_context
from app.woocommerce.errors import (
    AuthProblem,
    WooCommerceAuthError,
    WooCommerceError,
    WooCommerceNotFound,
    WooCommerceRejected,
    WooCommerceTransient,
)
from app.woocommerce.models import Order, OrderNote, PaymentGateway, Product, Refund, Webhook

Model = TypeVar("Model", bound=BaseModel)
Parsed = TypeVar("Parsed")
PER_PAGE = 100


class OAuth1Signature(httpx.Auth):
    """Signs each request the way WooCommerce checks over plain HTTP (`WC_REST_Authentication`).

    Only the method, the URL and its query are signed: OAuth 1.0a leaves JSON bodies out, and so
    does WooCommerce. Every request gets a fresh nonce and timestamp (WooCommerce refuses a nonce it
    has seen, and a timestamp more than 15 minutes off its own clock).
    """

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self._signer = oauth1.Client(
            consumer_key,
            client_secret=consumer_secret,
            signature_method=oauth1.SIGNATURE_HMAC_SHA256,
            signature_type=oauth1.SIGNATURE_TYPE_AUTH_HEADER,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _, headers, _ = self._signer.sign(str(request.url), http_method=request.method)
        request.headers["Authorization"] = headers["Authorization"]
        yield request


class OrderPage:
    def __init__(self, orders: list[Order], *, total: int, total_pages: int) -> None:
        self.orders = orders
        self.total = total
        self.total_pages = total_pages


class WooCommerceClient:
    def __init__(
        self,
        *,
        shop_url: str,
        consumer_key: str,
        consumer_secret: str,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.shop_url = shop_url.rstrip("/")
        https = self.shop_url.startswith("https://")
        self._http = httpx.AsyncClient(
            base_url=self.shop_url + WOOCOMMERCE_API_PREFIX,
            auth=(
                httpx.BasicAuth(consumer_key, consumer_secret)
                if https
                else OAuth1Signature(consumer_key, consumer_secret)
            ),
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "woobird (+https://github.com/woobird)", "Accept": "application/json"},
            follow_redirects=False,
            verify=client_tls_context(),
        )
        self.calls = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> WooCommerceClient:
        return cls(
            shop_url=settings.woocommerce_url,
            consumer_key=settings.woocommerce_consumer_key.get_secret_value(),
            consumer_secret=settings.woocommerce_consumer_secret.get_secret_value(),
            transport=transport,
        )

    async def __aenter__(self) -> WooCommerceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        params = kwargs.pop("params", {})
        self.calls += 1
        try:
            response = await self._http.request(method, path, params=params, **kwargs)
        except httpx.TimeoutException as exc:
            raise WooCommerceTransient(
                f"the shop did not answer in time ({type(exc).__name__})", method=method, path=path
            ) from exc
        except httpx.TransportError as exc:
            raise WooCommerceTransient(
                f"could not reach the shop ({type(exc).__name__}: {exc})", method=method, path=path
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise WooCommerceTransient(
                f"the shop answered {response.status_code}",
                method=method,
                path=path,
                status=response.status_code,
                retry_at=retry_at_from_header(response.headers.get("Retry-After"), now=time.time()),
            )
        if response.status_code >= 400:
            raise _rejection(response, method=method, path=path)
        if 300 <= response.status_code < 400:
            location = safe_url(response.headers.get("location", ""))
            raise WooCommerceRejected(
                f"the shop redirected to {location!r}: check WOOCOMMERCE_URL (https, www or not)",
                method=method,
                path=path,
                status=response.status_code,
            )
        return response

    async def _get_model(self, path: str, model: type[Model], **params: Any) -> Model:
        response = await self._request("GET", path, params=params)
        return _parse(model.model_validate, response, path=path)

    async def get_order(self, order_id: int) -> Order:
        return await self._get_model(f"/orders/{order_id}", Order, dp=WOOCOMMERCE_READ_DECIMALS)

    async def list_orders(
        self,
        *,
        modified_after: datetime | None = None,
        statuses: list[str] | None = None,
        page: int = 1,
        per_page: int = PER_PAGE,
        after: datetime | None = None,
        before: datetime | None = None,
        orderby: str = "modified",
    ) -> OrderPage:
        params: dict[str, Any] = {
            "page": page,
            "per_page": per_page,
            "orderby": orderby,
            "order": "asc",
            "dates_are_gmt": "true",
            "dp": WOOCOMMERCE_READ_DECIMALS,
        }
        if modified_after is not None:
            params["modified_after"] = _gmt(modified_after)
        if after is not None:
            params["after"] = _gmt(after)
        if before is not None:
            params["before"] = _gmt(before)
        if statuses:
            params["status"] = ",".join(statuses)
        response = await self._request("GET", "/orders", params=params)
        orders = _parse(TypeAdapter(list[Order]).validate_python, response, path="/orders")
        return OrderPage(
            orders,
            total=int(response.headers.get("x-wp-total", len(orders))),
            total_pages=int(response.headers.get("x-wp-totalpages", 1)),
        )

    async def iter_orders(self, **filters: Any) -> AsyncIterator[OrderPage]:
        """Every page of a listing, following X-WP-TotalPages."""
        page = 1
        while True:
            result = await self.list_orders(page=page, **filters)
            yield result
            if page >= result.total_pages or not result.orders:
                return
            page += 1

    async def get_refunds(self, order_id: int) -> list[Refund]:
        params = {"per_page": PER_PAGE, "dp": WOOCOMMERCE_READ_DECIMALS}
        response = await self._request("GET", f"/orders/{order_id}/refunds", params=params)
        return _parse(TypeAdapter(list[Refund]).validate_python, response, path=f"/orders/{order_id}/refunds")

    async def list_order_notes(self, order_id: int) -> list[OrderNote]:
        """Every note on the order, newest first (WooCommerce lists them unpaged)."""
        path = f"/orders/{order_id}/notes"
        response = await self._request("GET", path, params={"type": "internal"})
        return _parse(TypeAdapter(list[OrderNote]).validate_python, response, path=path)

    async def add_order_note(self, order_id: int, note: str) -> OrderNote:
        """A private note: shown in wp-admin, never e-mailed to the customer, and the order is not
        saved by it (so it is no change to the order that could come back as a delivery)."""
        path = f"/orders/{order_id}/notes"
        response = await self._request("POST", path, json={"note": note, "customer_note": False})
        return _parse(OrderNote.model_validate, response, path=path)

    async def mark_order_paid(self, order_id: int, *, status: str) -> Order:
        """Save the order in `status`, paid: what the owner does by hand when the money arrived.

        WooCommerce sets `date_paid` itself when the order moves into its payment-complete status;
        `date_paid` is read-only in the REST API, and `set_paid` acts only on orders still pending
        after the status was saved, so it would add nothing. The save is delivered back as
        order.updated.
        """
        path = f"/orders/{order_id}"
        body = {"status": status}
        response = await self._request("PUT", path, json=body, params={"dp": WOOCOMMERCE_READ_DECIMALS})
        return _parse(Order.model_validate, response, path=path)

    async def list_payment_gateways(self) -> list[PaymentGateway]:
        response = await self._request("GET", "/payment_gateways")
        return _parse(TypeAdapter(list[PaymentGateway]).validate_python, response, path="/payment_gateways")

    async def list_webhooks(self) -> list[Webhook]:
        response = await self._request("GET", "/webhooks", params={"per_page": PER_PAGE, "status": "all"})
        return _parse(TypeAdapter(list[Webhook]).validate_python, response, path="/webhooks")

    async def create_webhook(self, *, name: str, topic: str, delivery_url: str, secret: str) -> Webhook:
        body = {"name": name, "topic": topic, "delivery_url": delivery_url, "secret": secret}
        response = await self._request("POST", "/webhooks", json=body)
        return _parse(Webhook.model_validate, response, path="/webhooks")

    async def update_webhook(self, webhook_id: int, **changes: str) -> Webhook:
        response = await self._request("PUT", f"/webhooks/{webhook_id}", json=changes)
        return _parse(Webhook.model_validate, response, path=f"/webhooks/{webhook_id}")

    async def list_products(self, *, page: int = 1, per_page: int = PER_PAGE) -> tuple[list[Product], int]:
        response = await self._request("GET", "/products", params={"page": page, "per_page": per_page})
        products = _parse(TypeAdapter(list[Product]).validate_python, response, path="/products")
        return products, int(response.headers.get("x-wp-totalpages", 1))

    async def list_variations(self, product_id: int) -> list[Product]:
        path = f"/products/{product_id}/variations"
        response = await self._request("GET", path, params={"per_page": PER_PAGE})
        return _parse(TypeAdapter(list[Product]).validate_python, response, path=path)

    async def get_json(self, path: str, **params: Any) -> Any:
        """Any other read (system status, tax rates) as plain JSON, for `woobird check`."""
        return (await self._request("GET", path, params=params)).json()


def _gmt(moment: datetime) -> str:
    """WooCommerce compares `dates_are_gmt=true` filters with UTC wall-clock text."""
    if moment.tzinfo is None:
        raise ValueError("give WooCommerce date filters aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse(validate: Callable[[Any], Parsed], response: httpx.Response, *, path: str) -> Parsed:
    try:
        return validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise WooCommerceError(
            f"the shop's answer to GET {path} is not what WooCommerce sends ({type(exc).__name__})",
            method="GET",
            path=path,
            status=response.status_code,
        ) from exc


def auth_problem(*, status: int, code: str, message: str, https: bool) -> tuple[AuthProblem, str]:
    """Which of the ways WooCommerce refuses a key this is, and what fixes it.

    `WC_REST_Authentication` answers `woocommerce_rest_authentication_error` when it looked at a key
    and did not like it, with a message saying why; a route's own "Sorry, you cannot …" (401) means
    no key reached it at all.
    """
    if code == "woocommerce_rest_authentication_error" or code.startswith("woocommerce_rest_authentication"):
        if "Consumer key is invalid" in message:
            return "unknown_key", (
                "the shop has no such key: check WOOCOMMERCE_CONSUMER_KEY (ck_…, WooCommerce → Settings → "
                "Advanced → REST API)"
            )
        if "timestamp" in message:
            return (
                "clock",
                "this machine's clock and the shop's differ by more than 15 minutes: set both right",
            )
        if "permissions" in message:
            return "no_rights", "the key is read-only: give it Read/Write permissions in WooCommerce"
        where = (
            ""
            if https
            else " (over http:// the signature covers the address too: WOOCOMMERCE_URL must be the shop's "
            "own WordPress address, scheme, host and port)"
        )
        return (
            "wrong_secret",
            f"the key exists but the secret does not match: check WOOCOMMERCE_CONSUMER_SECRET{where}",
        )
    if status == 403:
        return (
            "no_rights",
            "the key's user may not do this: make the key for an administrator or shop manager",
        )
    if https:
        # Over HTTPS WooCommerce answers an unknown consumer key exactly as it answers no key at all.
        return "not_authenticated", (
            "the shop accepted no key: check WOOCOMMERCE_CONSUMER_KEY (ck_…), and that WordPress sees the "
            "request as HTTPS and gets its Authorization header (a proxy in front of it may drop either)"
        )
    return "not_authenticated", (
        "the shop saw no signature: the Authorization header must reach PHP (some proxies and web servers "
        "drop it)"
    )


def _rejection(response: httpx.Response, *, method: str, path: str) -> WooCommerceRejected:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    status = response.status_code
    https = response.request.url.scheme == "https"
    text = f"the shop answered {status} {code}: {message}".strip().rstrip(":")
    if status in (401, 403):
        problem, advice = auth_problem(status=status, code=code, message=message, https=https)
        return WooCommerceAuthError(
            f"{text} — {advice}", method=method, path=path, problem=problem, status=status, code=code
        )
    if status == 404:
        return WooCommerceNotFound(text, method=method, path=path, status=status, code=code)
    return WooCommerceRejected(text, method=method, path=path, status=status, code=code)
