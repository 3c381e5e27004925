"""Ledger rows that look like a working shop: booked orders with their invoices, and failures.

Used by the dashboard's browser test and by bench/screenshot_dashboard.py, which makes the
README's screenshot.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.booking import ledger
from app.db import transaction
from app.schema import OrderRecord, OrderState, OrderStep

DEMO_TAX_RATE_HIGH = "4960815233818964"
DEMO_TAX_RATE_LOW = "4960815233818965"


def _vat_rows(*rows: tuple[str, str, str]) -> str:
    return json.dumps(
        [
            {
                "tax_rate_id": rate,
                "shop": shop,
                "moneybird": booked,
                "difference": str(Decimal(booked) - Decimal(shop)),
            }
            for rate, shop, booked in rows
        ]
    )


async def add_booked_order(
    session: AsyncSession,
    *,
    order_id: int,
    total: Decimal,
    invoice_number: str,
    paid: datetime,
    vat: list[tuple[str, str, str]] | None = None,
) -> None:
    """A booked order as the booking flow leaves it: invoice, payment, VAT report, ledger events."""
    invoice_id = str(496081523381896487 + order_id)
    session.add(
        OrderRecord(
            order_id=order_id,
            order_number=str(order_id),
            state=OrderState.BOOKED.value,
            step=OrderStep.PAID.value,
            date_modified=paid + timedelta(minutes=1),
            date_paid=paid,
            order_total=total,
            contact_id=str(496081410950432183 + order_id % 7),
            invoice_id=invoice_id,
            invoice_number=invoice_number,
            invoice_total=total,
            payment_id=str(496081536082249007 + order_id),
            vat_report=_vat_rows(*(vat or [])),
            attempts=1,
            created_at=paid,
            updated_at=paid + timedelta(seconds=3),
            booked_at=paid + timedelta(seconds=3),
        )
    )
    for step, message in (
        ("started", "booking (webhook)"),
        ("contact", "adopted contact"),
        ("invoice", f"created draft {invoice_id}"),
        ("sent", f"sent (Manual) as {invoice_number}"),
        ("booked", f"booked as {invoice_number}, total {total}"),
    ):
        await ledger.add_event(session, order_id=order_id, step=step, message=message)


async def add_failed_order(
    session: AsyncSession, *, order_id: int, total: Decimal | None, paid: datetime, error: str, kind: str
) -> None:
    session.add(
        OrderRecord(
            order_id=order_id,
            order_number=str(order_id),
            state=OrderState.FAILED.value,
            date_modified=paid + timedelta(minutes=1),
            date_paid=paid,
            order_total=total,
            error=error,
            failure_kind=kind,
            attempts=1,
            created_at=paid,
            updated_at=paid + timedelta(seconds=2),
        )
    )
    await ledger.add_event(session, order_id=order_id, step="started", message="booking (webhook)")
    await ledger.add_event(session, order_id=order_id, step="failed", message=error)


async def seed_demo(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> None:
    """A morning in a small Dutch shop: mostly booked, one rounding difference, two failures."""
    now = now or schema.utcnow()
    high, low = DEMO_TAX_RATE_HIGH, DEMO_TAX_RATE_LOW
    async with transaction(sessions) as session:
        booked = [
            (1201, "36.00", [(high, "6.25", "6.25")]),
            (1202, "89.95", [(high, "12.40", "12.40"), (low, "1.95", "1.95")]),
            (1203, "14.50", [(low, "1.20", "1.20")]),
            (1205, "249.00", [(high, "43.21", "43.22")]),
            (1206, "52.30", [(high, "9.08", "9.08")]),
        ]
        for position, (order_id, total, vat) in enumerate(booked):
            await add_booked_order(
                session,
                order_id=order_id,
                total=Decimal(total),
                invoice_number=f"2026-{order_id - 1000:04d}",
                paid=now - timedelta(minutes=90 - position * 12),
                vat=vat,
            )
        await add_failed_order(
            session,
            order_id=1204,
            total=Decimal("61.90"),
            paid=now - timedelta(minutes=50),
            kind="refused",
            error="no Moneybird tax rate for 9 % VAT: add one to MONEYBIRD_TAX_RATES (see `woobird setup`)",
        )
        await add_failed_order(
            session,
            order_id=1207,
            total=Decimal("18.75"),
            paid=now - timedelta(minutes=8),
            kind="rejected",
            error="Moneybird rejected the order: contact_id: is invalid (the contact was archived)",
        )
        await ledger.set_state(
            session, ledger.RECONCILE_LAST_SUCCESS, (now - timedelta(minutes=3)).isoformat()
        )
