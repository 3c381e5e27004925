"""What to look at after booking: one finding done is that one done, and the newest come first."""

from __future__ import annotations

import asyncio

from app.booking.findings import dismiss, note, open_findings
from app.schema import FindingKind, FindingState
from tests.harness import Harness


async def _changed(harness: Harness, order_id: int) -> None:
    await note(
        harness.services,
        kind=FindingKind.ORDER_CHANGED,
        subject=f"order:{order_id}:v1",
        message=f"order #{order_id} changed after it was booked",
        order_id=order_id,
    )


async def test_marking_one_finding_done_leaves_the_others_of_its_kind_open(harness: Harness) -> None:
    for order_id in (7801, 7802, 7803):
        await _changed(harness, order_id)
        await asyncio.sleep(0.01)  # detected one after the other
    async with harness.sessions() as session:
        newest_first = [f.order_id for f in await open_findings(session)]
        first_two = [f.order_id for f in await open_findings(session, limit=2)]
    assert newest_first == [7803, 7802, 7801]
    assert first_two == [7803, 7802]

    async with harness.sessions() as session:
        (middle,) = [f for f in await open_findings(session) if f.order_id == 7802]
    done = await dismiss(harness.services, middle.id, by="the dashboard")

    assert done is not None
    assert (done.state, done.resolution) == (FindingState.RESOLVED, "marked done by the dashboard")
    async with harness.sessions() as session:
        assert [f.order_id for f in await open_findings(session)] == [7803, 7801]
