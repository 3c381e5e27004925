"""Alerts: one message per cause, to a Slack/Teams-style webhook and/or by e-mail, never raising."""

from __future__ import annotations

import asyncio
import json
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schema
from app.alerts import (
    FOR_GOOD_KINDS,
    RECONCILE_STALE,
    alert,
    alert_key,
    alert_order_failed,
    check_reconcile_staleness,
)
from app.booking import ledger
from app.db import transaction
from app.i18n import word
from app.settings import Settings
from tests.conftest import make_settings

HOOK = "https://hooks.slack.test/services/T000/B000/abc"


@dataclass
class Target:
    settings: Settings
    redis: Any
    sessions: Any = None


def _settings(url: str, **overrides: Any) -> Settings:
    return make_settings(database_url=url, **overrides)


@pytest.fixture
def hook() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))


def _texts(route: Any) -> list[str]:
    return [json.loads(call.request.content)["text"] for call in route.calls]


async def test_one_alert_per_cause(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)

    first = await alert(target, cause="order-failed:1042", message="order 1042 failed")
    second = await alert(target, cause="order-failed:1042", message="order 1042 failed again")
    other = await alert(target, cause="order-failed:1043", message="order 1043 failed")

    assert (first, second, other) == (True, False, True)
    assert _texts(hook) == ["woobird: order 1042 failed", "woobird: order 1043 failed"]
    assert hook.calls[0].request.headers["content-type"] == "application/json"
    assert 0 < await redis.ttl(alert_key("order-failed:1042")) <= 24 * 3600


async def test_concurrent_alerts_for_one_cause_send_one_message(
    sqlite_url: str, redis: ArqRedis, hook: Any
) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    results = await asyncio.gather(
        *(alert(target, cause="reconcile-stale", message="stale") for _ in range(20))
    )
    assert sorted(results) == [False] * 19 + [True]
    assert hook.call_count == 1


async def test_an_alert_nobody_received_is_sent_next_time(sqlite_url: str, redis: ArqRedis) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    with respx.mock() as mock:
        route = mock.post(HOOK)
        route.side_effect = [
            httpx.Response(500),
            httpx.ConnectError("refused"),
            httpx.Response(200),
            httpx.Response(200),
        ]
        outcomes = [await alert(target, cause="webhook-disabled:7", message="disabled") for _ in range(4)]
    assert outcomes == [False, False, True, False]
    assert route.call_count == 3


async def test_nothing_configured_sends_nothing_and_claims_nothing(sqlite_url: str, redis: ArqRedis) -> None:
    target = Target(_settings(sqlite_url), redis)
    with respx.mock() as mock:
        assert not await alert(target, cause="order-failed:1", message="x")
        assert not mock.calls
    assert not await redis.exists(alert_key("order-failed:1"))


class _BrokenRedis:
    async def set(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is away")

    async def delete(self, *names: str) -> Any:
        raise ConnectionError("Redis is away")


async def test_without_redis_the_alert_still_goes_out(sqlite_url: str, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), _BrokenRedis())
    assert await alert(target, cause="order-failed:9", message="failed")
    assert hook.call_count == 1


class SmtpRecorder:
    """Stands in for smtplib.SMTP: records what woobird asks of the mail server."""

    sessions: list[SmtpRecorder] = []
    fail_with: Exception | None = None

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.calls: list[str] = []
        self.sent: list[EmailMessage] = []
        SmtpRecorder.sessions.append(self)

    def __enter__(self) -> SmtpRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("quit")

    def starttls(self) -> None:
        self.calls.append("starttls")

    def login(self, user: str, password: str) -> None:
        self.calls.append(f"login {user}:{password}")

    def send_message(self, message: EmailMessage) -> None:
        if SmtpRecorder.fail_with is not None:
            raise SmtpRecorder.fail_with
        self.calls.append("send")
        self.sent.append(message)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> type[SmtpRecorder]:
    SmtpRecorder.sessions = []
    SmtpRecorder.fail_with = None
    monkeypatch.setattr(smtplib, "SMTP", SmtpRecorder)
    return SmtpRecorder


def _mail_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "alert_email_to": "shop-owner@example.nl",
        "smtp_host": "smtp.example.test",
        "smtp_port": 2525,
        "smtp_username": "woobird",
        "smtp_password": "smtp-pass-5e1",
        "smtp_from": "woobird@example.nl",
    }
    values.update(overrides)
    return _settings(url, **values)


