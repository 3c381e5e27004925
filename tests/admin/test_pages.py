"""What a signed-in bookkeeper sees and does: orders with invoices, failures with Retry, the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.admin.auth import COOKIE_NAME, csrf_token
from app.admin.routes import RECENT_LIMIT
from app.alerts import alert_key
from app.booking import ledger
from app.booking.verify import VERIFY_LAST_ERROR, VERIFY_LAST_SUCCESS
from app.constants import QUEUE_NAME
from app.db import transaction
from app.queue import order_job_id
from app.settings import Settings
from tests.admin.conftest import BOOKED_ID, FAILED_ID, FAILED_REASON, app_with_admin, sign_in
from tests.conftest import make_settings
from tests.ledger_rows import add_booked_order


async def _jobs_for(redis: ArqRedis, order_id: int) -> list[str]:
    jobs = [job.decode() for job in await redis.zrange(QUEUE_NAME, 0, -1)]
    return [job for job in jobs if job.startswith(f"order:{order_id}:")]


def _csrf(client: httpx.AsyncClient, settings: Settings) -> str:
    return csrf_token(settings, client.cookies[COOKIE_NAME])


async def test_overview_shows_booked_and_failed_orders(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = (await client.get("/admin")).text
    assert f'data-order="{BOOKED_ID}" data-state="booked"' in page
    assert f'data-order="{FAILED_ID}" data-state="failed"' in page
    invoice_id = str(496081523381896487 + BOOKED_ID)
    link = f"https://moneybird.com/{settings.moneybird_administration_id}/sales_invoices/{invoice_id}"
    assert f'href="{link}"' in page
    assert ">2026-0041</a>" in page
    assert FAILED_REASON in page
    assert f'action="/admin/orders/{FAILED_ID}/retry"' in page
    assert f'action="/admin/orders/{BOOKED_ID}/retry"' not in page
    assert "SANDBOX" not in page
    for name in ("redis", "database", "worker", "backlog"):
        assert f'data-check="{name}"' in page


async def test_sandbox_banner(sqlite_url: str, redis: ArqRedis) -> None:
    settings = make_settings(database_url=sqlite_url, woobird_sandbox=True)
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            login = await client.get("/admin/login")
            await sign_in(client, settings)
            page = await client.get("/admin")
    assert "SANDBOX" in login.text
    assert "SANDBOX" in page.text


async def test_order_page_shows_the_ledger_events(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = (await client.get(f"/admin/orders/{BOOKED_ID}")).text
    assert "sent (Manual) as 2026-0041" in page
    assert "booked as 2026-0041, total 36.00" in page
    missing = await client.get("/admin/orders/999999")
    assert missing.status_code == 404


async def test_retry_requeues_with_a_fresh_job_id(
    client: httpx.AsyncClient,
    settings: Settings,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        before = await ledger.get_order(session, FAILED_ID)
    assert before is not None
    original = order_job_id(FAILED_ID, before.date_modified)
    # What arq keeps of the first try (a kept result) would make it refuse the original job id.
    await redis.set(f"arq:result:{original}", b"kept", ex=600)
    await redis.set(alert_key(f"order-failed:{FAILED_ID}"), "sent")
    await sign_in(client, settings)

    response = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": _csrf(client, settings)})

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin?retried={FAILED_ID}"
    queued = await _jobs_for(redis, FAILED_ID)
    assert len(queued) == 1
    assert queued[0].startswith(f"{original}:retry:")
    async with sessions() as session:
        after = await ledger.get_order(session, FAILED_ID)
        events = await ledger.events_for(session, FAILED_ID)
    assert after is not None
    assert after.state == schema.OrderState.QUEUED
    assert after.error is None
    assert events[-1].step == "retry"
    assert not await redis.exists(alert_key(f"order-failed:{FAILED_ID}"))
    page = (await client.get(f"/admin?retried={FAILED_ID}")).text
    assert f"Order {FAILED_ID} is queued again" in page
    assert f'data-order="{FAILED_ID}" data-state="queued"' in page

    again = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": _csrf(client, settings)})
    assert again.status_code == 409
    assert len(await _jobs_for(redis, FAILED_ID)) == 1


async def test_a_booked_order_is_not_retried(
    client: httpx.AsyncClient, settings: Settings, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    token = settings.admin_token.get_secret_value()
    response = await client.post(
        f"/admin/orders/{BOOKED_ID}/retry",
        headers={"authorization": f"Bearer {token}", "accept": "application/json"},
    )
    assert response.status_code == 409
    assert "only failed orders are retried" in response.json()["detail"]
    assert await _jobs_for(redis, BOOKED_ID) == []
    async with sessions() as session:
        record = await ledger.get_order(session, BOOKED_ID)
    assert record is not None
    assert record.state == schema.OrderState.BOOKED


async def test_retry_that_cannot_be_queued_leaves_the_order_failed(
    client: httpx.AsyncClient, settings: Settings, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, settings)
    csrf = _csrf(client, settings)
    await redis.aclose()
    app_redis = client._transport.app.state.woobird.redis  # type: ignore[attr-defined]
    await app_redis.connection_pool.disconnect()
    app_redis.connection_pool.reset()  # signing in used a connection: forget it, not just close it
    app_redis.connection_pool.connection_kwargs["port"] = 1  # nothing listens there

    response = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": csrf})

    assert response.status_code == 409
    assert "could not be queued" in response.text
    async with sessions() as session:
        record = await ledger.get_order(session, FAILED_ID)
    assert record is not None
    assert record.state == schema.OrderState.FAILED
    assert record.error == FAILED_REASON


async def test_report_page_lists_the_month(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = await client.get("/admin/report", params={"month": "2026-11"})
    assert page.status_code == 200
    assert "Month report 2026-11" in page.text
    assert "not booked" in page.text  # the failed order is a difference
    bad = await client.get("/admin/report", params={"month": "2026-13"})
    assert bad.status_code == 400
    assert "YYYY-MM" in bad.text


async def test_overview_shows_when_reconciliation_last_succeeded(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    from app.db import create_engine, session_factory, transaction

    engine = create_engine(settings.database_url)
    async with transaction(session_factory(engine)) as session:
        await ledger.set_state(session, ledger.RECONCILE_LAST_SUCCESS, "2026-11-20T10:15:00+00:00")
    await engine.dispose()
    await sign_in(client, settings)
    page = (await client.get("/admin")).text
    assert 'data-check="reconcile"' in page
    card = page.split("last reconciliation", 1)[1].split('<div class="card"', 1)[0]
    assert "not yet" not in card
    assert "20 November 2026 11:15" in card  # 10:15 UTC in Amsterdam, as English writes it


async def test_overview_says_when_verification_last_finished_and_why_it_failed_since(
    client: httpx.AsyncClient, settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, settings)
    before = (await client.get("/admin")).text
    assert 'data-verification="ok"' in before
    assert "not yet" in before.split("last verification", 1)[1][:300]

    finished = datetime(2026, 11, 30, 3, 17, tzinfo=UTC)
    async with transaction(seeded) as session:
        await ledger.set_state(session, VERIFY_LAST_SUCCESS, finished.isoformat())
    done = (await client.get("/admin")).text
    assert "30 November 2026 04:17" in done.split("last verification", 1)[1][:300]  # Amsterdam time
    assert "last try failed" not in done

    failed_at = finished + timedelta(days=1)
    async with transaction(seeded) as session:
        await ledger.set_state(
            session, VERIFY_LAST_ERROR, f"{failed_at.isoformat()} Moneybird is not answering (zk4-marker)"
        )
    failing = (await client.get("/admin")).text
    assert 'data-verification="failing"' in failing
    assert "last try failed: Moneybird is not answering (zk4-marker)" in failing
    summary = (await client.get("/admin", headers={"accept": "application/json"})).json()["verification"]
    assert summary == {
        "on": True,
        "last_finished": finished.isoformat(),
        "last_error": "Moneybird is not answering (zk4-marker)",
    }

    async with transaction(seeded) as session:  # a later verification finished: the failure is over
        await ledger.set_state(session, VERIFY_LAST_SUCCESS, (failed_at + timedelta(hours=1)).isoformat())
    assert "zk4-marker" not in (await client.get("/admin")).text


async def test_overview_says_verification_is_off(sqlite_url: str, redis: ArqRedis) -> None:
    settings = make_settings(database_url=sqlite_url, verify_interval_hours=0)
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            await sign_in(client, settings)
            page = (await client.get("/admin")).text
    assert 'data-verification="off"' in page
    assert "VERIFY_INTERVAL_HOURS is 0" in page


async def test_the_overview_lists_the_most_recently_changed_orders_up_to_its_limit(
    client: httpx.AsyncClient, settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    async with transaction(seeded) as session:
        for index in range(RECENT_LIMIT + 5):
            await add_booked_order(
                session,
                order_id=3000 + index,
                total=Decimal("10.00"),
                invoice_number=f"2026-{index:04d}",
                paid=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
            )
    async with transaction(seeded) as session:  # the newest change: one of the oldest orders
        await ledger.update_order(session, 3001, state="booked")
    await sign_in(client, settings)

    recent = (await client.get("/admin", headers={"accept": "application/json"})).json()["recent"]

    assert len(recent) == RECENT_LIMIT
    assert recent[0]["order_id"] == 3001
    stamps = [row["updated_at"] for row in recent]
    assert stamps == sorted(stamps, reverse=True)
