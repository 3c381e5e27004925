"""External sales invoices of the Moneybird fake: created open, numbered by the caller's reference."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from app.sandbox.moneybird.contacts import embedded_contact, ensure_contact_id, usable_contact
from app.sandbox.moneybird.documents import (
    build_details,
    check_states,
    delete_payment,
    period_range,
    refresh_totals,
    register_payment,
    set_state,
    unpaid,
)
from app.sandbox.moneybird.invoices import changed_after
from app.sandbox.moneybird.records import Call, Reply, list_reply
from app.sandbox.moneybird.request_keys import EXTERNAL_INVOICE
from app.sandbox.moneybird.wire import (
    Invalid,
    Record,
    coerce,
    parse_date,
    parse_filter,
    reject_unknown,
    symbolic_error,
    unwrap,
)

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_STATES = ("new", "open", "late", "paid", "uncollectible", "pending_payment")


def external_in(call: Call, invoice_id: str | None = None) -> Record:
    invoice = call.sandbox.external_sales_invoices.get(invoice_id or call.params["id"])
    if invoice is None or invoice["administration_id"] != call.adm.id:
        raise symbolic_error(404, "Record not found for model name: External invoice")
    return invoice


def create_external_invoice(call: Call) -> Reply:
    data = unwrap(call.body, "external_sales_invoice", "External sales invoice")
    reject_unknown(data, EXTERNAL_INVOICE, prefix="")
    problems = Invalid()
    fields = coerce(data, EXTERNAL_INVOICE, prefix="", problems=problems)
    contact = usable_contact(call, fields.get("contact_id"), root="external_sales_invoice")
    invoice_date = _checked_header(fields, problems, today=call.sandbox.clock.today(), new=True)
    details = build_details(call, fields.get("details_attributes"), existing=[], problems=problems)
    problems.raise_if_any()
    invoice = _new_external(call, contact=contact, invoice_date=invoice_date, fields=fields)
    invoice["details"] = details
    call.sandbox.take_total_skew(invoice["id"])
    refresh_totals(call.sandbox, call.adm, invoice)
    call.sandbox.external_sales_invoices[invoice["id"]] = invoice
    call.sandbox.touch(invoice, "external_sales_invoice_created")
    if unpaid(invoice) == 0:
        invoice["paid_at"] = invoice["date"]
        set_state(call.sandbox, invoice, "paid")
    return Reply(201, invoice)


def _checked_header(fields: Record, problems: Invalid, *, today: date, new: bool) -> date | None:
    if (new or "reference" in fields) and not str(fields.get("reference") or "").strip():
        problems.add("reference", "can't be blank", "blank")
    invoice_date: date | None = today if new else None
    if fields.get("date") not in (None, ""):
        try:
            invoice_date = parse_date(fields["date"])
        except ValueError:
            problems.add("date", "is not a valid date", "is not a valid date")
    if "currency" in fields and not _CURRENCY.match(fields["currency"]):
        problems.add("currency", "is not a valid currency", "invalid", value=fields["currency"])
    return invoice_date


def _new_external(call: Call, *, contact: Record, invoice_date: date | None, fields: Record) -> Record:
    sandbox, adm = call.sandbox, call.adm
    adm.entry_counter += 1
    stamp = sandbox.clock.timestamp()
    due: date | None = fields.get("due_date")
    return {
        "id": sandbox.ids.next(),
        "administration_id": adm.id,
        "contact_id": contact["id"],
        "contact": embedded_contact(contact),
        "date": (invoice_date or sandbox.clock.today()).isoformat(),
        "state": "open",
        "due_date": due.isoformat() if due else None,
        "reference": fields["reference"],
        "entry_number": adm.entry_counter,
        "origin": "api",
        "source": fields.get("source"),
        "source_url": fields.get("source_url"),
        "currency": fields.get("currency", adm.record["currency"]),
        "paid_at": None,
        "created_at": stamp,
        "updated_at": stamp,
        "version": sandbox.clock.version(),
        "details": [],
        "payments": [],
        "prices_are_incl_tax": fields.get("prices_are_incl_tax", adm.prices_are_incl_tax),
        "marked_dubious_on": None,
        "marked_uncollectible_on": None,
        "notes": [],
        "attachments": [],
        "events": [],
        "tax_totals": [],
    }


def update_external_invoice(call: Call) -> Reply:
    invoice = external_in(call)
    data = unwrap(call.body, "external_sales_invoice", "External sales invoice")
    reject_unknown(data, EXTERNAL_INVOICE, prefix="")
    problems = Invalid()
    fields = coerce(data, EXTERNAL_INVOICE, prefix="", problems=problems)
    contact: Any = None
    if fields.get("contact_id"):
        contact = usable_contact(call, fields["contact_id"], root="external_sales_invoice")
    invoice_date = _checked_header(fields, problems, today=call.sandbox.clock.today(), new=False)
    details = build_details(
        call, fields.get("details_attributes"), existing=invoice["details"], problems=problems
    )
    problems.raise_if_any()
    if contact is not None:
        invoice["contact_id"], invoice["contact"] = contact["id"], embedded_contact(contact)
    if invoice_date is not None:
        invoice["date"] = invoice_date.isoformat()
    for key in ("reference", "currency", "prices_are_incl_tax", "source", "source_url"):
        if key in fields:
            invoice[key] = fields[key]
    if "due_date" in fields:
        invoice["due_date"] = fields["due_date"].isoformat() if fields["due_date"] else None
    invoice["details"] = details
    refresh_totals(call.sandbox, call.adm, invoice)
    call.sandbox.touch(invoice, "external_sales_invoice_updated")
    return Reply(200, invoice)


def get_external_invoice(call: Call) -> Reply:
    return Reply(200, external_in(call))


def delete_external_invoice(call: Call) -> Reply:
    invoice = external_in(call)
    del call.sandbox.external_sales_invoices[invoice["id"]]
    return Reply(204)


def create_external_payment(call: Call) -> Reply:
    invoice = call.sandbox.external_sales_invoices.get(call.params["id"])
    if invoice is None or invoice["administration_id"] != call.adm.id:
        raise symbolic_error(404, "record not found", invoice_id="not_found")
    return Reply(201, register_payment(call, invoice, invoice_type="ExternalSalesInvoice"))


def destroy_external_payment(call: Call) -> Reply:
    delete_payment(call, external_in(call))
    return Reply(204)


def list_external_invoices(call: Call) -> Reply:
    return list_reply(call, filtered_externals(call))


def all_externals(call: Call) -> list[Record]:
    """The administration's external invoices, whatever their date or state (synchronization by id)."""
    return [i for i in call.sandbox.external_sales_invoices.values() if i["administration_id"] == call.adm.id]


def filtered_externals(call: Call) -> list[Record]:
    terms = parse_filter(call.query.get("filter")) or {"period": "this_year"}
    invoices = [
        i for i in call.sandbox.external_sales_invoices.values() if i["administration_id"] == call.adm.id
    ]
    if "state" in terms and terms["state"] != "all":
        states = check_states(terms["state"], (*_STATES, "all"))
        invoices = [i for i in invoices if i["state"] in states]
    if "contact_id" in terms:
        contact_id = ensure_contact_id(call, terms["contact_id"])
        invoices = [i for i in invoices if i["contact_id"] == contact_id]
    if "period" in terms:
        start, end = period_range(terms["period"], call.sandbox.clock.today())
        invoices = [i for i in invoices if start <= date.fromisoformat(i["date"]) <= end]
    return changed_after(invoices, terms)
