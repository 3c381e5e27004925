"""An order that changed after its invoice was booked: noticed, recorded, shown, alerted.

Every version of a booked order the booking job sees — each webhook delivery and each order a
reconciliation pass lists — is compared with what its invoice booked (app.booking.fingerprint). A
difference becomes an `order_changed` finding (dashboard, `woobird status`, one alert); the order
changing back resolves it. With ORDER_CHANGES=rebook the order is then rebooked (app.booking.rebook).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from app.booking.findings import note, resolve
from app.booking.fingerprint import booked_version, differences, fingerprint
from app.booking.walk import write_down
from app.i18n import N_, Message
from app.runtime import Services
from app.schema import FindingKind, OrderRecord
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.changes")


def version_of(services: Services, order: Order) -> tuple[dict[str, Any], str]:
    """The order's current version and its fingerprint."""
    version = booked_version(order, vat_number_keys=services.settings.woocommerce_vat_number_meta_keys)
    return version, fingerprint(version)


def booked_columns(version: dict[str, Any], digest: str) -> dict[str, Any]:
    """The ledger columns that say what an invoice booked."""
    return {"booked_version": json.dumps(version, ensure_ascii=False), "fingerprint": digest}


def change_subject(order_id: int, digest: str) -> str:
    return f"order:{order_id}:{digest}"


async def compare_with_booked(
    services: Services, record: OrderRecord, order: Order, *, then: str
) -> str | None:
    """Compare a booked order with what its invoice booked; the new fingerprint when it changed.

    `then` says what happens next, for the finding: left alone, rebooked, or why not rebooked.
    """
    version, digest = version_of(services, order)
    if record.fingerprint is None:
        # Booked before woobird kept fingerprints: this version is the best record of what was booked.
        await write_down(
            services,
            order_id=record.order_id,
            event="fingerprint",
            message=N_("recorded what the invoice booked, from the order as the shop has it now"),
            **booked_columns(version, digest),
        )
        return None
    if digest == record.fingerprint:
        await resolve(
            services,
            kind=FindingKind.ORDER_CHANGED,
            order_id=record.order_id,
            resolution="the order is as it was booked again",
        )
        return None
    what = "; ".join(differences(json.loads(record.booked_version or "{}"), version)) or "its details"
    subject = change_subject(record.order_id, digest)
    await note(
        services,
        kind=FindingKind.ORDER_CHANGED,
        subject=subject,
        order_id=record.order_id,
        invoice_id=record.invoice_id,
        message=Message(
            "order #%(order)s changed after it was booked as %(invoice)s: %(what)s; %(then)s",
            order=record.order_number,
            invoice=record.invoice_number or record.invoice_id,
            what=what,
            then=then,
        ),
    )
    await resolve(
        services,
        kind=FindingKind.ORDER_CHANGED,
        order_id=record.order_id,
        keep_subject=subject,
        resolution="superseded by a later change of the order",
    )
    return digest
