"""The settings store: the environment wins, secrets are sealed, every change is recorded, and
running processes pick up a change without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import WEBHOOK_PATH
from app.main import create_app
from app.runtime import current_services, when_set_up
from app.schema import SettingChange, StoredSetting
from app.secret_box import SecretBox, SecretKeyError, secret_key_problem
from app.settings import Settings, load_settings, stored_values
from app.settings_live import LiveSettings, load_with_store
from app.settings_store import (
    StoreRefused,
    read_stored,
    read_version,
    recent_changes,
    sources,
    with_stored,
    write_settings,
)
from app.setup.progress import booking_may_start, record_step, start
from tests.conftest import ADMIN_TOKEN, TEST_REDIS_URL, WEBHOOK_SECRET
from tests.factories import order_document, signed_headers, wc_body

SECRET_KEY = "9f4c2b7e1d8a6035c4e9b2f7a1d3e5c80b6f2a4d9e7c1358"
ACTOR = "test: admin session"
TOKEN = "mb-personal-token-58c1e0f4a2b9"


def base_settings(database_url: str, **overrides: Any) -> Settings:
    """What a fresh deployment's environment holds: infrastructure, ADMIN_TOKEN, SECRET_KEY."""
    values: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "moneybird_api_url": "https://moneybird.test/api/v2",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@pytest.fixture
def base(database_url: str) -> Settings:
    return base_settings(database_url)


async def _stored(sessions: async_sessionmaker[AsyncSession], base: Settings) -> dict[str, str]:
    async with sessions() as session:
        return (await read_stored(session, base)).values


# ── precedence and sources ───────────────────────────────────────────────────────────────────


async def test_stored_values_fill_what_the_environment_leaves_empty_and_the_environment_wins(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    base = base_settings(database_url, moneybird_administration_id="111111111111111111")
    await write_settings(
        sessions,
        base=base,
        values={
            "MONEYBIRD_ADMINISTRATION_ID": "222222222222222222",
            "MONEYBIRD_TAX_RATES": '{"21": "333", "9": "444"}',
            "INVOICE_EXACT_VAT": "true",
        },
        actor=ACTOR,
    )
    stored = await _stored(sessions, base)
    merged = with_stored(base, stored)

    assert merged.moneybird_administration_id == "111111111111111111"  # the environment's
    assert merged.moneybird_tax_rates == {"21": "333", "9": "444"}  # parsed as from an env var
    assert merged.invoice_exact_vat is True
    where = sources(base, stored)
    assert where["MONEYBIRD_ADMINISTRATION_ID"] == "environment"
    assert where["MONEYBIRD_TAX_RATES"] == "wizard"
    assert where["MONEYBIRD_WORKFLOW_ID"] == "default"


async def test_commands_read_the_store_through_load_with_store(
    sessions: async_sessionmaker[AsyncSession], base: Settings
) -> None:
    await write_settings(sessions, base=base, values={"MONEYBIRD_API_TOKEN": TOKEN}, actor=ACTOR)

    assert load_with_store(base).moneybird_api_token.get_secret_value() == TOKEN


# ── secrets at rest ──────────────────────────────────────────────────────────────────────────


async def test_secrets_are_sealed_in_the_database_and_opened_with_the_key(
    sessions: async_sessionmaker[AsyncSession], base: Settings
) -> None:
    await write_settings(
        sessions,
        base=base,
        values={"MONEYBIRD_API_TOKEN": TOKEN, "WOOCOMMERCE_URL": "https://shop.example.nl"},
        actor=ACTOR,
    )
    async with sessions() as session:
        rows = {row.name: row for row in (await session.scalars(select(StoredSetting))).all()}

    assert TOKEN not in rows["MONEYBIRD_API_TOKEN"].value
    assert rows["MONEYBIRD_API_TOKEN"].sealed
    assert rows["WOOCOMMERCE_URL"].value == "https://shop.example.nl"  # not a secret
    assert (await _stored(sessions, base))["MONEYBIRD_API_TOKEN"] == TOKEN


async def test_a_changed_secret_key_is_named_instead_of_reading_garbage(
    sessions: async_sessionmaker[AsyncSession], base: Settings, database_url: str
) -> None:
    await write_settings(sessions, base=base, values={"MONEYBIRD_API_TOKEN": TOKEN}, actor=ACTOR)
    other = base_settings(database_url, secret_key="0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e")

    with pytest.raises(SecretKeyError) as refused:
        await _stored(sessions, other)
    assert "SECRET_KEY" in refused.value.problems
    assert "changed" in refused.value.problems["SECRET_KEY"]
    missing = base_settings(database_url, secret_key="")
    with pytest.raises(SecretKeyError):
        await _stored(sessions, missing)


async def test_a_sealed_value_moved_to_another_setting_does_not_open(
    sessions: async_sessionmaker[AsyncSession], base: Settings
) -> None:
    await write_settings(
        sessions,
        base=base,
        values={"MONEYBIRD_API_TOKEN": TOKEN, "WOOCOMMERCE_WEBHOOK_SECRET": "hook-secret-a8f3c2e9d1b7"},
        actor=ACTOR,
    )
    async with sessions() as session, session.begin():
        token_row = await session.get(StoredSetting, (1, "MONEYBIRD_API_TOKEN"))
        hook_row = await session.get(StoredSetting, (1, "WOOCOMMERCE_WEBHOOK_SECRET"))
        assert token_row is not None
        assert hook_row is not None
        hook_row.value = token_row.value

    with pytest.raises(SecretKeyError):
        await _stored(sessions, base)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "missing"),
        ("short-key-1234", "too short"),
        ("abababababababababababababababababababab", "too predictable"),
        ("change-me", "too short"),
    ],
)
async def test_a_secret_is_not_stored_under_a_weak_or_missing_key(
    sessions: async_sessionmaker[AsyncSession], database_url: str, key: str, why: str
) -> None:
    weak = base_settings(database_url, secret_key=key)

    with pytest.raises(SecretKeyError) as refused:
        await write_settings(sessions, base=weak, values={"MONEYBIRD_API_TOKEN": TOKEN}, actor=ACTOR)

    assert why in refused.value.problems["SECRET_KEY"]
    assert "openssl rand -hex 32" in refused.value.problems["SECRET_KEY"]
    async with sessions() as session:
        assert await read_version(session) == 0
        assert (await session.scalars(select(StoredSetting))).all() == []
    # Settings that are not secrets need no key.
    await write_settings(sessions, base=weak, values={"INVOICE_KIND": "external_sales_invoice"}, actor=ACTOR)
    assert (await _stored(sessions, weak)) == {"INVOICE_KIND": "external_sales_invoice"}


