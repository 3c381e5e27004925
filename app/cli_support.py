"""What every `woobird` command shares: settings that explain themselves, clients, consoles.

Clients are built here and only here, so the tests can point every command at the fake shop and
the fake Moneybird by setting `transports` (an in-process ASGI transport) instead of a network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console

from app.moneybird.client import MoneybirdClient
from app.moneybird.ratelimit import RateLimiter
from app.settings import ConfigurationError, Settings, load_settings
from app.settings_live import load_with_store
from app.woocommerce.client import WooCommerceClient

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


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


def transport_overrides() -> dict[str, Any]:
    """Keyword arguments for `app.sync.services.build_services`."""
    return {"shop_transport": transports.shop, "moneybird_transport": transports.moneybird}


def fail(message: str, *, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]✗[/] {message}")
    raise typer.Exit(code)


def settings_or_exit(*, complete: bool = False) -> Settings:
    """The settings; a malformed (or, with `complete`, a missing) one ends the command, named."""
    try:
        settings = load_with_store(load_settings())
        return settings.require_complete() if complete else settings
    except ConfigurationError as exc:
        err_console.print("[bold red]✗[/] woobird's settings are not usable yet:")
        for name, why in exc.problems.items():
            err_console.print(f"  [bold]{name}[/]: {why}")
        err_console.print(
            "  Run [bold]woobird setup[/] or edit .env (see .env.example), then [bold]woobird check[/]."
        )
        raise typer.Exit(2) from None


def require(settings: Settings, *names: str) -> None:
    """End the command when one of these settings (environment names) is missing or a placeholder."""
    problems = settings.problems()
    missing = {name: problems[name] for name in names if name in problems}
    if missing:
        err_console.print("[bold red]✗[/] this command needs these settings:")
        for name, why in missing.items():
            err_console.print(f"  [bold]{name}[/]: {why}")
        raise typer.Exit(2)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)