async def test_email_alert_once_per_cause(sqlite_url: str, redis: ArqRedis, smtp: type[SmtpRecorder]) -> None:
    target = Target(_mail_settings(sqlite_url), redis)

    assert await alert(target, cause="reconcile-stale", message="reconciliation is stale")
    assert not await alert(target, cause="reconcile-stale", message="reconciliation is stale")

    assert len(smtp.sessions) == 1
    session = smtp.sessions[0]
    assert session.address == ("smtp.example.test", 2525)
    assert session.calls == ["starttls", "login woobird:smtp-pass-5e1", "send", "quit"]
    message = session.sent[0]
    assert message["To"] == "shop-owner@example.nl"
    assert message["From"] == "woobird@example.nl"
    assert message["Subject"] == "woobird: reconciliation is stale"


async def test_email_without_starttls_or_login(
    sqlite_url: str, redis: ArqRedis, smtp: type[SmtpRecorder]
) -> None:
    settings = _mail_settings(sqlite_url, smtp_starttls=False, smtp_username=None, smtp_password=None)
    assert await alert(Target(settings, redis), cause="x", message="y")
    assert smtp.sessions[0].calls == ["send", "quit"]


async def test_a_failing_mail_server_does_not_raise(
    sqlite_url: str, redis: ArqRedis, smtp: type[SmtpRecorder], hook: Any
) -> None:
    smtp.fail_with = smtplib.SMTPRecipientsRefused({})
    target = Target(_mail_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    # The webhook still took it, so it counts as delivered and is not repeated.
    assert await alert(target, cause="order-failed:5", message="failed")
    assert not await alert(target, cause="order-failed:5", message="failed")
    assert hook.call_count == 1


@pytest.mark.parametrize("kind", sorted(FOR_GOOD_KINDS))
async def test_every_failure_that_needs_a_person_alerts_once(
    sqlite_url: str, redis: ArqRedis, hook: Any, kind: str
) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    reason = "Moneybird rejected the order: contact jan.jansen@example.nl is archived"
    assert await alert_order_failed(target, order_id=1042, kind=kind, message=reason)
    assert not await alert_order_failed(target, order_id=1042, kind=kind, message=reason)
    (text,) = _texts(hook)
    assert "order 1042" in text
    assert word(kind, "en") in text  # the failure in words: "total differs", not "mismatch"
    assert "jan.jansen@example.nl" not in text  # the reason, not the customer
    assert "j…@example.nl" in text


async def test_a_passing_failure_is_not_alerted(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    assert not await alert_order_failed(target, order_id=7, kind="transient", message="timeout")
    assert hook.call_count == 0


async def test_sandbox_alerts_say_so(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK, woobird_sandbox=True), redis)
    assert await alert(target, cause="webhook-reactivated:7", message="webhook 7 was switched back on")
    assert _texts(hook) == ["[SANDBOX] woobird: webhook 7 was switched back on"]


async def _set(sessions: async_sessionmaker[AsyncSession], key: str, value: str) -> None:
    async with transaction(sessions) as session:
        await ledger.set_state(session, key, value)


async def test_reconcile_staleness_alerts_once_and_rearms(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, hook: Any
) -> None:
    settings = settings.model_copy(update={"alert_webhook_url": HOOK})
    target = Target(settings, redis, sessions)
    interval = timedelta(seconds=settings.reconcile_interval_seconds)
    now = schema.utcnow()

    assert not await check_reconcile_staleness(target, now=now)  # nothing known yet
    await _set(
        sessions, ledger.RECONCILE_LAST_SUCCESS, (now - 3 * interval + timedelta(seconds=5)).isoformat()
    )
    assert not await check_reconcile_staleness(target, now=now)
    await _set(
        sessions, ledger.RECONCILE_LAST_SUCCESS, (now - 3 * interval - timedelta(seconds=5)).isoformat()
    )
    assert await check_reconcile_staleness(target, now=now)
    assert not await check_reconcile_staleness(target, now=now + interval)
    assert hook.call_count == 1
    assert "reconciliation has not succeeded since" in _texts(hook)[0]

    await _set(sessions, ledger.RECONCILE_LAST_SUCCESS, now.isoformat())
    assert not await check_reconcile_staleness(target, now=now)
    assert not await redis.exists(alert_key(RECONCILE_STALE))
    assert await check_reconcile_staleness(target, now=now + 4 * interval)
    assert hook.call_count == 2


async def test_reconciliation_that_never_succeeded_is_stale_too(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, hook: Any
) -> None:
    settings = settings.model_copy(update={"alert_webhook_url": HOOK})
    now = schema.utcnow()
    await _set(sessions, ledger.FIRST_RUN_AT, (now - timedelta(hours=2)).isoformat())
    assert await check_reconcile_staleness(Target(settings, redis, sessions), now=now)
    assert "reconciliation has never succeeded" in _texts(hook)[0]


async def test_shop_text_cannot_mention_everyone_or_hide_a_link(
    sqlite_url: str, redis: ArqRedis, hook: Any
) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    reason = "product <!channel> & <https://evil.test/login|Moneybird login> refused"
    assert await alert_order_failed(target, order_id=1042, kind="rejected", message=reason)
    (text,) = _texts(hook)
    assert "<!channel>" not in text
    assert "<https://evil.test" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.test/login|Moneybird login&gt;" in text


async def test_alert_text_carries_no_credentials(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK), redis)
    secret = "cs_" + "5a" * 20
    await alert(
        target, cause="order-failed:7", message=f"redirected to http://shop.test/x?consumer_secret={secret}"
    )
    (text,) = _texts(hook)
    assert secret not in text
    assert "http://shop.test/x?[redacted]" in text


