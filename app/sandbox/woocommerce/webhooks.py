"""Webhooks in the fake shop: the registry, and delivery the way `WC_Webhook::deliver()` does it.

Compact `wp_json_encode` bytes, a base64 HMAC-SHA256 signature, failure counting that disables a
webhook on its 7th consecutive failure, unsigned `webhook_id=N` pings that only count when
answered with exactly 200.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.sandbox.woocommerce.state import ShopState
from app.sandbox.woocommerce.wire import (
    SHOP_TIMEZONE,
    WP_VERSION,
    Delivery,
    JsonDict,
    sign,
    wc_dates,
    wp_json_encode,
)

# `woocommerce_max_webhook_delivery_failures`; the check is "count > max", hence the 7th failure.
MAX_DELIVERY_FAILURES = 5
DELIVERY_TIMEOUT_SECONDS = 60.0  # WC_Webhook::deliver uses MINUTE_IN_SECONDS
PING_TIMEOUT_SECONDS = 5.0  # wp_safe_remote_post's WordPress default

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


def _signing_key(secret: str) -> str:
    """WooCommerce signs with `wp_specialchars_decode($secret, ENT_QUOTES)`: these entities only."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'")):
        secret = secret.replace(entity, char)
    return secret.replace("&amp;", "&")


class ShopWebhooks(ShopState):
    """The shop's webhooks: registering, showing, delivering and pinging them."""

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
        """What the shop does after seven failed deliveries in a row: disabled, with the failure
        count it reached. Re-activating keeps that count (README fact 12), so the next failure
        disables it again; only a successful delivery resets it."""
        webhook = self.webhooks[webhook_id]
        webhook["status"] = "disabled"
        webhook["failure_count"] = MAX_DELIVERY_FAILURES + 1
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
        return f"WooCommerce/{self.woocommerce_version} Hookshot (WordPress/{WP_VERSION})"

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
        status, error = await self._post(
            client, webhook["delivery_url"], body, headers, seconds=DELIVERY_TIMEOUT_SECONDS, follow=False
        )
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
        status, error = await self._post(
            client, webhook["delivery_url"], body, headers, seconds=PING_TIMEOUT_SECONDS, follow=True
        )
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

    async def _post(
        self,
        client: httpx.AsyncClient | None,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        seconds: float,
        follow: bool,
    ) -> tuple[int | None, str | None]:
        """POST as `WC_Webhook` does: the status, or the transport error in words."""
        async with self._client(client, url) as http:
            try:
                response = await http.post(
                    url, content=body, headers=headers, timeout=seconds, follow_redirects=follow
                )
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    @asynccontextmanager
    async def _client(self, client: httpx.AsyncClient | None, url: str) -> AsyncIterator[httpx.AsyncClient]:
        chosen = client or self.http_client
        if chosen is not None:
            yield chosen
            return
        # As the real-shop rig's must-use plugin: a self-signed certificate is accepted on loopback only.
        loopback = (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}
        async with httpx.AsyncClient(verify=not loopback) as temporary:
            yield temporary


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
