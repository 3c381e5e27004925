"""The Moneybird contact of an order: one per e-mail, kept true to the shop, healed when it is gone.

    find      ledger cache → adopt by exact e-mail from the copy of Moneybird's contacts
              (app.booking.contact_directory; without an e-mail: by customer id) → create
    update    CONTACT_UPDATES=true: a name, company, address, VAT number or phone that changed in
              the shop since woobird last wrote or adopted the contact → one PATCH of what changed
    e-mail    CONTACT_UPDATES=true: a registered customer ordering under a new address gets that
              address's own contact, as always — never their old contact re-pointed, which could
              merge two customers — and the owner is shown the change (an `email_changed` finding)
    gone      a contact archived or deleted in Moneybird refuses new invoices ("Contact ID is
              invalid"): the booking walk asks `replace_contact`, which re-adopts another active
              contact with the address or creates one, records a `contact_replaced` finding and
              points the ledger at it; the walk then creates the document once more

A contact's e-mail lock makes two workers booking a new customer's first two orders agree on one
contact; the ledger's primary key on the e-mail is the second line of defence.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import structlog
from sqlalchemy import select

from app.booking import ledger
from app.booking.contact_directory import ContactDirectory
from app.booking.findings import note
from app.booking.walk import BookingFailed, names_field
from app.constants import CONTACT_LOCK_PREFIX
from app.db import transaction
from app.i18n import N_, Message
from app.invoicing.contact import PlanContact, plan_contact
from app.invoicing.vat import vat_number
from app.jobs import LOCK_MARGIN_SECONDS, exclusively
from app.logs import mask_email
from app.moneybird.errors import MoneybirdNotFound, MoneybirdRejected
from app.moneybird.models import Contact, ContactCreate, ContactUpdate
from app.runtime import Services
from app.schema import ContactRecord, FindingKind, utcnow
from app.settings import Settings
from app.woocommerce.models import Order

log = structlog.get_logger("woobird.contacts")

# PlanContact field → Moneybird contact field, for what CONTACT_UPDATES keeps in step.
KEPT_FIELDS = {
    "company_name": "company_name",
    "firstname": "firstname",
    "lastname": "lastname",
    "address1": "address1",
    "address2": "address2",
    "zipcode": "zipcode",
    "city": "city",
    "country": "country",
    "phone": "phone",
    "tax_number": "tax_number",
}
# Customer ids of registered customers; guests are told apart by their e-mail address alone.
_GUEST_PREFIXES = ("woo-guest-", "woo-order-")


def order_contact(order: Order, *, settings: Settings) -> PlanContact:
    """The contact an order's documents go to, as the invoice plan makes it."""
    return plan_contact(order, tax_number=vat_number(order, settings.woocommerce_vat_number_meta_keys))


def details_of(contact: PlanContact) -> dict[str, str]:
    return {field: getattr(contact, field) or "" for field in KEPT_FIELDS}


def details_in_moneybird(contact: Contact) -> dict[str, str]:
    return {field: getattr(contact, moneybird) or "" for field, moneybird in KEPT_FIELDS.items()}


def contact_create(contact: PlanContact, *, customer_id: str | None) -> ContactCreate:
    return ContactCreate(
        company_name=contact.company_name or None,
        firstname=contact.firstname or None,
        lastname=contact.lastname or None,
        address1=contact.address1 or None,
        address2=contact.address2 or None,
        zipcode=contact.zipcode or None,
        city=contact.city or None,
        country=contact.country or None,
        phone=contact.phone or None,
        customer_id=customer_id,
        tax_number=contact.tax_number or None,
        send_invoices_to_email=contact.email or None,
        # WooCommerce already sent the customer their invoice: Moneybird must not e-mail them too.
        delivery_method="Manual",
    )


