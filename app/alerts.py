"""Telling a person when woobird needs one: a chat webhook and/or an e-mail, once per cause.

An alert goes out for an order that failed for good, for a WooCommerce webhook found disabled, and
for reconciliation that has not succeeded for three intervals. Each cause (`order-failed:1042`,
`webhook-disabled:7`, `reconcile-stale`) claims a Redis key with SET NX before anything is sent,
so a hundred workers noticing the same thing send one message; the key expires after a day, and a
cause that heals releases it so its next occurrence is news again.

Alerts are written in the LANGUAGE setting's language: a `Message` is translated when it is sent
(the log lines about it stay English).

Alerting never raises into the caller: a booking that failed must still be written down even when
Slack is away. Messages carry the order number and the reason, never the customer, and are
scrubbed of credentials (app.redaction). The reason can quote the shop (a product name, a
customer's note in an error), so the chat text is escaped as Slack asks — `&`, `<` and `>` — and
shop text can never become a `<!channel>` mention or a disguised `<https://…|link>`.
"""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import structlog

from app import schema
from app.booking import ledger
from app.connection_scope import connection_of_sessions
from app.connections import connection_label
from app.constants import ALERT_SENT_PREFIX, ENVIRONMENT_CONNECTION_ID
from app.i18n import WORDS, Message, shown
from app.queue import connection_key
from app.redaction import scrub
from app.settings import Settings
from app.tls import client_tls_context

log = structlog.get_logger("woobird.alerts")

ALERT_TTL_SECONDS = 24 * 3600
SEND_TIMEOUT_SECONDS = 10.0
# Every failure kind app.booking.orders records needs a person: a refused plan, a rejection by
# Moneybird, a total mismatch, refused access, or a job that ran out of tries.
FOR_GOOD_KINDS = frozenset({"refused", "rejected", "mismatch", "configuration", "exhausted", "shop"})
STALE_AFTER_INTERVALS = 3
RECONCILE_STALE = "reconcile-stale"


class _Redis(Protocol):
    async def set(self, name: str, value: str, *, ex: int | None = None, nx: bool = False) -> Any: ...

    async def delete(self, *names: str) -> Any: ...


class AlertTarget(Protocol):
    """Services (the worker), AppState (the web process), or anything with these two."""

    @property
    def settings(self) -> Settings: ...

    @property
    def redis(self) -> Any: ...

    @property
    def sessions(self) -> Any: ...


def alert_key(cause: str, *, connection_id: int = ENVIRONMENT_CONNECTION_ID) -> str:
    """The key that remembers an alert was sent: one per connection and cause."""
    return connection_key(f"{ALERT_SENT_PREFIX}{cause}", connection_id)


def channels(settings: Settings) -> list[str]:
    found = []
    if settings.alert_webhook_url:
        found.append("webhook")
    if settings.alert_email_to and settings.smtp_host and settings.smtp_from:
        found.append("email")
    return found


async def alert(target: AlertTarget, *, cause: str, message: str) -> bool:
    """Send `message` once for `cause`; True when at least one channel took it."""
    try:
        return await _alert(target, cause=cause, message=message)
    except Exception as exc:  # an alert must never turn one failure into two
        log.error("alert failed", cause=cause, error=f"{type(exc).__name__}: {exc}")
        return False


async def _alert(target: AlertTarget, *, cause: str, message: str) -> bool:
    settings = target.settings
    if not channels(settings):
        log.info("alert not sent: no ALERT_WEBHOOK_URL or ALERT_EMAIL_TO configured", cause=cause)
        return False
    key = alert_key(cause, connection_id=connection_of_sessions(target.sessions))
    if not await _claim(target.redis, key, cause=cause):
        log.debug("alert already sent", cause=cause)
        return False
    text = _text(settings, message, connection=await _connection_named(target))
    delivered = await _deliver(settings, cause=cause, text=text)
    if not delivered:
        # Nobody heard it: let the next occurrence try again instead of staying silent for a day.
        await _release(target.redis, key, cause=cause)
    return delivered


async def _claim(redis: _Redis, key: str, *, cause: str) -> bool:
    try:
        claimed = await redis.set(key, schema.utcnow().isoformat(), ex=ALERT_TTL_SECONDS, nx=True)
    except Exception as exc:
        # Without Redis there is no de-duplication; a repeated alert beats a missing one.
        log.warning("alert de-duplication unavailable", cause=cause, error=f"{type(exc).__name__}: {exc}")
        return True
    return bool(claimed)


async def _release(redis: _Redis, key: str, *, cause: str) -> None:
    try:
        await redis.delete(key)
    except Exception as exc:
        log.warning("could not release alert key", cause=cause, error=f"{type(exc).__name__}: {exc}")


async def clear_alert(target: AlertTarget, *, cause: str) -> None:
    """Forget that `cause` was alerted: it healed, or a person asked for another try."""
    key = alert_key(cause, connection_id=connection_of_sessions(target.sessions))
    await _release(target.redis, key, cause=cause)


