"""The shop and Moneybird clients the commands and the set-up wizard build, and only here.

Tests point every one of them at the fake shop and the fake Moneybird by replacing `transports`
(in-process ASGI transports) instead of a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import RateLimiter
from app.settings import Settings
from app.woocommerce.client import WooCommerceClient


@dataclass
class Transports:
    """httpx transports for the two APIs; None means the real network."""

    shop: httpx.AsyncBaseTransport | None = None
    moneybird: httpx.AsyncBaseTransport | None = None


transports = Transports()


def shop_client(settings: Settings) -> WooCommerceClient:
    return WooCommerceClient.from_settings(settings, transport=transports.shop)


def moneybird_client(settings: Settings, *, limiter: RateLimiter | None = None) -> MoneybirdClient:
    return MoneybirdClient.from_settings(settings, limiter=limiter, transport=transports.moneybird)


def transport_overrides() -> dict[str, httpx.AsyncBaseTransport | None]:
    """Keyword arguments for `app.runtime.build_services`."""
    return {"shop_transport": transports.shop, "moneybird_transport": transports.moneybird}
