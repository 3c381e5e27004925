"""The wizard's Install step with open invoices: woobird's webhook registered in Moneybird (whose url
check the web process answers while it registers), its secret stored sealed, and Moneybird's signed
pushes heard from then on; a token without the `settings` scope named, with the fix."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import MONEYBIRD_WEBHOOK_PATH, WORKER_HEALTH_KEY
from app.moneybird.push_signature import sign_push
from tests.setup.conftest import WOOBIRD_URL, Wizard, open_wizard
from tests.setup.test_later_steps import _form, through_moneybird


@pytest.fixture
async def open_invoice_wizard(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Wizard]:
    environment = {"open_invoice_payment_methods": ["bacs"]}
    async with open_wizard(
        database_url, redis, sessions, monkeypatch, confirm_address=True, environment=environment
    ) as wizard:
        # Moneybird reaches woobird's public address: here, the web app in process.
        to_woobird = httpx.AsyncClient(transport=wizard.transport, base_url=WOOBIRD_URL)
        wizard.moneybird.push_client = to_woobird
        try:
            yield wizard
        finally:
            await to_woobird.aclose()


async def _install(wizard: Wizard) -> httpx.Response:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    await wizard.post("/admin/setup/history", {"action": "from_now"})
    await wizard.redis.set(WORKER_HEALTH_KEY, "j_complete=0")  # a worker is running
    return await wizard.post("/admin/setup/install", {"public_url": WOOBIRD_URL})


async def test_install_registers_moneybirds_webhook_and_stores_its_secret(
    open_invoice_wizard: Wizard,
) -> None:
    wizard = open_invoice_wizard
    installed = await _install(wizard)

    assert installed.status_code == 200, installed.text
    assert "created Moneybird webhook" in installed.text
    [hook] = wizard.moneybird.webhooks.values()
    assert hook["url"] == WOOBIRD_URL + MONEYBIRD_WEBHOOK_PATH
    stored = await wizard.stored()
    assert stored["MONEYBIRD_WEBHOOK_SECRET"] == hook["secret"]
    # From now on a push signed with it is heard; one signed otherwise is refused.
    body = json.dumps(
        {"administration_id": wizard.moneybird.administration_id, "entity_type": "Contact"}
    ).encode()
    good = sign_push(hook["secret"], body, timestamp=int(time.time()))
    bad = sign_push("whsec_not_it", body, timestamp=int(time.time()))
    assert (
        await wizard.web.post(MONEYBIRD_WEBHOOK_PATH, content=body, headers={"moneybird-signature": good})
    ).status_code == 200
    assert (
        await wizard.web.post(MONEYBIRD_WEBHOOK_PATH, content=body, headers={"moneybird-signature": bad})
    ).status_code == 401


async def test_install_names_the_settings_scope_a_token_lacks(open_invoice_wizard: Wizard) -> None:
    wizard = open_invoice_wizard
    wizard.moneybird.token_scopes = frozenset({"sales_invoices"})

    installed = await _install(wizard)

    assert installed.status_code == 422
    assert "`settings` scope" in installed.text
    assert wizard.moneybird.webhooks == {}
    assert "MONEYBIRD_WEBHOOK_SECRET" not in await wizard.stored()
