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
from app.constants import (
    MONEYBIRD_WEBHOOK_PATH,
    MONEYBIRD_WEBHOOK_REGISTERING_KEY,
    MONEYBIRD_WEBHOOK_REGISTERING_SECONDS,
)
from app.moneybird.webhook_setup import install_moneybird_webhook
from app.settings import Settings


@dataclass(frozen=True)
class PaymentWebhook:
    secret: str
    message: str


def payment_pushes_wanted(settings: Settings) -> bool:
    """Only open invoices wait for Moneybird's word; a paid invoice needs none."""
    return bool(settings.open_invoice_payment_methods)


async def register_payment_webhook(settings: Settings, *, redis: ArqRedis, public_url: str) -> PaymentWebhook:
    """Replace woobird's webhook in Moneybird; the caller stores `secret` as MONEYBIRD_WEBHOOK_SECRET.

    Raises MoneybirdError (MoneybirdAuthError when the token lacks the `settings` scope).
    """
    url = public_url.rstrip("/") + MONEYBIRD_WEBHOOK_PATH
    await redis.set(MONEYBIRD_WEBHOOK_REGISTERING_KEY, "1", ex=MONEYBIRD_WEBHOOK_REGISTERING_SECONDS)
    try:
        async with moneybird_client(settings) as moneybird:
            installed = await install_moneybird_webhook(moneybird, url=url)
    finally:
        with contextlib.suppress(Exception):
            await redis.delete(MONEYBIRD_WEBHOOK_REGISTERING_KEY)
    return PaymentWebhook(secret=installed.secret, message=installed.message)
