"""The fake shop's REST API (`/wp-json/wc/v3`): routing, authentication, faults, the handlers and
paging, refusing what WooCommerce refuses with WooCommerce's own error bodies."""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.constants import WOOCOMMERCE_API_PREFIX
from app.sandbox.woocommerce.args import Args, Call, delivery_url_param, request_params, topic_param
from app.sandbox.woocommerce.auth import auth_routes
from app.sandbox.woocommerce.precision import DEFAULT_DP
from app.sandbox.woocommerce.rest_auth import AUTH_ERROR, OAuthVerifier, key_and_secret
from app.sandbox.woocommerce.shop import ShopSandbox
from app.sandbox.woocommerce.webhooks import WEBHOOK_STATUSES
from app.sandbox.woocommerce.wire import (
    ORDER_STATUSES,
    WP_VERSION,
    Fault,
    JsonDict,
    RecordedRequest,
    RestError,
    wc_dates,
    wp_json_encode,
)

# `status=any` is WooCommerce's default and leaves out what is not a real order yet or any more.
_HIDDEN_FROM_ANY = frozenset({"trash", "checkout-draft", "auto-draft"})

Handler = Callable[[Call], Awaitable[Response]]


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
    rest = Route(WOOCOMMERCE_API_PREFIX + "/{rest:path}", api.dispatch, methods=methods)
    return Starlette(routes=[rest, *auth_routes(shop)])


