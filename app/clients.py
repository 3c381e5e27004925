"""The shop and Moneybird clients the commands and the set-up wizard build, and only here.

Tests point every one of them at the fake shop and the fake Moneybird by replacing `transports`
(in-process ASGI transports) instead of a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.address_guard import AllowedAddresses, guarded_transport
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


def shop_client(settings: Settings, *, allowed: AllowedAddresses | None = None) -> WooCommerceClient:
    """With `allowed`, the real network is reached through the address guard (the set-up wizard's
    requests to an address an admin typed): public addresses, and those it names, only."""
    transport = transports.shop
    if transport is None and allowed is not None:
        # httpx takes no proxy from the environment once it is given a transport: none bypasses the guard.
        transport = guarded_transport(allowed)
    return WooCommerceClient.from_settings(settings, transport=transport)


def moneybird_client(settings: Settings, *, limiter: RateLimiter | None = None) -> MoneybirdClient:
    return MoneybirdClient.from_settings(settings, limiter=limiter, transport=transports.moneybird)


def transport_overrides() -> dict[str, httpx.AsyncBaseTransport | None]:
    """Keyword arguments for `app.runtime.build_services`."""
    return {"shop_transport": transports.shop, "moneybird_transport": transports.moneybird}
