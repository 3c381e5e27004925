"""The ledger's own service state: what woobird writes down once and reads back ever after."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.booking import ledger
from app.db import transaction


async def test_the_first_run_is_written_down_once_and_read_back_the_same_ever_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = schema.utcnow()
    async with transaction(sessions) as session:
        first = await ledger.first_run_at(session)
    assert before - timedelta(seconds=1) <= first <= schema.utcnow()  # the default SYNC_SINCE

    async with transaction(sessions) as session:
        again = await ledger.first_run_at(session)
        stored = await ledger.get_state(session, ledger.FIRST_RUN_AT)
    assert again == first  # a restart does not move SYNC_SINCE on
    assert stored == first.isoformat()


async def test_moments_come_back_as_the_same_instant_whatever_zone_they_went_in_and_the_machine_is_in(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A laptop in Amsterdam: SQLite keeps no zone, so only UTC stored is read back right.
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        paid = datetime(2026, 5, 4, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))  # 10:00 UTC
        async with transaction(sessions) as session:
            await ledger.record_delivery(
                session, order_id=7901, order_number="7901", date_modified=paid, date_paid=paid
            )
        async with sessions() as session:
            record = await ledger.get_order(session, 7901)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert record is not None
    assert record.date_paid == paid
    assert record.date_paid is not None
    assert record.date_paid.utcoffset() == timedelta(0)


async def test_a_version_paid_within_the_same_second_as_the_one_recorded_is_news(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """WooCommerce's date_modified has whole seconds: placed on hold and marked paid in one second
    arrive as two deliveries with one date of change, and only the second carries date_paid."""
    changed = datetime(2026, 12, 7, 14, 19, 0, tzinfo=ZoneInfo("UTC"))
    paid = changed

    async def deliver(date_paid: datetime | None) -> bool:
        async with transaction(sessions) as session:
            return await ledger.record_delivery(
                session, order_id=47, order_number="47", date_modified=changed, date_paid=date_paid
            )

    assert await deliver(None) is True  # the order, on hold
    assert await deliver(None) is False  # the same version again
    assert await deliver(paid) is True  # the same second, now paid
    assert await deliver(paid) is False  # and that version again
    assert await deliver(None) is False  # an older copy without the payment changes nothing
    async with sessions() as session:
        record = await ledger.get_order(session, 47)
    assert record is not None
    assert record.date_paid is not None
    assert record.state == schema.OrderState.QUEUED
