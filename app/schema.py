"""The ledger's tables: every table woobird keeps in SQL, with the states and steps its rows go through.

    orders, refunds       one row per WooCommerce order and refund: state, last step, Moneybird ids
    rebookings            one row per rebooking of an order (app.booking.rebook)
    contacts              one Moneybird contact per e-mail address (app.booking.contacts)
    ledger_events         the audit trail a bookkeeper reads on the dashboard
    findings              what woobird noticed after booking (app.booking.findings)
    service_state         small facts kept across restarts (first run, watermarks)
    connections, connection_settings, settings_changes
                          the settings the wizard stored, and who changed which (app.settings_store)

The functions that read and write them live with their concept; this module only says what is
stored, so that Alembic's migrations (migrations/) and the code have one place to agree on.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, MoneyText, ScrubbedText


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class OrderState(enum.StrEnum):
    QUEUED = "queued"  # recorded and handed to the worker
    BOOKING = "booking"  # a worker is going through the steps
    BOOKED = "booked"  # paid invoice in Moneybird
    AWAITING_PAYMENT = "awaiting_payment"  # open invoice in Moneybird, the order not paid yet
    CREDITED = "credited"  # its open invoice credited in full: the order was cancelled unpaid
    FAILED = "failed"  # needs a person: refused plan, rejected by Moneybird, total mismatch
    SKIPPED = "skipped"  # no longer qualifies (status changed back, unpaid)
    BEFORE_SINCE = "before_since"  # paid before SYNC_SINCE and not backfilled


class OrderStep(enum.StrEnum):
    """The booking steps in order; `OrderRecord.step` is the last one completed."""

    CONTACT = "contact"
    INVOICE_CREATING = "invoice_creating"  # the create was sent: it may exist even if no answer came
    INVOICE_CREATED = "invoice_created"
    INVOICE_SENT = "invoice_sent"
    PAYING = "paying"  # the payment was sent: look before paying again
    PAID = "paid"
    # Open invoices (app.booking.open_invoices): paid in Moneybird, the order is being marked paid.
    MARKING_PAID = "marking_paid"


class RefundStep(enum.StrEnum):
    """The crediting steps in order; `RefundRecord.step` is the last one written down."""

    CREDIT_CREATING = "credit_creating"  # the create was sent: it may exist even if no answer came
    CREDIT_CREATED = "credit_created"
    CREDIT_SENT = "credit_sent"
    PAYING = "paying"  # the payment was sent: look before paying again
    PAID = "paid"


class RefundState(enum.StrEnum):
    WAITING = "waiting"  # its order is not booked yet
    QUEUED = "queued"
    BOOKED = "booked"
    FAILED = "failed"
    DELETED = "deleted"  # deleted in WooCommerce after it was booked: reported, not undone


class OrderRecord(Base):
    __tablename__ = "orders"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_number: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    step: Mapped[str | None] = mapped_column(String(32), default=None)
    date_modified: Mapped[datetime] = mapped_column(UtcDateTime())
    date_paid: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    order_total: Mapped[Decimal | None] = mapped_column(MoneyText(), default=None)
    customer_email: Mapped[str | None] = mapped_column(String(320), default=None)
    contact_id: Mapped[str | None] = mapped_column(String(32), default=None)
    invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    invoice_number: Mapped[str | None] = mapped_column(String(64), default=None)
    invoice_url: Mapped[str | None] = mapped_column(Text, default=None)
    invoice_total: Mapped[Decimal | None] = mapped_column(MoneyText(), default=None)
    payment_id: Mapped[str | None] = mapped_column(String(32), default=None)
    vat_report: Mapped[str | None] = mapped_column(Text, default=None)  # JSON: per rate shop vs Moneybird
    # What the invoice booked (app.booking.fingerprint): the order version as JSON, and its digest.
    booked_version: Mapped[str | None] = mapped_column(Text, default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(32), default=None)
    # 1 for the first invoice; each rebooking (app.booking.rebook) books the next version.
    invoice_version: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(ScrubbedText, default=None)
    failure_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    booked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    def vat_differences(self) -> list[dict[str, Any]]:
        if not self.vat_report:
            return []
        report: list[dict[str, Any]] = json.loads(self.vat_report)
        return report


class RefundRecord(Base):
    __tablename__ = "refunds"

    refund_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.order_id"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    step: Mapped[str | None] = mapped_column(String(32), default=None)
    amount: Mapped[Decimal] = mapped_column(MoneyText())
    reason: Mapped[str] = mapped_column(Text, default="")
    credit_invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    credit_invoice_number: Mapped[str | None] = mapped_column(String(64), default=None)
    credit_total: Mapped[Decimal | None] = mapped_column(MoneyText(), default=None)
    payment_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # The order's invoice when the refund was credited: after a rebooking, the new one.
    credited_invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(ScrubbedText, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    booked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class ContactRecord(Base):
    """One Moneybird contact per e-mail address, ever (lower-cased); see app.booking.contacts."""

    __tablename__ = "contacts"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32))
    adopted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The shop's customer id (`woo-42`): how a registered customer's new e-mail address is told.
    customer_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    # JSON: the contact's fields as woobird last wrote or adopted them (CONTACT_UPDATES compares).
    details: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class LedgerEvent(Base):
    __tablename__ = "ledger_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigInteger, index=True)
    refund_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    step: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(ScrubbedText, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class ServiceState(Base):
    """Small facts the service keeps across restarts: first run, reconciliation watermark."""

    __tablename__ = "service_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class FindingKind(enum.StrEnum):
    ORDER_CHANGED = "order_changed"
    INVOICE_DELETED = "invoice_deleted"
    INVOICE_CHANGED = "invoice_changed"
    INVOICE_REOPENED = "invoice_reopened"
    EMAIL_CHANGED = "email_changed"
    CONTACT_REPLACED = "contact_replaced"
    # Open invoices (app.booking.open_invoices): a payment that does not settle the invoice, and an
    # open invoice credited because its order ended unpaid.
    PAYMENT_MISMATCH = "payment_mismatch"
    OPEN_INVOICE_CREDITED = "open_invoice_credited"


class FindingState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Finding(Base):
    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("kind", "subject", name="uq_findings_kind_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(160))
    state: Mapped[str] = mapped_column(String(16), index=True)
    order_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    refund_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    @property
    def cause(self) -> str:
        return alert_cause(self.kind, self.subject)


def alert_cause(kind: str, subject: str) -> str:
    return f"{kind}:{subject}"


class RebookState(enum.StrEnum):
    CREDITING = "crediting"  # the old invoice is being credited; the order is in `booking`
    BOOKING = "booking"  # credited; the order's next version is being booked
    DONE = "done"


class Rebooking(Base):
    """One rebooking of an order: the invoice it credits, its credit invoice, the version it makes."""

    __tablename__ = "rebookings"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16), index=True)
    step: Mapped[str | None] = mapped_column(String(32), default=None)
    fingerprint: Mapped[str] = mapped_column(String(32))
    old_invoice_id: Mapped[str] = mapped_column(String(32))
    old_invoice_number: Mapped[str | None] = mapped_column(String(64), default=None)
    old_total: Mapped[Decimal | None] = mapped_column(MoneyText(), default=None)
    # The contact the credit goes to: the old invoice's, or its replacement when that one is gone.
    contact_id: Mapped[str | None] = mapped_column(String(32), default=None)
    credit_invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    credit_invoice_number: Mapped[str | None] = mapped_column(String(64), default=None)
    credit_total: Mapped[Decimal | None] = mapped_column(MoneyText(), default=None)
    payment_id: Mapped[str | None] = mapped_column(String(32), default=None)
    new_invoice_id: Mapped[str | None] = mapped_column(String(32), default=None)
    new_invoice_number: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    settings_version: Mapped[int] = mapped_column(Integer, default=0)
    # The wizard's progress: JSON {"products": "skipped", …}; set_up_at once step 6 is done.
    wizard_progress: Mapped[str] = mapped_column(Text, default="{}")
    set_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StoredSetting(Base):
    __tablename__ = "connection_settings"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # the text as in an env var, or a sealed secret
    sealed: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class SettingChange(Base):
    """The audit trail: who changed which setting when. The value is never written here."""

    __tablename__ = "settings_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # "set" or "cleared"
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
