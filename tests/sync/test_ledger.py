"""The ledger's own service state: what woobird writes down once and reads back ever after."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.sync import ledger


async def test_the_first_run_is_written_down_once_and_read_back_the_same_ever_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = ledger.utcnow()
    async with transaction(sessions) as session:
        first = await ledger.first_run_at(session)
    assert before - timedelta(seconds=1) <= first <= ledger.utcnow()  # the default SYNC_SINCE

    async with transaction(sessions) as session:
        again = await ledger.first_run_at(session)
        stored = await ledger.get_state(session, ledger.FIRST_RUN_AT)
    assert again == first  # a restart does not move SYNC_SINCE on
    assert stored == first.isoformat()
