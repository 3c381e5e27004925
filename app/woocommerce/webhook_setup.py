"""woobird's webhook in the shop: which of the shop's webhooks are ours, and creating or repairing
the one that tells woobird about orders (`woobird webhook install`, the sandbox demo)."""

from __future__ import annotations

from app.constants import WEBHOOK_PATH
from app.i18n import Message
from app.woocommerce.client import WooCommerceClient
from app.woocommerce.models import Webhook

WEBHOOK_TOPIC = "order.updated"
WEBHOOK_NAME = "woobird: book paid orders in Moneybird"


def our_webhooks(hooks: list[Webhook], wanted: str | None, *, path: str = WEBHOOK_PATH) -> list[Webhook]:
    """Webhooks that deliver to woobird: the exact URL first, then any URL on woobird's `path` (the
    connection's: /webhooks/woocommerce/<name> for another than connection 1)."""
    exact = [hook for hook in hooks if wanted and hook.delivery_url == wanted]
    by_path = [hook for hook in hooks if hook.delivery_url.rstrip("/").endswith(path) and hook not in exact]
    active_first = sorted(by_path, key=lambda hook: hook.status != "active")
    return exact + active_first


async def install_webhook(shop: WooCommerceClient, *, delivery_url: str, secret: str) -> str:
    """Create the webhook, or repair the one woobird made before; say which."""
    hooks = [hook for hook in await shop.list_webhooks() if hook.topic == WEBHOOK_TOPIC]
    ours = our_webhooks(hooks, delivery_url)
    if not ours:
        hook = await shop.create_webhook(
            name=WEBHOOK_NAME, topic=WEBHOOK_TOPIC, delivery_url=delivery_url, secret=secret
        )
        return Message(
            "created webhook #%(webhook)s: %(topic)s → %(url)s",
            webhook=hook.id,
            topic=WEBHOOK_TOPIC,
            url=delivery_url,
        )
    hook = ours[0]
    # The shop never shows a webhook's secret, so it is always set: then it surely matches ours.
    await shop.update_webhook(hook.id, delivery_url=delivery_url, status="active", secret=secret)
    repaired = Message(
        "repaired webhook #%(webhook)s (was %(status)s, %(was)s): now active, %(topic)s → %(url)s",
        webhook=hook.id,
        status=hook.status,
        was=hook.delivery_url,
        topic=WEBHOOK_TOPIC,
        url=delivery_url,
    )
    others = [
        Message(
            "note: webhook #%(webhook)s also delivers to woobird (%(url)s); delete it in "
            "WooCommerce → Settings → Advanced → Webhooks",
            webhook=other.id,
            url=other.delivery_url,
        )
        for other in ours[1:]
    ]
    if not others:
        return repaired
    # Several sentences, each its own message: the English for the log and the CLI, joined by lines.
    return "\n  ".join([repaired, *others])