# Another order of the customer waits this long for the contact step, then gives its worker slot
# back and comes again (`exclusively` defers it): a step takes a second or two, and a lock left by a
# killed worker must cost the customer's orders a few deferrals, not a whole job's time each.
CONTACT_LOCK_WAIT_SECONDS = 3
# A step never outlives its job, so the lock need not outlive the order lock (job timeout + margin):
# a killed worker's contact lock is then gone as soon as its order may be taken up again.
CONTACT_LOCK_HOLD_SECONDS = 60


def _locked(services: Services, contact: PlanContact) -> AbstractAsyncContextManager[None]:
    """One contact step per customer at a time: two new orders of one customer make one contact."""
    key = f"{CONTACT_LOCK_PREFIX}{contact.email.strip().lower() or contact.customer_id}"
    hold = min(CONTACT_LOCK_HOLD_SECONDS, services.settings.worker_job_timeout_seconds + LOCK_MARGIN_SECONDS)
    # Contacts are the administration's: connections sharing one share its contact locks too.
    return exclusively(
        services,
        key,
        wait_seconds=CONTACT_LOCK_WAIT_SECONDS,
        hold_seconds=hold,
        connection_id=services.contact_book_id,
    )


# ── find ─────────────────────────────────────────────────────────────────────────────────────


async def ensure_contact(
    services: Services,
    contact: PlanContact,
    *,
    order_id: int,
    before_create: Callable[[], Awaitable[None]] | None = None,
) -> tuple[str, str]:
    """The contact for `contact`, and what was done, for the ledger ("adopted contact 4960…");
    `before_create` runs before a contact is created in Moneybird (the caller writes down what it
    held back)."""
    email = contact.email.strip().lower()
    # A returning customer whose details the contact already has needs nothing the lock guards (a
    # create, an update): no two round trips to Redis for it. Anything else is looked at again under it.
    cached = await _cached(services, email) if email else None
    if cached is not None and not _to_update(services, cached, contact):
        return cached.contact_id, f"cached contact {cached.contact_id}"
    async with _locked(services, contact):
        cached = await _cached(services, email) if email else None
        if cached is not None:
            return cached.contact_id, await _keep_in_step(services, cached, contact)
        if services.settings.contact_updates and email:
            await _note_changed_email(services, contact, email=email, order_id=order_id)
        found = await _find(services, contact, email=email)
        if found is None:
            if before_create is not None:
                await before_create()
            created = await _create_new(services, contact, email=email)
            contact_id, done, details = created.id, f"created contact {created.id}", details_of(contact)
        else:
            contact_id, done, details = found.id, f"adopted contact {found.id}", details_in_moneybird(found)
        if email:
            await _remember(
                services,
                email=email,
                contact=contact,
                contact_id=contact_id,
                details=details,
                adopted=found is not None,
            )
            if found is not None and services.settings.contact_updates:
                cached = await _cached(services, email)
                assert cached is not None
                done = f"{done}; {await _keep_in_step(services, cached, contact)}"
        return contact_id, done


async def _cached(services: Services, email: str) -> ContactRecord | None:
    async with services.sessions() as session:
        query = select(ContactRecord).where(ContactRecord.email == email)
        return (await session.execute(query)).scalar_one_or_none()


def _directory(services: Services) -> ContactDirectory:
    return ContactDirectory(
        services.redis,
        services.moneybird,
        administration_id=services.settings.moneybird_administration_id,
        contact_book_id=services.contact_book_id,
    )


async def _find(services: Services, contact: PlanContact, *, email: str) -> Contact | None:
    """An active contact for this customer: from the copy of Moneybird's contacts when it can tell."""
    if email:
        copied = await _directory(services).contacts_for(email)
        if copied is not None:
            return copied[0] if copied else None
    return await _adopt(services, contact, email=email)


async def _create_new(services: Services, contact: PlanContact, *, email: str) -> Contact:
    """`_create`, keeping the copy of Moneybird's contacts in step (see app.booking.contact_directory)."""
    if not email:
        return await _create(services, contact)
    directory = _directory(services)
    await directory.creating(email)
    try:
        created = await _create(services, contact)
    except MoneybirdRejected:
        await directory.created_nothing(email)  # refused: nothing was made
        raise
    await directory.created(email, created)
    return created


