"""The month report: shop totals against booked invoices per VAT rate, every difference listed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import ledger
from app.db import transaction
from app.i18n import Language
from app.report import month_bounds, monthly_report, render_report
from app.schema import OrderRecord, OrderState, RefundRecord, RefundState
from tests.ledger_rows import add_booked_order, add_failed_order

HIGH, LOW = "111", "222"
NOVEMBER = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        await add_booked_order(
            session,
            order_id=1,
            total=Decimal("36.00"),
            invoice_number="2026-0001",
            paid=NOVEMBER,
            vat=[(HIGH, "6.25", "6.25")],
        )
        await add_booked_order(
            session,
            order_id=2,
            total=Decimal("89.95"),
            invoice_number="2026-0002",
            paid=NOVEMBER,
            vat=[(HIGH, "12.40", "12.41"), (LOW, "1.95", "1.95")],
        )
        # Paid at 00:30 on 1 December in Amsterdam, still 30 November in UTC: December's.
        await add_booked_order(
            session,
            order_id=3,
            total=Decimal("10.00"),
            invoice_number="2026-0003",
            paid=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            vat=[(HIGH, "1.74", "1.74")],
        )
        await add_failed_order(
            session,
            order_id=4,
            total=Decimal("18.75"),
            paid=NOVEMBER,
            error="no tax rate for 9 %",
            kind="refused",
        )
        session.add(
            OrderRecord(
                order_id=5,
                order_number="5",
                state=OrderState.BEFORE_SINCE.value,
                date_modified=NOVEMBER,
                date_paid=NOVEMBER,
            )
        )
        session.add(
            OrderRecord(
                order_id=6,
                order_number="6",
                state=OrderState.QUEUED.value,
                date_modified=NOVEMBER,
                date_paid=NOVEMBER,
                order_total=Decimal("5.00"),
            )
        )
        await add_booked_order(
            session,
            order_id=7,
            total=Decimal("20.00"),
            invoice_number="2026-0007",
            paid=NOVEMBER,
            vat=[(LOW, "1.65", "1.65")],
        )
    # Order 7's invoice came out a cent above what the customer paid (only in an old version).
    async with transaction(sessions) as session:
        await ledger.update_order(session, 7, invoice_total=Decimal("20.01"))


async def test_totals_per_rate_and_every_difference(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _seed(sessions)

    report = await monthly_report(sessions, month="2026-11", tax_rates={"21": HIGH, "9": LOW})

    assert (report.booked, report.failed, report.waiting, report.before_since) == (3, 1, 1, 1)
    assert report.shop_total == Decimal("145.95")
    assert report.moneybird_total == Decimal("145.96")
    assert report.unbooked_total == Decimal("23.75")
    rates = {rate.tax_rate_id: rate for rate in report.rates}
    assert rates[HIGH].label == "21%"
    assert (rates[HIGH].shop_vat, rates[HIGH].moneybird_vat, rates[HIGH].orders) == (
        Decimal("18.65"),
        Decimal("18.66"),
        2,
    )
    assert rates[HIGH].difference == Decimal("0.01")
    assert (rates[LOW].shop_vat, rates[LOW].moneybird_vat, rates[LOW].difference) == (
        Decimal("3.60"),
        Decimal("3.60"),
        Decimal("0.00"),
    )
    found = {(d.order_id, d.what, d.tax_rate_id, d.difference) for d in report.differences}
    assert found == {
        (2, "vat", HIGH, Decimal("0.01")),
        (7, "total", None, Decimal("0.01")),
        (4, "not booked", None, None),
        (6, "not booked", None, None),
    }
    assert report.refunds is None


async def test_december_holds_the_order_paid_after_midnight_in_amsterdam(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(sessions)
    report = await monthly_report(sessions, month="2026-12")
    assert report.booked == 1
    assert report.shop_total == Decimal("10.00")
    assert report.in_balance
    assert report.rates[0].label == HIGH  # no MONEYBIRD_TAX_RATES given: the id stands in


async def test_refunds_are_summed_and_their_differences_listed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(sessions)
    async with transaction(sessions) as session:
        session.add_all(
            [
                RefundRecord(
                    refund_id=91,
                    order_id=1,
                    state=RefundState.BOOKED.value,
                    amount=Decimal("10.00"),
                    credit_invoice_number="2026-0091",
                    credit_total=Decimal("-10.00"),
                    created_at=NOVEMBER,
                ),
                RefundRecord(
                    refund_id=92,
                    order_id=2,
                    state=RefundState.FAILED.value,
                    amount=Decimal("5.00"),
                    error="credit refused",
                    created_at=NOVEMBER,
                ),
                RefundRecord(
                    refund_id=93,
                    order_id=7,
                    state=RefundState.BOOKED.value,
                    amount=Decimal("2.00"),
                    credit_invoice_number="2026-0093",
                    credit_total=Decimal("-2.01"),
                    created_at=NOVEMBER,
                ),
            ]
        )

    report = await monthly_report(sessions, month="2026-11")

    assert report.refunds is not None
    assert (report.refunds.count, report.refunds.booked, report.refunds.not_booked) == (3, 2, 1)
    assert report.refunds.refunded == Decimal("17.00")
    assert report.refunds.credited == Decimal("12.01")
    refunds = {(d.order_id, d.difference) for d in report.differences if d.what == "refund"}
    assert refunds == {(2, None), (7, Decimal("0.01"))}


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "november", ""])
def test_a_bad_month_is_refused(month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds(month)


def test_month_bounds_follow_amsterdam_time() -> None:
    assert month_bounds("2026-12") == (
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    )
    assert month_bounds("2026-07")[0] == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


async def _rendered(sessions: async_sessionmaker[AsyncSession], *, language: Language) -> str:
    """`woobird report --month 2026-11` over the seeded month, as printed in `language`."""
    await _seed(sessions)
    report = await monthly_report(sessions, month="2026-11", tax_rates={"21": HIGH, "9": LOW})
    console = Console(record=True, width=160)
    render_report(report, console, language=language)
    return console.export_text()


async def test_rendered_report_names_rates_and_differences(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    text = await _rendered(sessions, language="en")
    assert "Month report 2026-11" in text
    assert "booked 3 · failed 1 · waiting 1 · before SYNC_SINCE 1" in text
    assert "21%" in text
    assert "€18.66" in text
    assert "Differences (4)" in text
    assert "no tax rate for 9 %" in text
    assert "Moneybird's VAT rounding differs from the shop's" in text


async def test_rendered_report_in_dutch(sessions: async_sessionmaker[AsyncSession]) -> None:
    text = await _rendered(sessions, language="nl")
    assert "Maandrapport 2026-11" in text
    assert "geboekt 3 · mislukt 1 · wachtend 1 · vóór SYNC_SINCE 1" in text
    assert "€\xa018,66" in text
    assert "18.66" not in text
    assert "Verschillen (4)" in text
    assert "Totalen van geboekte bestellingen" in text
    assert "de btw-afronding van Moneybird wijkt af van die van de winkel" in text
    assert "wachtend (in de wachtrij)" in text
    # What the bookkeeper's refusal said stays in its own words.
    assert "no tax rate for 9 %" in text


async def test_moneybirds_rate_names_label_the_rates_when_known(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(sessions)

    report = await monthly_report(
        sessions, month="2026-11", tax_rates={"21": HIGH, "9": LOW}, rate_names={HIGH: "21% btw"}
    )

    labels = {rate.tax_rate_id: rate.label for rate in report.rates}
    assert labels == {HIGH: "21% btw", LOW: "9%"}
