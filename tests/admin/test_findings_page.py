"""The dashboard's "After booking" section: open findings, shown until someone marks them done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.auth import COOKIE_NAME, csrf_token
from app.booking.findings import note
from app.schema import Finding, FindingKind, FindingState
from app.settings import Settings
from tests.admin.conftest import BOOKED_ID, sign_in


@dataclass
class _Target:
    settings: Settings
    redis: ArqRedis
    sessions: async_sessionmaker[AsyncSession]


async def _changed(settings: Settings, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]) -> int:
    assert await note(
        _Target(settings, redis, sessions),
        kind=FindingKind.ORDER_CHANGED,
        subject=f"order:{BOOKED_ID}:abc",
        order_id=BOOKED_ID,
        message="order #1041 changed after it was booked as 2026-0041: total 36 → 40 (zq3-marker)",
    )
    async with sessions() as session:
        (finding,) = (await session.execute(select(Finding))).scalars().all()
    return finding.id


async def test_open_findings_are_shown_and_marked_done_with_the_form(
    client: httpx.AsyncClient,
    settings: Settings,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    finding_id = await _changed(settings, redis, sessions)
    await sign_in(client, settings)

    page = (await client.get("/admin")).text
    assert 'data-finding="order_changed"' in page
    assert "zq3-marker" in page
    assert "After booking (1 open)" in page
    listed = await client.get("/admin", headers={"accept": "application/json"})
    (shown,) = listed.json()["findings"]
    assert (shown["id"], shown["kind"], shown["state"], shown["order_id"]) == (
        finding_id,
        "order_changed",
        "open",
        BOOKED_ID,
    )
    assert "zq3-marker" in shown["message"]
    assert shown["resolution"] is None
    assert set(shown) == {
        "id",
        "kind",
        "state",
        "order_id",
        "refund_id",
        "invoice_id",
        "message",
        "detected_at",
        "resolution",
    }
    assert datetime.fromisoformat(shown["detected_at"]).tzinfo is not None

    refused = await client.post(f"/admin/findings/{finding_id}/done", data={"csrf": "forged"})
    assert refused.status_code == 403
    csrf = csrf_token(settings, client.cookies[COOKIE_NAME])
    done = await client.post(f"/admin/findings/{finding_id}/done", data={"csrf": csrf})
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin?done={finding_id}"

    async with sessions() as session:
        finding = await session.get(Finding, finding_id)
    assert finding is not None
    assert (finding.state, finding.resolution) == (FindingState.RESOLVED, "marked done by the dashboard")
    page = (await client.get(f"/admin?done={finding_id}")).text
    assert "zq3-marker" not in page
    assert "After booking (0 open)" in page
    missing = await client.post("/admin/findings/999999/done", data={"csrf": csrf})
    assert missing.status_code == 404


async def test_a_finding_is_shown_in_the_browsers_language(
    client: httpx.AsyncClient,
    settings: Settings,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await note(
        _Target(settings, redis, sessions),
        kind=FindingKind.INVOICE_CHANGED,
        subject="invoice:77",
        order_id=BOOKED_ID,
        message=(
            "invoice 2026-0041 of order #1041 now totals 40.00 in Moneybird, "
            "booked as 36.00 (difference 4.00)"
        ),
    )
    await sign_in(client, settings)

    dutch = (await client.get("/admin", headers={"Accept-Language": "nl"})).text
    english = (await client.get("/admin", headers={"Accept-Language": "en"})).text

    assert "factuur gewijzigd" in dutch
    assert "factuur 2026-0041 van bestelling #1041 heeft nu een totaal van 40.00 in Moneybird" in dutch
    assert "invoice 2026-0041 of order #1041 now totals 40.00 in Moneybird" in english