class _RestApi:
    def __init__(self, shop: ShopSandbox) -> None:
        self.shop = shop
        self.oauth = OAuthVerifier()
        self.routes = [
            self._route("GET", "/orders", "list", self.list_orders),
            self._route("GET", "/orders/{id}", "read", self.get_order),
            self._route("POST PUT PATCH", "/orders/{id}", "edit", self.update_order),
            self._route("GET", "/orders/{id}/refunds", "list", self.list_refunds),
            self._route("GET", "/orders/{id}/refunds/{rid}", "read", self.get_refund),
            self._route("GET", "/orders/{id}/notes", "list", self.list_notes),
            self._route("POST", "/orders/{id}/notes", "create", self.create_note),
            self._route("GET", "/payment_gateways", "list", self.list_payment_gateways),
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
            await self._authenticate(request, route.action)
            pairs = parse_qsl(request.url.query, keep_blank_values=True)
            call = Call(request, ids, await request_params(request, pairs), pairs)
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

    def _key(self, key: str | None) -> tuple[str, str] | None:
        """The secret and permissions of a consumer key the shop knows: its own, or one an app
        authorization (`auth`) issued."""
        if key is None:
            return None
        if key in self.shop.issued_keys:
            return self.shop.issued_keys[key]
        if hmac.compare_digest(key.encode(), self.shop.consumer_key.encode()):
            return self.shop.consumer_secret, self.shop.key_permissions
        return None

    async def _authenticate(self, request: Request, action: str) -> None:
        """`WC_REST_Authentication` (see `rest_auth.py`): keys over TLS, else an OAuth 1.0a signature."""
        key, secret = key_and_secret(request)
        known = self._key(key)
        if known is not None and secret is not None:
            if not hmac.compare_digest(secret.encode(), known[0].encode()):
                raise RestError(401, AUTH_ERROR, "Consumer secret is invalid.")
        else:
            # An unknown key over TLS is ignored, not refused: WooCommerce goes on to look for OAuth.
            form: dict[str, str] = {}
            if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                body = (await request.body()).decode("utf-8", "replace")
                form = dict(parse_qsl(body, keep_blank_values=True))
            params = self.oauth.parameters(request, form)
            known = self._key(params.get("oauth_consumer_key"))
            signed = self.oauth.verify(
                request, params=params, home_url=self.shop.url, consumer_secret=known[0] if known else None
            )
            if not signed or known is None:
                code, message = _FORBIDDEN[action]
                raise RestError(401, code, message)
        permissions = known[1]
        writes = request.method not in ("GET", "HEAD")
        allowed = {"read": not writes, "write": writes, "read_write": True}[permissions]
        if not allowed:
            kind = "write" if writes else "read"
            message = f"The API key provided does not have {kind} permissions."
            raise RestError(401, AUTH_ERROR, message)

    # ------------------------------------------------------------------ orders

    async def list_orders(self, call: Call) -> Response:
        args = Args(call)
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
        dp = _dp(args)
        views = [self.shop.order_view(order["id"], dp=dp) for order in found]
        return self._page(call, views, page=page, per_page=per_page, offset=offset)

    async def get_order(self, call: Call) -> Response:
        return _json(self.shop.order_view(self._order_id(call), dp=_dp(Args(call))))

    async def update_order(self, call: Call) -> Response:
        """What woobird sends: `status` (refused outside the shop's statuses, as the REST server's
        schema check does, before anything is saved). `set_paid` is validated and, as in WooCommerce,
        only completes the payment of an order still needing one after the status was saved;
        `date_paid` is read-only in the schema and ignored. Any other field is refused here: the fake
        does not pretend to save what it does not model."""
        order_id = self._order_id(call)
        args = Args(call)
        status = args.enum("status", ORDER_STATUSES, None)
        set_paid = args.boolean("set_paid", default=False)
        ignored = {"id", "date_paid", "date_paid_gmt", "dp", "consumer_key", "consumer_secret"}
        unmodelled = sorted(
            key for key in set(call.params) - ignored - {"status", "set_paid"} if not key.startswith("oauth_")
        )
        if unmodelled:
            raise RestError(
                501, "woobird_fake_unmodelled", f"the fake shop does not save {', '.join(unmodelled)}"
            )
        order = self.shop.save_order_through_rest(order_id, status=status)
        if set_paid and order["needs_payment"]:
            order = self.shop.pay_order(order_id)
        return _json(self.shop.order_view(order_id, dp=_dp(args)))

    async def list_payment_gateways(self, call: Call) -> Response:
        return _json([dict(gateway) for gateway in self.shop.payment_gateways])

    async def list_refunds(self, call: Call) -> Response:
        order_id = self._order_id(call, code="woocommerce_rest_invalid_order_id", message="Invalid order ID.")
        args = Args(call)
        page, per_page = args.paging()
        refunds = sorted(self.shop.refunds.get(order_id, []), key=lambda refund: refund["id"], reverse=True)
        views = [self.shop.refund_view(order_id, refund, dp=_dp(args)) for refund in refunds]
        return self._page(call, views, page=page, per_page=per_page)

    async def get_refund(self, call: Call) -> Response:
        order_id = self._order_id(call, code="woocommerce_rest_invalid_order_id", message="Invalid order ID.")
        for refund in self.shop.refunds.get(order_id, []):
            if refund["id"] == call.id("rid"):
                return _json(self.shop.refund_view(order_id, refund, dp=_dp(Args(call))))
        raise RestError(404, "woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.")

    async def list_notes(self, call: Call) -> Response:
        order_id = self._order_id(call, message="Invalid order ID.")
        kind = Args(call).enum("type", ("any", "customer", "internal"), "any")
        notes = [
            note
            for note in self.shop.notes.get(order_id, [])
            if kind == "any" or note["customer_note"] == (kind == "customer")
        ]
        # get_comments(): newest first, unpaged.
        return _json(sorted(notes, key=lambda note: (note["date_created_gmt"], note["id"]), reverse=True))

    async def create_note(self, call: Call) -> Response:
        if "note" not in call.params:
            # The REST server checks required arguments before the controller runs.
            raise RestError(400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"])
        if call.params.get("id"):
            raise RestError(400, "woocommerce_rest_shop_order_exists", "Cannot create existing shop_order.")
        order_id = self._order_id(call, code="woocommerce_rest_order_invalid_id", message="Invalid order ID.")
        note = call.params["note"]
        if not isinstance(note, str):
            raise RestError(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): note",
                params={"note": "note is not of type string."},
            )
        customer_note = Args(call).boolean("customer_note", default=False)
        stored = self.shop.add_note(order_id, note, customer_note=customer_note)
        response = _json(stored, status=201)
        response.headers["Location"] = self.shop._api_url(f"/orders/{order_id}/notes/{stored['id']}")
        return response

    def _order_id(
        self,
        call: Call,
        *,
        code: str = "woocommerce_rest_shop_order_invalid_id",
        message: str = "Invalid ID.",
    ) -> int:
        order_id = call.id()
        if order_id not in self.shop.orders:
            raise RestError(404, code, message)
        return order_id

    # ------------------------------------------------------------------ webhooks

    async def list_webhooks(self, call: Call) -> Response:
        args = Args(call)
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

    async def get_webhook(self, call: Call) -> Response:
        return _json(self.shop.webhook_view(self._webhook(call)))

    async def create_webhook(self, call: Call) -> Response:
        if call.params.get("id"):
            raise RestError(
                400, "woocommerce_rest_shop_webhook_exists", "Cannot create existing shop_webhook."
            )
        topic = topic_param(call.params.get("topic"))
        delivery_url = delivery_url_param(call.params.get("delivery_url"))
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

    async def update_webhook(self, call: Call) -> Response:
        webhook = self._webhook(call)
        params = call.params
        changes: JsonDict = {}
        if "topic" in params:
            changes["topic"] = topic_param(params["topic"])
        if "delivery_url" in params:
            changes["delivery_url"] = delivery_url_param(params["delivery_url"])
        if "status" in params:
            changes["status"] = Args(call).enum("status", WEBHOOK_STATUSES, "active")
        changes |= {key: str(params[key]) for key in ("secret", "name") if params.get(key)}
        url_changed = changes.get("delivery_url", webhook["delivery_url"]) != webhook["delivery_url"]
        webhook.update(changes)
        webhook["date_modified"], webhook["date_modified_gmt"] = wc_dates(self.shop.clock.now())
        await self.shop._after_save(webhook, url_changed=url_changed, client=None)
        return _json(self.shop.webhook_view(webhook))

    async def delete_webhook(self, call: Call) -> Response:
        webhook = self._webhook(call)
        if not Args(call).boolean("force", default=False):
            raise RestError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        view = self.shop.webhook_view(webhook)
        del self.shop.webhooks[webhook["id"]]
        return _json(view)

    def _webhook(self, call: Call) -> JsonDict:
        webhook = self.shop.webhooks.get(call.id())
        if webhook is None:
            raise RestError(404, "woocommerce_rest_shop_webhook_invalid_id", "Invalid ID.")
        return webhook

    # ------------------------------------------------------------------ products, taxes, status

    async def list_products(self, call: Call) -> Response:
        args = Args(call)
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

    async def get_product(self, call: Call) -> Response:
        return _json(self._product_view(self._product(call)))

    async def list_variations(self, call: Call) -> Response:
        product = self._product(call)
        args = Args(call)
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

    def _product(self, call: Call) -> JsonDict:
        product = self.shop.products.get(call.id())
        if product is None:
            raise RestError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return product

    def _product_view(self, product: Mapping[str, Any]) -> JsonDict:
        base = self.shop._api_url("/products")
        return dict(product) | {
            "_links": {"self": [{"href": f"{base}/{product['id']}"}], "collection": [{"href": base}]}
        }

    async def list_taxes(self, call: Call) -> Response:
        args = Args(call)
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

    async def system_status(self, call: Call) -> Response:
        shop = self.shop
        home = shop.url.rstrip("/")
        return _json(
            {
                "environment": {
                    "home_url": home,
                    "site_url": home,
                    "version": shop.woocommerce_version,
                    "wp_version": WP_VERSION,
                    "wp_multisite": False,
                    "language": "nl_NL",
                    "default_timezone": "UTC",
                },
                "database": {"wc_database_version": shop.woocommerce_version},
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

    async def list_settings(self, call: Call) -> Response:
        return _json(list(self._settings_group(call.ids["group"]).values()))

    async def get_setting(self, call: Call) -> Response:
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
        self, call: Call, items: list[JsonDict], *, page: int, per_page: int, offset: int | None = None
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


def _dp(args: Args) -> int:
    """`?dp=`: decimals of money on the wire (WooCommerce's default is the shop's 2)."""
    return int(args.integer("dp", default=DEFAULT_DP, minimum=0))


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