def test_a_strong_key_is_accepted_and_round_trips() -> None:
    assert secret_key_problem(SECRET_KEY) is None
    box = SecretBox(SECRET_KEY)
    sealed = box.seal("cs_secret", aad="connection 1 WOOCOMMERCE_CONSUMER_SECRET")
    assert sealed != box.seal("cs_secret", aad="connection 1 WOOCOMMERCE_CONSUMER_SECRET")  # fresh nonce
    assert box.open(sealed, aad="connection 1 WOOCOMMERCE_CONSUMER_SECRET") == "cs_secret"


# ── bad input changes nothing ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONEYBIRD_ADMINISTRATION_ID", "my-shop"),
        ("WOOCOMMERCE_URL", "shop.example.nl"),
        ("MONEYBIRD_TAX_RATES", '{"21": "not-an-id"}'),
        ("INVOICE_KIND", "estimate"),
        ("REDIS_URL", "redis://elsewhere:6379/0"),
    ],
)
async def test_a_malformed_or_foreign_setting_is_refused_by_name_and_nothing_is_written(
    sessions: async_sessionmaker[AsyncSession], base: Settings, name: str, value: str
) -> None:
    with pytest.raises(StoreRefused) as refused:
        await write_settings(
            sessions, base=base, values={name: value, "MONEYBIRD_API_TOKEN": TOKEN}, actor=ACTOR
        )

    assert name in refused.value.problems
    async with sessions() as session:
        assert await read_version(session) == 0
        assert (await session.scalars(select(StoredSetting))).all() == []
        assert list(await recent_changes(session)) == []


# ── the audit trail ──────────────────────────────────────────────────────────────────────────