async def _adopt(services: Services, contact: PlanContact, *, email: str, gone: str = "") -> Contact | None:
    """An active contact Moneybird already has for this customer, other than `gone`."""
    if email:
        # The search is fuzzy (jan@x.nl also finds jan@x.nl.au) and leaves archived contacts out.
        matches = [
            c
            for c in await services.moneybird.search_contacts(email)
            if email in c.invoice_emails and c.id != gone and not c.archived
        ]
        return min(matches, key=lambda c: int(c.id)) if matches else None
    existing = await services.moneybird.contact_by_customer_id(contact.customer_id)
    if existing is not None and existing.id != gone and not existing.archived:
        return existing
    return None


async def _create(services: Services, contact: PlanContact) -> Contact:
    """Create the contact under the shop's customer id, or under Moneybird's own when that is taken.

    An archived contact keeps its customer id taken, so its replacement cannot have it; a refused
    create made nothing, so creating again is safe.
    """
    try:
        return await services.moneybird.create_contact(
            contact_create(contact, customer_id=contact.customer_id)
        )
    except MoneybirdRejected as refused:
        if refused.status != 422 or not names_field(refused.body, "customer_id"):
            raise
    log.warning(
        "customer id taken in Moneybird; the contact gets Moneybird's own", customer=contact.customer_id
    )
    return await services.moneybird.create_contact(contact_create(contact, customer_id=None))


async def _remember(
    services: Services,
    *,
    email: str,
    contact: PlanContact,
    contact_id: str,
    details: dict[str, str],
    adopted: bool | None = None,
) -> None:
    """Write the e-mail's contact down with its details; `adopted` None keeps what was known."""
    now = utcnow()
    async with transaction(services.sessions) as session:
        query = select(ContactRecord).where(ContactRecord.email == email)
        record = (await session.execute(query)).scalar_one_or_none()
        if record is None:
            record = ContactRecord(email=email, contact_id=contact_id, adopted=bool(adopted), created_at=now)
            session.add(record)
        record.contact_id = contact_id
        if adopted is not None:
            record.adopted = adopted
        record.customer_id = contact.customer_id
        record.details = json.dumps(details)
        record.updated_at = now


# ── update ───────────────────────────────────────────────────────────────────────────────────


def _changed(cached: ContactRecord, wanted: dict[str, str]) -> list[str]:
    """The kept fields the shop changed since woobird last wrote or adopted the contact."""
    known = json.loads(cached.details or "{}")
    # A country can only be replaced, not emptied (Moneybird wants a two-letter code).
    return sorted(
        field
        for field, value in wanted.items()
        if known.get(field, "") != value and (value or field != "country")
    )


def _to_update(services: Services, cached: ContactRecord, contact: PlanContact) -> bool:
    """Whether `_keep_in_step` would write anything: to the copy, or to Moneybird."""
    if cached.details is None or cached.customer_id is None:
        return True
    return services.settings.contact_updates and bool(_changed(cached, details_of(contact)))


async def _keep_in_step(services: Services, cached: ContactRecord, contact: PlanContact) -> str:
    """CONTACT_UPDATES: PATCH what the shop changed since woobird last wrote or adopted the contact."""
    wanted = details_of(contact)
    if cached.details is None or cached.customer_id is None:
        # Remembered before woobird kept details: what the shop says now is the starting point.
        await _remember(
            services, email=cached.email, contact=contact, contact_id=cached.contact_id, details=wanted
        )
        return f"cached contact {cached.contact_id}"
    changed = _changed(cached, wanted)
    if not changed or not services.settings.contact_updates:
        return f"cached contact {cached.contact_id}"
    # A repeated PATCH of the same fields is harmless: a lost answer or a crash just sends it again.
    await services.moneybird.update_contact(
        cached.contact_id,
        ContactUpdate.model_validate({KEPT_FIELDS[field]: wanted[field] for field in changed}),
    )
    await _remember(
        services, email=cached.email, contact=contact, contact_id=cached.contact_id, details=wanted
    )
    log.info("contact updated", contact_id=cached.contact_id, fields=",".join(changed))
    return f"updated contact {cached.contact_id} ({', '.join(field.replace('_', ' ') for field in changed)})"


