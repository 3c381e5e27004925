"""Registering woobird's webhook in Moneybird — the one action `woobird webhook install` and the
wizard's Install step share — when open invoices are booked (OPEN_INVOICE_PAYMENT_METHODS).

Moneybird checks the url answers 200 inside the create, before it tells the secret, so the
registration window (app/moneybird_pushes.py) is opened first and closed after, whatever happened.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from arq.connections import ArqRedis

from app.clients import moneybird_client
from app.connections import connection_path
from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    MONEYBIRD_WEBHOOK_PATH,
    MONEYBIRD_WEBHOOK_REGISTERING_KEY,
    MONEYBIRD_WEBHOOK_REGISTERING_SECONDS,
)
from app.moneybird.webhook_setup import install_moneybird_webhook
from app.queue import connection_key
from app.settings import Settings


@dataclass(frozen=True)
class PaymentWebhook:
    secret: str
    message: str


def payment_pushes_wanted(settings: Settings) -> bool:
    """Only open invoices wait for Moneybird's word; a paid invoice needs none."""
    return bool(settings.open_invoice_payment_methods)


async def register_payment_webhook(
    settings: Settings,
    *,
    redis: ArqRedis,
    public_url: str,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
    connection_name: str | None = None,
) -> PaymentWebhook:
    """Replace the connection's webhook in Moneybird; the caller stores `secret` as that
    connection's MONEYBIRD_WEBHOOK_SECRET.

    Connection 1's delivers to /webhooks/moneybird, another's to /webhooks/moneybird/<name>, so
    each push names its connection and is verified with that connection's secret.
    Raises MoneybirdError (MoneybirdAuthError when the token lacks the `settings` scope).
    """
    path = connection_path(MONEYBIRD_WEBHOOK_PATH, connection_id=connection_id, name=connection_name)
    url = public_url.rstrip("/") + path
    registering = connection_key(MONEYBIRD_WEBHOOK_REGISTERING_KEY, connection_id)
    await redis.set(registering, "1", ex=MONEYBIRD_WEBHOOK_REGISTERING_SECONDS)
    try:
        async with moneybird_client(settings) as moneybird:
            installed = await install_moneybird_webhook(moneybird, url=url)
    finally:
        with contextlib.suppress(Exception):
            await redis.delete(registering)
    return PaymentWebhook(secret=installed.secret, message=installed.message)
