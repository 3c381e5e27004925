"""`woobird verify --month YYYY-MM` in a terminal: what it read back, what it found, its exit code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from app.report import REPORT_TIMEZONE
from app.sandbox.moneybird import sandbox_transport
from tests.test_cli import Fakes, fakes, queue_redis, shop_order

__all__ = ["fakes", "queue_redis"]  # the CLI suite's fixtures


def _this_month() -> str:
    # shop_order's orders were paid an hour ago.
    return (datetime.now(UTC) - timedelta(hours=1)).astimezone(REPORT_TIMEZONE).strftime("%Y-%m")


def _unpay(fakes: Fakes, invoice: dict[str, Any]) -> None:
    """The bookkeeper removes the invoice's payment through Moneybird's API."""

    async def remove() -> None:
        async with httpx.AsyncClient(
            transport=sandbox_transport(fakes.moneybird),
            base_url=f"https://moneybird.test/api/v2/{fakes.moneybird.administration_id}/",
            headers={"Authorization": f"Bearer {fakes.moneybird.token}"},
        ) as client:
            for payment in list(invoice["payments"]):
                response = await client.delete(
                    f"sales_invoices/{invoice['id']}/payments/{payment['id']}.json"
                )
                assert response.status_code == 204, response.text

    asyncio.run(remove())


def _row(output: str, number: str) -> str:
    """The table's row of an invoice (the log lines on stderr mention it too)."""
    return next(line for line in output.splitlines() if number in line and "finding" not in line).rstrip()


def _booked(fakes: Fakes) -> dict[str, Any]:
    order_id = shop_order(fakes, 0)
    assert fakes.invoke("sync", str(order_id)).exit_code == 0
    [invoice] = fakes.moneybird.sales_invoices.values()
    return invoice


def test_verify_prints_what_it_checked_and_that_all_is_well(fakes: Fakes) -> None:
    invoice = _booked(fakes)
    total = f"{Decimal(invoice['total_price_incl_tax']):.2f}"

    result = fakes.invoke("verify", "--month", _this_month())

    assert result.exit_code == 0, result.output
    assert f"Verified {_this_month()}: 1 invoice(s) and 0 credit invoice(s) booked, {total} in all" in (
        result.output
    )
    assert "(1 request(s))" in result.output
    assert "All 1 are in Moneybird as booked" in result.output


def test_verify_lists_what_changed_and_exits_non_zero(fakes: Fakes) -> None:
    invoice = _booked(fakes)
    total = f"{Decimal(invoice['total_price_incl_tax']):.2f}"
    _unpay(fakes, invoice)

    first = fakes.invoke("verify", "--month", _this_month())
    second = fakes.invoke("verify", "--month", _this_month())

    assert first.exit_code == 1, first.output
    assert "Changed in Moneybird (1)" in first.output
    row = _row(first.output, invoice["invoice_id"])
    assert "reopened" in row
    assert total in row
    assert row.endswith("new")
    assert "0 of 1 are as booked" in first.output
    assert second.exit_code == 1
    assert _row(second.output, invoice["invoice_id"]).endswith("known")


def test_verify_refuses_a_malformed_month_and_asks_nothing(fakes: Fakes) -> None:
    for month in ("2026-13", "december", "2026-1"):
        result = fakes.invoke("verify", "--month", month)

        assert result.exit_code == 2, (month, result.output)
        assert "YYYY-MM" in result.output
    assert fakes.moneybird.calls() == 0
