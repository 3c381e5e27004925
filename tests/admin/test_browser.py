"""The dashboard in a real headless Chromium: sign in, see a booked and a failed order, retry, see it booked.

The app runs with uvicorn over real HTTP, real Redis and a real SQLite ledger. The retried job is
run by a real burst arq worker; its job body is a stand-in that books the order in the ledger,
since this test is about the dashboard's round trip, not about Moneybird (tests/sync covers that).
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker, func
from playwright.async_api import Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import JOB_BOOK_ORDER, QUEUE_NAME
from app.db import create_engine, session_factory, transaction
from app.sandbox.server import serve_in_thread
from app.sync import ledger
from tests.admin.conftest import BOOKED_ID, FAILED_ID, FAILED_REASON, app_with_admin, seed_booked_and_failed
from tests.conftest import make_settings

# Found on PATH: Debian installs it as `chromium`.
CHROMIUM = "chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RETRIED_INVOICE = "2026-0042"

pytestmark = pytest.mark.browser


def _stand_in_booking(sessions: async_sessionmaker[AsyncSession], ran: list[int]) -> Any:
    async def book(ctx: dict[str, Any], order_id: int, reason: str = "") -> str:
        ran.append(order_id)
        async with transaction(sessions) as session:
            await ledger.update_order(
                session,
                order_id,
                state=ledger.OrderState.BOOKED.value,
                invoice_id="496081523381899999",
                invoice_number=RETRIED_INVOICE,
                invoice_total=Decimal("18.75"),
                error=None,
                failure_kind=None,
            )
            await ledger.add_event(session, order_id=order_id, step="booked", message=f"booked ({reason})")
        return ledger.OrderState.BOOKED.value

    return book


async def _row_state(page: Page, order_id: int) -> str | None:
    return await page.locator(f'tr[data-order="{order_id}"]').first.get_attribute("data-state")


@pytest.fixture
def chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium for this test")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return path


async def test_sign_in_see_orders_retry_and_see_it_booked(
    chromium: str, sqlite_url: str, redis: ArqRedis
) -> None:
    settings = make_settings(database_url=sqlite_url)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    await seed_booked_and_failed(sessions)
    ran: list[int] = []
    try:
        with serve_in_thread(app_with_admin(settings)) as base_url:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = await browser.new_page()

                unauthenticated = await page.goto(f"{base_url}/admin")
                assert unauthenticated is not None
                assert unauthenticated.status == 401
                assert await page.locator("text=2026-0041").count() == 0

                await page.fill("input[name=token]", settings.admin_token.get_secret_value())
                await page.click("button:has-text('Sign in')")
                await page.wait_for_url(f"{base_url}/admin")
                assert await _row_state(page, BOOKED_ID) == "booked"
                assert await _row_state(page, FAILED_ID) == "failed"
                assert await page.locator("a:has-text('2026-0041')").first.is_visible()
                assert await page.locator(f"text={FAILED_REASON}").is_visible()

                await page.click(f"button[aria-label='Retry order {FAILED_ID}']")
                await page.wait_for_url(f"{base_url}/admin?retried={FAILED_ID}")
                assert await _row_state(page, FAILED_ID) == "queued"

                worker = Worker(
                    functions=[func(_stand_in_booking(sessions, ran), name=JOB_BOOK_ORDER)],
                    redis_pool=redis,
                    queue_name=QUEUE_NAME,
                    burst=True,
                    poll_delay=0.01,
                    handle_signals=False,
                    keep_result=0,
                )
                await worker.async_run()

                await page.reload()
                assert await _row_state(page, FAILED_ID) == "booked"
                assert await page.locator(f"a:has-text('{RETRIED_INVOICE}')").first.is_visible()
                assert await page.locator(f"button[aria-label='Retry order {FAILED_ID}']").count() == 0
                await browser.close()
    finally:
        await engine.dispose()
    assert ran == [FAILED_ID]
