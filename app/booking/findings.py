"""Findings: what woobird noticed after booking that the owner should know about.

    order_changed      an order changed in the shop after its invoice was booked
    invoice_deleted    a booked invoice is gone from Moneybird          (app.booking.verify)
    invoice_changed    a booked invoice no longer has the booked total  (app.booking.verify)
    invoice_reopened   a booked invoice is no longer paid               (app.booking.verify)
    email_changed      a customer orders under a new e-mail address     (app.booking.contacts)
    contact_replaced   a contact was archived or deleted in Moneybird; woobird re-adopted or
                       recreated it                                     (app.booking.contacts)

One row per kind and subject (a version of an order, an invoice, a customer's address), so the
hundredth delivery of the same changed order records nothing new and alerts nobody twice. A
finding is resolved when what it says is no longer true — the order changed back or was rebooked,
a verification found the invoice well again — or when the owner marks it done on the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts import AlertTarget, alert, clear_alert
from app.booking import ledger
from app.db import transaction
from app.schema import Finding, FindingKind, FindingState, alert_cause, utcnow

log = structlog.get_logger("woobird.findings")


class _Target(AlertTarget, Protocol):
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...


async def note(
    target: _Target,
    *,
    kind: FindingKind,
    subject: str,
    message: str,
    order_id: int | None = None,
    refund_id: int | None = None,
    invoice_id: str | None = None,
) -> bool:
    """Record the finding (or open it again); alert once when it is news. True when it was news."""
    now = utcnow()
    async with transaction(target.sessions) as session:
        existing = (
            await session.execute(
                select(Finding).where(Finding.kind == kind.value, Finding.subject == subject)
            )
        ).scalar_one_or_none()
        if existing is not None and existing.state == FindingState.OPEN:
            return False
        if existing is None:
            insert = ledger._insert_for(session)
            statement = insert(Finding.__table__).values(
                kind=kind.value,
                subject=subject,
                state=FindingState.OPEN.value,
                order_id=order_id,
                refund_id=refund_id,
                invoice_id=invoice_id,
                message=message,
                detected_at=now,
                updated_at=now,
            )
            result = await session.execute(
                statement.on_conflict_do_nothing(index_elements=["kind", "subject"]).returning(
                    Finding.__table__.c.id
                )
            )
            if result.first() is None:
                return False  # another worker noted it a moment ago
        else:
            existing.state = FindingState.OPEN.value
            existing.message = message
            existing.resolution = None
            existing.resolved_at = None
            existing.updated_at = now
        if order_id is not None:
            await ledger.add_event(
                session, order_id=order_id, refund_id=refund_id, step=kind.value, message=message
            )
    log.warning("finding", kind=kind.value, order_id=order_id, invoice_id=invoice_id, message=message)
    await alert(target, cause=alert_cause(kind.value, subject), message=message)
    return True


async def resolve(
    target: _Target,
    *,
    kind: FindingKind,
    resolution: str,
    subject: str | None = None,
    order_id: int | None = None,
    keep_subject: str | None = None,
) -> int:
    """Resolve the open findings of `kind` for `subject` (or for `order_id`, but `keep_subject`)."""
    query = select(Finding).where(Finding.kind == kind.value, Finding.state == FindingState.OPEN.value)
    if subject is not None:
        query = query.where(Finding.subject == subject)
    if order_id is not None:
        query = query.where(Finding.order_id == order_id)
    if keep_subject is not None:
        query = query.where(Finding.subject != keep_subject)
    now = utcnow()
    async with transaction(target.sessions) as session:
        found = list((await session.execute(query)).scalars().all())
        for finding in found:
            finding.state = FindingState.RESOLVED.value
            finding.resolution = resolution
            finding.resolved_at = now
            finding.updated_at = now
            if finding.order_id is not None:
                await ledger.add_event(
                    session, order_id=finding.order_id, step=f"{finding.kind}_resolved", message=resolution
                )
    for finding in found:
        await clear_alert(target, cause=finding.cause)
    return len(found)


async def dismiss(target: _Target, finding_id: int, *, by: str) -> Finding | None:
    """The owner has seen to it (the dashboard's button): resolved, with who said so."""
    async with target.sessions() as session:
        finding = await session.get(Finding, finding_id)
    if finding is None:
        return None
    if finding.state == FindingState.OPEN:
        await resolve(
            target, kind=FindingKind(finding.kind), subject=finding.subject, resolution=f"marked done by {by}"
        )
    async with target.sessions() as session:
        return await session.get(Finding, finding_id)


async def open_findings(
    session: AsyncSession, *, limit: int = 100, kinds: Sequence[str] = ()
) -> Sequence[Finding]:
    query = select(Finding).where(Finding.state == FindingState.OPEN.value)
    if kinds:
        query = query.where(Finding.kind.in_(list(kinds)))
    return (await session.execute(query.order_by(Finding.detected_at.desc()).limit(limit))).scalars().all()


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "kind": finding.kind,
        "state": finding.state,
        "order_id": finding.order_id,
        "refund_id": finding.refund_id,
        "invoice_id": finding.invoice_id,
        "message": finding.message,
        "detected_at": finding.detected_at.isoformat(),
        "resolution": finding.resolution,
    }
