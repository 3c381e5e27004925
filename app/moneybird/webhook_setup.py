"""woobird's webhook in Moneybird: the pushes that say an invoice was paid (or a payment undone).

Moneybird shows a webhook's secret only in the answer to its create, so a webhook woobird made
before and whose secret it no longer holds cannot be repaired: installing deletes every webhook that
delivers to woobird's url and creates one anew, and the caller stores the new secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from app.i18n import Message
from app.moneybird.client import MoneybirdClient

# Paid in full (the order can be marked paid), and payments made or undone (a part payment, a
# payment removed again) — see the README's "Open invoices, paid later".
PUSH_EVENTS: Final = (
    "sales_invoice_state_changed_to_paid",
    "payment_registered",
    "payment_destroyed",
)


@dataclass(frozen=True)
class InstalledWebhook:
    webhook_id: str
    secret: str
    message: str


class NoSecretGiven(RuntimeError):
    """Moneybird created the webhook but showed no secret: its pushes could never be verified."""


async def install_moneybird_webhook(moneybird: MoneybirdClient, *, url: str) -> InstalledWebhook:
    """Replace the webhooks delivering to `url` with one that pushes PUSH_EVENTS; say what was done.

    Moneybird pushes a check to `url` inside the create, before the secret is known: the caller
    opens the registration window first (app/moneybird_pushes.py).
    """
    replaced = [hook for hook in await moneybird.list_webhooks() if hook.url == url]
    for hook in replaced:
        await moneybird.delete_webhook(hook.id)
    created = await moneybird.create_webhook(url=url, events=PUSH_EVENTS)
    if created.secret is None or not created.secret.get_secret_value():
        await moneybird.delete_webhook(created.id)
        raise NoSecretGiven(f"Moneybird showed no secret for webhook {created.id}; it was deleted again")
    events = ", ".join(PUSH_EVENTS)
    message = (
        Message(
            "created Moneybird webhook #%(id)s (replaced %(replaced)s): %(events)s → %(url)s",
            id=created.id,
            replaced=", ".join(f"#{hook.id}" for hook in replaced),
            events=events,
            url=url,
        )
        if replaced
        else Message(
            "created Moneybird webhook #%(id)s: %(events)s → %(url)s", id=created.id, events=events, url=url
        )
    )
    return InstalledWebhook(webhook_id=created.id, secret=created.secret.get_secret_value(), message=message)