async def test_every_change_is_recorded_with_who_and_which_but_never_the_value(
    sessions: async_sessionmaker[AsyncSession], base: Settings
) -> None:
    changed = await write_settings(
        sessions,
        base=base,
        values={"MONEYBIRD_API_TOKEN": TOKEN, "MONEYBIRD_ADMINISTRATION_ID": "123456789012345678"},
        actor=ACTOR,
    )
    unchanged = await write_settings(
        sessions, base=base, values={"MONEYBIRD_API_TOKEN": TOKEN}, actor="someone else"
    )
    cleared = await write_settings(sessions, base=base, values={"MONEYBIRD_API_TOKEN": None}, actor="cli")

    assert sorted(changed) == ["MONEYBIRD_ADMINISTRATION_ID", "MONEYBIRD_API_TOKEN"]
    assert unchanged == []
    assert cleared == ["MONEYBIRD_API_TOKEN"]
    async with sessions() as session:
        changes = list(await recent_changes(session))
        dump = (await session.execute(text("SELECT * FROM settings_changes"))).all()
        version = await read_version(session)
    assert [(c.name, c.action, c.actor) for c in changes] == [
        ("MONEYBIRD_API_TOKEN", "cleared", "cli"),
        ("MONEYBIRD_ADMINISTRATION_ID", "set", ACTOR),
        ("MONEYBIRD_API_TOKEN", "set", ACTOR),
    ]
    assert all(isinstance(change, SettingChange) and change.at is not None for change in changes)
    assert not any(TOKEN in str(cell) or "123456789012345678" in str(cell) for row in dump for cell in row)
    assert version == 2  # the unchanged write did not move it


# ── running processes pick a change up ───────────────────────────────────────────────────────


@pytest.fixture
async def unconfigured_web(base: Settings, redis: ArqRedis) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(base)
    async with app.router.lifespan_context(app):
        app.state.woobird.live.check_every = 0.0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            yield client, app.state.woobird


async def test_the_web_process_uses_a_stored_webhook_secret_without_a_restart(
    unconfigured_web: tuple[httpx.AsyncClient, Any],
    sessions: async_sessionmaker[AsyncSession],
    base: Settings,
) -> None:
    client, _ = unconfigured_web
    secret = "stored-hook-secret-4c9e1a7f"
    body = wc_body(order_document(5001))

    before = await client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=secret))
    # Another process (the wizard on another dyno) stores it; this one never restarts.
    await write_settings(sessions, base=base, values={"WOOCOMMERCE_WEBHOOK_SECRET": secret}, actor=ACTOR)
    after = await client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=secret))

    assert before.status_code == 401
    assert "no webhook secret" in before.text
    assert after.status_code == 200, after.text  # verified and read (paid before SYNC_SINCE)
    assert after.json()["order_id"] == 5001


async def test_the_web_process_keeps_its_settings_when_a_reload_fails(
    unconfigured_web: tuple[httpx.AsyncClient, Any],
    sessions: async_sessionmaker[AsyncSession],
    base: Settings,
) -> None:
    _, state = unconfigured_web
    await write_settings(sessions, base=base, values={"MONEYBIRD_API_TOKEN": TOKEN}, actor=ACTOR)
    await state.refresh_settings()
    assert state.settings.moneybird_api_token.get_secret_value() == TOKEN
    state.live.base = base_settings(
        base.database_url, secret_key="f" * 8 + "0123456789abcdefghijklmnopqrstuv"
    )
    await write_settings(sessions, base=base, values={"INVOICE_EXACT_VAT": "true"}, actor=ACTOR)

    await state.refresh_settings()

    assert state.settings.moneybird_api_token.get_secret_value() == TOKEN
    assert state.settings.invoice_exact_vat is False


def _complete(database_url: str) -> dict[str, str]:
    return {
        "WOOCOMMERCE_URL": "https://shop.test",
        "WOOCOMMERCE_CONSUMER_KEY": "ck_" + "a1" * 20,
        "WOOCOMMERCE_CONSUMER_SECRET": "cs_" + "b2" * 20,
        "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MONEYBIRD_API_TOKEN": TOKEN,
        "MONEYBIRD_ADMINISTRATION_ID": "123456789012345678",
    }