async def _note_changed_email(services: Services, contact: PlanContact, *, email: str, order_id: int) -> None:
    if not contact.customer_id.startswith("woo-") or contact.customer_id.startswith(_GUEST_PREFIXES):
        return
    query = select(ContactRecord).where(
        ContactRecord.customer_id == contact.customer_id, ContactRecord.email != email
    )
    async with services.sessions() as session:
        earlier = (await session.execute(query.order_by(ContactRecord.created_at))).scalars().first()
    if earlier is None:
        return
    await note(
        services,
        kind=FindingKind.EMAIL_CHANGED,
        subject=f"customer:{contact.customer_id}:{email}",
        order_id=order_id,
        message=Message(
            "customer %(customer)s orders under a new e-mail address (%(email)s; before: %(before)s): order "
            "%(order)s goes to the new address's own contact, their earlier invoices stay with contact "
            "%(contact)s. woobird does not merge contacts: if they are one customer, merge them in Moneybird",
            customer=contact.customer_id,
            email=mask_email(email),
            before=mask_email(earlier.email),
            order=order_id,
            contact=earlier.contact_id,
        ),
    )


# ── gone ─────────────────────────────────────────────────────────────────────────────────────


async def replace_contact(
    services: Services, *, order_id: int, contact: PlanContact, gone: str, refused: MoneybirdRejected
) -> str:
    """A contact Moneybird refused for a new document: find or make its replacement, and record it."""
    email = contact.email.strip().lower()
    async with _locked(services, contact):
        cached = await _cached(services, email) if email else None
        if cached is not None and cached.contact_id != gone:
            # Another job replaced it a moment ago.
            await _point_order(services, order_id=order_id, contact_id=cached.contact_id)
            return cached.contact_id
        state = await _state_of(services, gone)
        if state == "active":
            raise BookingFailed(
                Message(
                    "Moneybird refused contact %(contact)s, which exists and is not archived: %(error)s",
                    contact=gone,
                    error=refused.message,
                ),
                kind="rejected",
            )
        found = await _adopt(services, contact, email=email, gone=gone)
        if found is None:
            created = await _create(services, contact)
            replacement, details = created.id, details_of(contact)
        else:
            replacement, details = found.id, details_in_moneybird(found)
        if email:
            await _remember(
                services,
                email=email,
                contact=contact,
                contact_id=replacement,
                details=details,
                adopted=found is not None,
            )
    message = Message(
        "contact %(gone)s was %(state)s in Moneybird, so it refused order %(order)s's document: woobird "
        "%(what)s contact %(contact)s for the customer (%(customer)s) and books to it from now on; earlier "
        "invoices stay with the old contact",
        gone=gone,
        state=Message(state),
        order=order_id,
        what=Message(N_("re-adopted") if found is not None else N_("created")),
        contact=replacement,
        customer=mask_email(email) or contact.customer_id,
    )
    await _point_order(services, order_id=order_id, contact_id=replacement, message=message)
    await note(
        services,
        kind=FindingKind.CONTACT_REPLACED,
        subject=f"contact:{gone}",
        order_id=order_id,
        message=message,
    )
    return replacement


async def _state_of(services: Services, contact_id: str) -> str:
    try:
        found = await services.moneybird.get_contact(contact_id, include_archived=True)
    except MoneybirdNotFound:
        return N_("deleted")
    return N_("archived") if found.archived else N_("active")


async def _point_order(services: Services, *, order_id: int, contact_id: str, message: str = "") -> None:
    async with transaction(services.sessions) as session:
        if await ledger.get_order(session, order_id) is None:
            return
        await ledger.update_order(session, order_id, contact_id=contact_id)
        if message:
            await ledger.add_event(session, order_id=order_id, step="contact", message=message)
