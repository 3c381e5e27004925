"""Payloads recorded from a real WooCommerce (9.9.5 and 10.0.2), for the unit tests.

`python -m tests.realshop.record` re-records them (see that module for what each file is); the
files are kept byte for byte as the shop sent them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "fixtures" / "realshop"
VERSIONS = ("9.9.5", "10.0.2")


def _load(version: str, name: str) -> Any:
    return json.loads((RECORDED / version / name).read_text(encoding="utf-8"))


def cases() -> list[str]:
    return sorted(
        path.name.removesuffix(".order.json") for path in (RECORDED / VERSIONS[0]).glob("*.order.json")
    )


def refunded_cases() -> list[str]:
    return [case for case in cases() if (RECORDED / VERSIONS[0] / f"{case}.refunds.json").exists()]


def order(version: str, case: str, *, dp6: bool = False) -> dict[str, Any]:
    """`GET /orders/{id}`, at WooCommerce's default precision or with `?dp=6` (what woobird reads)."""
    document: dict[str, Any] = _load(version, f"{case}.order{'.dp6' if dp6 else ''}.json")
    return document


def refunds(version: str, case: str, *, dp6: bool = False) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = _load(version, f"{case}.refunds{'.dp6' if dp6 else ''}.json")
    return documents


def webhook(version: str, case: str) -> dict[str, Any]:
    """The last `order.updated` delivery about the case's order: `headers` and the exact `body`."""
    delivery: dict[str, Any] = _load(version, f"{case}.webhook.json")
    return delivery


def ping(version: str) -> dict[str, Any]:
    delivery: dict[str, Any] = _load(version, "ping.json")
    return delivery


def shop(version: str) -> dict[str, Any]:
    """Versions, tax rate ids and the secret the recorded webhooks were signed with."""
    facts: dict[str, Any] = _load(version, "shop.json")
    return facts