# ── in the LANGUAGE setting's language ────────────────────────────────────────────────────────


async def test_a_failed_order_is_alerted_in_dutch(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK, language="nl"), redis)
    reason = "Moneybird rejected the order: contact jan.jansen@example.nl is archived"
    assert await alert_order_failed(target, order_id=1042, kind="mismatch", message=reason)
    (text,) = _texts(hook)
    assert text.startswith(
        "woobird: bestelling 1042 kon niet in Moneybird worden geboekt (totaal wijkt af): "
    )
    assert "j…@example.nl" in text  # scrubbed in Dutch too
    assert "jan.jansen" not in text


async def test_a_failed_order_is_alerted_in_english(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK, language="en"), redis)
    assert await alert_order_failed(target, order_id=1042, kind="mismatch", message="total 36.01 ≠ 36.00")
    assert _texts(hook) == [
        "woobird: order 1042 could not be booked in Moneybird (total differs): total 36.01 ≠ 36.00"
    ]


async def test_stale_reconciliation_is_alerted_in_dutch_with_a_dutch_date(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, hook: Any
) -> None:
    settings = settings.model_copy(update={"alert_webhook_url": HOOK, "language": "nl"})
    last = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    await _set(sessions, ledger.RECONCILE_LAST_SUCCESS, last.isoformat())
    assert await check_reconcile_staleness(Target(settings, redis, sessions), now=last + timedelta(hours=2))
    (text,) = _texts(hook)
    # 10:15 UTC is 11:15 in Amsterdam in March; the month as Dutch writes it.
    assert text.startswith(
        "woobird: de controleronde is niet meer gelukt sinds 2 maart 2026 11:15 (120 minuten"
    )
    assert "zie het log van de worker" in text


async def test_an_email_alert_in_dutch(sqlite_url: str, redis: ArqRedis, smtp: type[SmtpRecorder]) -> None:
    target = Target(_mail_settings(sqlite_url, language="nl"), redis)
    assert await alert_order_failed(target, order_id=7, kind="refused", message="no tax rate for 9 %")
    (message,) = smtp.sessions[0].sent
    assert (
        message["Subject"]
        == "woobird: bestelling 7 kon niet in Moneybird worden geboekt (geweigerd): no tax rate for 9 %"
    )


async def test_a_recorded_refusal_is_alerted_in_dutch(sqlite_url: str, redis: ArqRedis, hook: Any) -> None:
    target = Target(_settings(sqlite_url, alert_webhook_url=HOOK, language="nl"), redis)
    reason = (
        "Order #1204 was not booked: Moneybird has no active sales-invoice tax rate for the 9 % rate. "
        "To fix: create that tax rate in Moneybird, or "
        'set MONEYBIRD_TAX_RATES={"9": "<Moneybird tax rate id>"}.'
    )
    assert await alert_order_failed(target, order_id=1204, kind="refused", message=reason)
    (text,) = _texts(hook)
    assert (
        "Bestelling #1204 is niet geboekt: Moneybird heeft geen actief btw-tarief voor verkoopfacturen"
        in text
    )
    assert "voor het tarief van 9 %. Oplossing: maak dat btw-tarief aan in Moneybird" in text
