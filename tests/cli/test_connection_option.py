"""`--connection NAME` on every command that acts on one shop: an unknown name ends the command with
a sentence naming `woobird connections list` and changes nothing; a known one acts on that
connection — its report is named after it, and `webhook install` registers its own Moneybird
webhook at its own URL and stores both new secrets for it (never in .env)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from app.booking import ledger
from app.constants import MONEYBIRD_WEBHOOK_PATH, MONEYBIRD_WEBHOOK_REGISTERING_KEY, QUEUE_NAME, WEBHOOK_PATH
from app.db import create_engine, session_factory, transaction
from app.settings import load_settings, normalise_database_url
from app.settings_live import load_with_store
from app.settings_store import ensure_connection, write_settings
from tests.test_cli import PUBLIC_URL, SHOP_URL, Fakes, fakes, queue_redis  # noqa: F401  (the fixtures)

SECRET_KEY = "8d2f6b0e4a9c1d7e3f5a2b8c6d0e4f9a1b3c5d7e"
# Every command that acts on one shop, with the arguments it needs besides --connection.
ONE_SHOP_COMMANDS = [
    ("check",),
    ("webhook", "install"),
    ("backfill", "--since", "2026-01-01"),
    ("status",),
    ("retry", "--failed"),
    ("report", "--month", "2026-03"),
    ("verify", "--month", "2026-03"),
    ("products", "--dry-run"),
    ("sync", "1042", "--dry-run"),
]


@pytest.mark.parametrize("command", ONE_SHOP_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_an_unknown_connection_ends_every_one_shop_command_naming_the_list(
    fakes: Fakes,  # noqa: F811
    queue_redis: sync_redis.Redis,  # noqa: F811
    command: tuple[str, ...],
) -> None:
    result = fakes.invoke(*command, "--connection", "nowhere")

    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "there is no connection 'nowhere': `woobird connections list` shows them" in said
    assert queue_redis.zcard(QUEUE_NAME) == 0
    assert fakes.shop.webhooks == {}
    assert fakes.moneybird.webhooks == {}


def _add_second(wired: Fakes, database_url: str) -> None:
    """Connection 2, "second": the same fake shop and administration, its own stored secrets."""
    wired.monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    environment = load_settings()

    async def add() -> None:
        engine = create_engine(normalise_database_url(database_url))
        try:
            await write_settings(
                session_factory(engine),
                base=environment,
                values={
                    "WOOCOMMERCE_URL": SHOP_URL,
                    "WOOCOMMERCE_CONSUMER_KEY": wired.shop.consumer_key,
                    "WOOCOMMERCE_CONSUMER_SECRET": wired.shop.consumer_secret,
                    "MONEYBIRD_API_TOKEN": wired.moneybird.token,
                    "MONEYBIRD_ADMINISTRATION_ID": wired.moneybird.administration_id,
                    "PUBLIC_URL": PUBLIC_URL,
                },
                actor="test",
                connection_id=2,
                connection_name="second",
            )
        finally:
            await engine.dispose()

    asyncio.run(add())


def test_webhook_install_for_another_connection_registers_its_own_moneybird_webhook(
    fakes: Fakes,  # noqa: F811
    queue_redis: sync_redis.Redis,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    _add_second(fakes, database_url)
    checked: list[tuple[str, bool, bool]] = []

    def moneybirds_check(request: httpx.Request) -> httpx.Response:
        # Moneybird checks the new URL inside the create: the second connection's window is open.
        own = bool(queue_redis.exists(f"c2:{MONEYBIRD_WEBHOOK_REGISTERING_KEY}"))
        checked.append((request.url.path, own, bool(queue_redis.exists(MONEYBIRD_WEBHOOK_REGISTERING_KEY))))
        return httpx.Response(200, json={"check": "ok"})

    fakes.moneybird.push_client = httpx.AsyncClient(transport=httpx.MockTransport(moneybirds_check))
    env_file = tmp_path / ".env"
    env_before = env_file.read_text(encoding="utf-8") if env_file.exists() else None

    result = fakes.invoke("webhook", "install", "--connection", "second", OPEN_INVOICE_PAYMENT_METHODS="bacs")

    assert result.exit_code == 0, result.output
    [shop_hook] = fakes.shop.webhooks.values()
    assert shop_hook["delivery_url"] == PUBLIC_URL + WEBHOOK_PATH + "/second"
    [moneybird_hook] = fakes.moneybird.webhooks.values()
    assert moneybird_hook["url"] == PUBLIC_URL + MONEYBIRD_WEBHOOK_PATH + "/second"
    assert checked == [(MONEYBIRD_WEBHOOK_PATH + "/second", True, False)]
    assert "stored the webhooks' new secrets for connection second" in " ".join(result.output.split())
    second = load_with_store(load_settings(), connection_id=2)
    assert second.moneybird_webhook_secret is not None
    assert second.moneybird_webhook_secret.get_secret_value() == moneybird_hook["secret"]
    assert second.woocommerce_webhook_secret.get_secret_value() == shop_hook["secret"]
    # .env describes connection 1: untouched.
    assert (env_file.read_text(encoding="utf-8") if env_file.exists() else None) == env_before


def test_the_report_of_a_connection_is_its_own_and_named_after_it(
    fakes: Fakes,  # noqa: F811
    postgres_url: str,
) -> None:
    from tests.conftest import _truncate

    asyncio.run(_truncate(postgres_url))
    fakes.monkeypatch.setenv("DATABASE_URL", postgres_url)

    async def record() -> None:
        engine = create_engine(normalise_database_url(postgres_url))
        moment = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        try:
            async with transaction(session_factory(engine)) as session:
                await ensure_connection(session, 2, name="second")
            async with transaction(session_factory(engine, connection_id=2)) as session:
                await ledger.record_delivery(
                    session, order_id=1042, order_number="1042", date_modified=moment, date_paid=moment
                )
        finally:
            await engine.dispose()

    asyncio.run(record())

    second = fakes.invoke("report", "--month", "2026-03", "--connection", "second")
    first = fakes.invoke("report", "--month", "2026-03")

    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())
    assert "Month report 2026-03 of connection second" in said
    assert "waiting 1" in said
    assert "Month report 2026-03 of connection environment" in " ".join(first.output.split())
    assert "waiting 0" in " ".join(first.output.split())