async def test_the_worker_waits_for_set_up_then_builds_services_from_the_store(
    sessions: async_sessionmaker[AsyncSession], base: Settings, redis: ArqRedis
) -> None:
    live = LiveSettings(base, sessions, check_every=0.0)
    await live.start()
    ctx: dict[str, Any] = {"redis": redis, "live_settings": live, "retired_services": [], "services": None}
    ran: list[str] = []

    async def job(ctx: dict[str, Any], order_id: int) -> str:
        ran.append(ctx["services"].moneybird.administration_id)
        return "booked"

    with pytest.raises(Retry):
        await when_set_up(job)(ctx, 1)
    assert await when_set_up(job, wait_seconds=None)(ctx, 1) == "woobird is not set up yet"

    await write_settings(sessions, base=base, values=_complete(base.database_url), actor=ACTOR)
    assert await when_set_up(job)(ctx, 1) == "booked"
    first = ctx["services"]
    await write_settings(
        sessions, base=base, values={"MONEYBIRD_ADMINISTRATION_ID": "987654321098765432"}, actor=ACTOR
    )
    assert await when_set_up(job)(ctx, 1) == "booked"

    assert ran == ["123456789012345678", "987654321098765432"]
    assert ctx["services"] is not first
    assert [services for _, services in ctx["retired_services"]] == [first]  # closed after the timeout
    assert await current_services(ctx) is ctx["services"]
    for services in (ctx["services"], first):
        assert services is not None
        await services.aclose()


async def test_the_dashboard_shows_each_settings_source_masked_secrets_and_the_changes(
    unconfigured_web: tuple[httpx.AsyncClient, Any],
    sessions: async_sessionmaker[AsyncSession],
    base: Settings,
) -> None:
    client, _ = unconfigured_web
    await write_settings(
        sessions,
        base=base,
        values={"MONEYBIRD_API_TOKEN": TOKEN, "INVOICE_KIND": "external_sales_invoice"},
        actor=ACTOR,
    )
    signed_in = await client.post("/admin/login", data={"token": base.admin_token.get_secret_value()})
    assert signed_in.status_code == 303

    page = (await client.get("/admin/settings")).text

    assert 'data-setting="MONEYBIRD_API_TOKEN" data-source="wizard"' in page
    assert 'data-setting="ADMIN_TOKEN" data-source="environment"' in page
    assert 'data-setting="MONEYBIRD_WORKFLOW_ID" data-source="default"' in page
    assert "external_sales_invoice" in page
    assert TOKEN not in page
    assert f"…{TOKEN[-4:]}" in page
    assert SECRET_KEY not in page
    assert SECRET_KEY[-4:] not in page
    assert page.count('data-change="') == 2
    assert ACTOR in page


def test_an_environment_variable_wins_over_the_stored_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONEYBIRD_WORKFLOW_ID", "111")
    stored = {"MONEYBIRD_WORKFLOW_ID": "222", "MONEYBIRD_DOCUMENT_STYLE_ID": "333"}

    with stored_values(stored):
        settings = load_settings(_env_file=None)

    assert settings.moneybird_workflow_id == "111"
    assert settings.moneybird_document_style_id == "333"


async def test_booking_waits_while_the_wizard_has_not_decided_from_when_to_book(
    sessions: async_sessionmaker[AsyncSession], base: Settings, redis: ArqRedis
) -> None:
    await start(sessions, base)  # the wizard opened on a deployment without accounts
    await write_settings(sessions, base=base, values=_complete(base.database_url), actor=ACTOR)
    await record_step(sessions, "bookkeeping", "saved")
    live = LiveSettings(base, sessions, check_every=0.0)
    await live.start()
    ctx: dict[str, Any] = {"redis": redis, "live_settings": live, "retired_services": [], "services": None}

    async def job(ctx: dict[str, Any], order_id: int) -> str:
        return "booked"

    await record_step(sessions, "products", "skipped")  # a change the worker notices at its next job
    with pytest.raises(Retry):  # every account is there, but the history step has not been done
        await when_set_up(job)(ctx, 1)
    await record_step(sessions, "history", "from_now")
    assert await when_set_up(job)(ctx, 1) == "booked"
    await ctx["services"].aclose()


async def test_opening_the_wizard_on_a_configured_deployment_keeps_it_booking(
    sessions: async_sessionmaker[AsyncSession], base: Settings
) -> None:
    configured = with_stored(base, _complete(base.database_url))

    await start(sessions, configured)
    await record_step(sessions, "shop", "verified")

    async with sessions() as session:
        progress = (await read_stored(session, base)).progress
    assert booking_may_start(progress)
    assert "started" not in progress