async def _connection_named(target: AlertTarget) -> str | None:
    """The name the alert gives its connection (None: connection 1 while it is the only one)."""
    if target.sessions is None:  # a holder without a ledger: the environment's
        return None
    try:
        async with target.sessions() as session:
            return await connection_label(session, connection_of_sessions(target.sessions))
    except Exception as exc:  # the ledger away: the id still says whose it is
        log.warning("alert without the connection's name", error=type(exc).__name__)
        connection_id = connection_of_sessions(target.sessions)
        return None if connection_id == ENVIRONMENT_CONNECTION_ID else str(connection_id)


def _text(settings: Settings, message: str, *, connection: str | None) -> str:
    prefix = "[SANDBOX] woobird" if settings.woobird_sandbox else "woobird"
    if connection is not None:
        named = shown(Message("connection %(name)s", name=connection), settings.language)
        prefix = f"{prefix} ({named})"
    return f"{prefix}: {scrub(shown(message, settings.language))}"


def chat_escape(text: str) -> str:
    """Slack's three control characters as entities; Teams renders the entities as the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def _deliver(settings: Settings, *, cause: str, text: str) -> bool:
    delivered = False
    if settings.alert_webhook_url:
        delivered |= await _post_webhook(settings.alert_webhook_url, cause=cause, text=text)
    if "email" in channels(settings):
        delivered |= await _send_email(settings, cause=cause, text=text)
    return delivered


async def _post_webhook(url: str, *, cause: str, text: str) -> bool:
    # Slack's and Teams' incoming webhooks both accept {"text": ...}.
    try:
        async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, verify=client_tls_context()) as client:
            response = await client.post(url, json={"text": chat_escape(text)})
    except httpx.HTTPError as exc:
        log.error("alert webhook unreachable", cause=cause, error=f"{type(exc).__name__}: {exc}")
        return False
    if not response.is_success:
        log.error("alert webhook refused the alert", cause=cause, status=response.status_code)
        return False
    log.info("alert sent", cause=cause, channel="webhook")
    return True


async def _send_email(settings: Settings, *, cause: str, text: str) -> bool:
    try:
        await asyncio.to_thread(_smtp_send, settings, text)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("alert e-mail not sent", cause=cause, error=f"{type(exc).__name__}: {exc}")
        return False
    log.info("alert sent", cause=cause, channel="email")
    return True


def _smtp_send(settings: Settings, text: str) -> None:
    host, sender, to = settings.smtp_host, settings.smtp_from, settings.alert_email_to
    if not (host and sender and to):
        raise smtplib.SMTPException("SMTP_HOST, SMTP_FROM and ALERT_EMAIL_TO are all needed")
    email = EmailMessage()
    email["Subject"] = text.splitlines()[0][:120]
    email["From"] = sender
    email["To"] = to
    email.set_content(text + "\n")
    with smtplib.SMTP(host, settings.smtp_port, timeout=SEND_TIMEOUT_SECONDS) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(email)


# ── the causes ───────────────────────────────────────────────────────────────────────────────


async def alert_order_failed(target: AlertTarget, *, order_id: int, kind: str, message: str) -> bool:
    """One alert per order that needs a person; passing failures are retried, not alerted."""
    if kind not in FOR_GOOD_KINDS:
        return False
    return await alert(
        target,
        cause=f"order-failed:{order_id}",
        message=Message(
            "order %(order)s could not be booked in Moneybird (%(kind)s): %(reason)s",
            order=order_id,
            kind=Message(WORDS.get(kind, kind)),
            reason=message,
        ),
    )


class _WithSessions(AlertTarget, Protocol):
    @property
    def sessions(self) -> Any: ...


async def check_reconcile_staleness(services: _WithSessions, *, now: datetime | None = None) -> bool:
    """Alert once when reconciliation has not succeeded for three intervals; True when alerted.

    Before the first success the clock starts at woobird's first run, so a reconciliation that
    never worked is noticed too. A fresh success releases the cause for the next time.
    """
    now = now or schema.utcnow()
    interval = services.settings.reconcile_interval_seconds
    async with services.sessions() as session:
        last = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
        started = await ledger.get_state(session, ledger.FIRST_RUN_AT)
    moment = parse_moment(last) or parse_moment(started)
    if moment is None:
        return False
    age = now - moment
    if age <= timedelta(seconds=STALE_AFTER_INTERVALS * interval):
        if last is not None:
            await clear_alert(services, cause=RECONCILE_STALE)
        return False
    numbers = {
        "minutes": int(age.total_seconds() // 60),
        "intervals": STALE_AFTER_INTERVALS,
        "interval": interval,
    }
    message = (
        Message(
            "reconciliation has not succeeded since %(moment)s (%(minutes)s minutes, over %(intervals)s "
            "intervals of %(interval)s s): orders whose webhook was lost are not being picked up; see the "
            "worker's log",
            moment=moment,
            **numbers,
        )
        if last
        else Message(
            "reconciliation has never succeeded (%(minutes)s minutes, over %(intervals)s intervals of "
            "%(interval)s s): orders whose webhook was lost are not being picked up; see the worker's log",
            **numbers,
        )
    )
    return await alert(services, cause=RECONCILE_STALE, message=message)


def parse_moment(value: str | None) -> datetime | None:
    """A service_state timestamp: ISO 8601, or Unix seconds; None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
