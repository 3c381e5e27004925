"""Sales invoices of the Moneybird fake: drafts, send, payments, credit invoices, find and list."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.sandbox.moneybird.contacts import (
    contact_in,
    embedded_contact,
    reject_custom_fields,
    usable_contact,
)
from app.sandbox.moneybird.documents import (
    book_payment,
    build_details,
    check_payable,
    check_states,
    delete_payment,
    due_state,
    new_payment,
    period_range,
    refresh_totals,
    register_payment,
    set_state,
    unpaid,
)
from app.sandbox.moneybird.records import Call, Reply, list_reply
from app.sandbox.moneybird.request_keys import (
    SALES_INVOICE_CREATE,
    SALES_INVOICE_TOP,
    SALES_INVOICE_UPDATE,
    SEND_METHODS,
    SENDING,
)
from app.sandbox.moneybird.wire import (
    ApiError,
    Invalid,
    Record,
    coerce,
    invalid,
    money_str,
    parse_filter,
    parse_timestamp,
    reject_unknown,
    symbolic_error,
    unwrap,
)

if TYPE_CHECKING:
    from app.sandbox.moneybird.state import MoneybirdSandbox

_STATES = ("draft", "scheduled", "open", "pending_payment", "reminded", "late", "paid", "uncollectible")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Changing these would change what a sent invoice says; Moneybird only lets drafts change them here.
_DRAFT_ONLY = (
    "details_attributes",
    "contact_id",
    "currency",
    "prices_are_incl_tax",
    "discount",
    "invoice_date",
)
_SEND_EVENTS = {"Email": "sales_invoice_send_email", "Manual": "sales_invoice_send_manually"}


def invoice_in(call: Call, invoice_id: str | None = None) -> Record:
    invoice = call.sandbox.sales_invoices.get(invoice_id or call.params["id"])
    if invoice is None or invoice["administration_id"] != call.adm.id:
        raise ApiError(404, {"error": "record not found", "symbolic": {"id": "not_found"}})
    return invoice


# -- create / update / delete ------------------------------------------------------------------


def create_sales_invoice(call: Call) -> Reply:
    data = unwrap(call.body, "sales_invoice", "Sales invoice", extra_top=SALES_INVOICE_TOP)
    reject_unknown(data, SALES_INVOICE_CREATE, prefix="")
    problems = Invalid()
    fields = coerce(data, SALES_INVOICE_CREATE, prefix="", problems=problems)
    contact = _contact_for(call, fields.get("contact_id"))
    workflow = _workflow_for(
        call, fields.get("workflow_id") or (contact or {}).get("invoice_workflow_id"), problems
    )
    style_id = _document_style_for(call, fields.get("document_style_id"), problems)
    _check_header(call, fields, problems)
    details = build_details(call, fields.get("details_attributes"), existing=[], problems=problems)
    problems.raise_if_any()
    reject_custom_fields(fields.get("custom_fields_attributes"))
    invoice = _new_invoice(call, contact=contact, workflow=workflow, style_id=style_id, fields=fields)
    invoice["details"] = details
    call.sandbox.take_total_skew(invoice["id"])
    refresh_totals(call.sandbox, call.adm, invoice)
    call.sandbox.sales_invoices[invoice["id"]] = invoice
    call.sandbox.touch(invoice, "sales_invoice_created")
    return Reply(201, invoice)


def _new_invoice(
    call: Call, *, contact: Record | None, workflow: Record, style_id: str, fields: Record
) -> Record:
    sandbox, adm = call.sandbox, call.adm
    invoice_id = sandbox.ids.next()
    adm.draft_counter += 1
    interval = fields.get("first_due_interval", workflow["steps"][0]["due_interval"])
    sandbox.due_intervals[invoice_id] = interval
    invoice_date: date | None = fields.get("invoice_date")
    stamp = sandbox.clock.timestamp()
    url = f"{sandbox.web_url}/{adm.id}/external/{int(invoice_id):064x}/sales_invoice"
    return {
        "id": invoice_id,
        "administration_id": adm.id,
        "contact_id": contact["id"] if contact else None,
        "contact": embedded_contact(contact) if contact else None,
        "contact_person_id": None,
        "contact_person": None,
        "invoice_id": None,
        "recurring_sales_invoice_id": None,
        "subscription_id": None,
        "workflow_id": workflow["id"],
        "document_style_id": style_id,
        "identity_id": adm.identity["id"],
        "draft_id": adm.draft_counter,
        "state": "draft",
        "invoice_date": invoice_date.isoformat() if invoice_date else None,
        "due_date": ((invoice_date or sandbox.clock.today()) + timedelta(days=interval)).isoformat(),
        "payment_conditions": fields.get("payment_conditions", "Betaling binnen {document.due_date}."),
        "payment_reference": None,
        "short_payment_reference": None,
        "reference": fields.get("reference"),
        "language": workflow["language"],
        "currency": fields.get("currency", workflow["currency"]),
        "discount": money_str(fields.get("discount") or Decimal(0)),
        "original_sales_invoice_id": None,
        "paused": False,
        "paid_at": None,
        "sent_at": None,
        "created_at": stamp,
        "updated_at": stamp,
        "public_view_code": None,
        "public_view_code_expires_at": None,
        "version": sandbox.clock.version(),
        "details": [],
        "payments": [],
        "prices_are_incl_tax": fields.get("prices_are_incl_tax", workflow["prices_are_incl_tax"]),
        "total_discount": "0.0",
        "marked_dubious_on": None,
        "marked_uncollectible_on": None,
        "reminder_count": 0,
        "next_reminder": None,
        "original_estimate_id": None,
        "url": url,
        "payment_url": url,
        "custom_fields": [],
        "notes": [],
        "attachments": [],
        "events": [],
        "tax_totals": [],
        "time_entries": [],
    }


def _contact_for(call: Call, contact_id: str | None) -> Record | None:
    if contact_id is None:
        return None
    return usable_contact(call, contact_id, root="sales_invoice")


def _workflow_for(call: Call, workflow_id: str | None, problems: Invalid) -> Record:
    if workflow_id is None:
        return call.adm.default_workflow()
    workflow = call.adm.workflows.get(workflow_id)
    if workflow is None or workflow["type"] != "InvoiceWorkflow":
        problems.add("workflow_id", "is not found", "invalid", value=workflow_id)
        return call.adm.default_workflow()
    return workflow


def _document_style_for(call: Call, style_id: str | None, problems: Invalid) -> str:
    if style_id is None:
        return str(call.adm.default_document_style()["id"])
    if style_id not in call.adm.document_styles:
        problems.add("document_style_id", "is not found", "invalid", value=style_id)
    return style_id


def _check_header(call: Call, fields: Record, problems: Invalid) -> None:
    # The fake has no contact people, estimates, sequences or time entries: any id for them is unknown.
    for key in ("contact_person_id", "original_estimate_id", "invoice_sequence_id"):
        if fields.get(key):
            problems.add(key, "is not found", "invalid", value=fields[key])
    if fields.get("time_entry_ids"):
        problems.add("time_entry_ids", "are not found", "invalid")
    if "currency" in fields and not _CURRENCY.match(fields["currency"]):
        problems.add("currency", "is not a valid currency", "invalid", value=fields["currency"])
    discount = fields.get("discount")
    if discount is not None and not 0 <= discount <= 100:
        problems.add("discount", "must be between 0 and 100", "invalid", value=str(discount))
    if fields.get("first_due_interval", 0) < 0:
        problems.add("first_due_interval", "must be greater than or equal to 0", "greater_than_or_equal_to")


def update_sales_invoice(call: Call) -> Reply:
    invoice = invoice_in(call)
    data = unwrap(call.body, "sales_invoice", "Sales invoice")
    reject_unknown(data, SALES_INVOICE_UPDATE, prefix="")
    problems = Invalid()
    fields = coerce(data, SALES_INVOICE_UPDATE, prefix="", problems=problems)
    if invoice["state"] != "draft" and any(key in fields for key in _DRAFT_ONLY):
        raise invalid("base", "Only a draft invoice can change its lines, contact or amounts", "not_a_draft")
    contact = _contact_for(call, fields.get("contact_id"))
    workflow = _workflow_for(call, fields["workflow_id"], problems) if fields.get("workflow_id") else None
    style_id = _document_style_for(call, fields.get("document_style_id"), problems)
    _check_header(call, fields, problems)
    details = build_details(
        call, fields.get("details_attributes"), existing=invoice["details"], problems=problems
    )
    problems.raise_if_any()
    reject_custom_fields(fields.get("custom_fields_attributes"))
    if contact is not None or (fields.get("update_contact") and invoice["contact_id"]):
        fresh = contact or contact_in(call, invoice["contact_id"])
        invoice["contact_id"], invoice["contact"] = fresh["id"], embedded_contact(fresh)
    _update_header(call, invoice, fields, workflow=workflow, style_id=style_id)
    invoice["details"] = details
    refresh_totals(call.sandbox, call.adm, invoice)
    call.sandbox.touch(invoice, "sales_invoice_updated")
    return Reply(200, invoice)


def _update_header(
    call: Call, invoice: Record, fields: Record, *, workflow: Record | None, style_id: str
) -> None:
    if workflow is not None:
        invoice["workflow_id"] = workflow["id"]
    if fields.get("document_style_id"):
        invoice["document_style_id"] = style_id
    for key in ("reference", "currency", "prices_are_incl_tax", "payment_conditions"):
        if key in fields:
            invoice[key] = fields[key]
    if "discount" in fields:
        invoice["discount"] = money_str(fields["discount"] or Decimal(0))
    if "first_due_interval" in fields:
        call.sandbox.due_intervals[invoice["id"]] = fields["first_due_interval"]
    if "invoice_date" in fields:
        invoice["invoice_date"] = fields["invoice_date"].isoformat() if fields["invoice_date"] else None
    if invoice["state"] == "draft":
        start = (
            date.fromisoformat(invoice["invoice_date"])
            if invoice["invoice_date"]
            else call.sandbox.clock.today()
        )
        invoice["due_date"] = (start + timedelta(days=call.sandbox.due_intervals[invoice["id"]])).isoformat()


def delete_sales_invoice(call: Call) -> Reply:
    invoice = invoice_in(call)
    if invoice["payments"]:
        raise symbolic_error(
            422, "Sales invoice has payments and cannot be destroyed", sales_invoice="has_payments"
        )
    if in_locked_period(call.adm.record, invoice["invoice_date"]):
        raise symbolic_error(
            400, "Sales invoice is in a locked period and cannot be destroyed", sales_invoice="period_locked"
        )
    del call.sandbox.sales_invoices[invoice["id"]]
    return Reply(204)


def in_locked_period(administration: Record, day: str | None) -> bool:
    """Moneybird keeps a locked period's books as they are: no deleting, no editing in it."""
    locked = administration.get("period_locked_until")
    return bool(locked and day and date.fromisoformat(day) <= date.fromisoformat(locked))


def edit_in_web_app(sandbox: MoneybirdSandbox, invoice_id: str, *, line: int = 0, price: str) -> Record:
    """What a bookkeeper's edit of a sent invoice in Moneybird's web app does: the line gets its new
    price, the totals follow, and the payments stay — a paid invoice whose total moved is open again.
    The API refuses this (only drafts change lines there); the web app does not."""
    with sandbox.lock:
        invoice = sandbox.sales_invoices[invoice_id]
        adm = sandbox.administration(invoice["administration_id"])
        if invoice["state"] == "draft":
            raise ValueError("a draft is edited through the API; this is for sent invoices")
        if in_locked_period(adm.record, invoice["invoice_date"]):
            raise ValueError(f"invoice {invoice_id} is in a locked period")
        invoice["details"][line]["price"] = money_str(Decimal(price))
        refresh_totals(sandbox, adm, invoice)
        sandbox.touch(invoice, "sales_invoice_updated")
        if invoice["state"] == "paid" and unpaid(invoice) != 0:
            invoice["paid_at"] = None
            set_state(sandbox, invoice, due_state(sandbox, invoice))
        elif invoice["state"] != "paid" and invoice["payments"] and unpaid(invoice) == 0:
            invoice["paid_at"] = invoice["payments"][-1]["payment_date"]
            set_state(sandbox, invoice, "paid")
        return invoice


# -- send ----------------------------------------------------------------------------------------


def send_sales_invoice(call: Call) -> Reply:
    invoice = invoice_in(call)
    data = unwrap(call.body, "sales_invoice_sending", "Sales invoice sending", required=False)
    reject_unknown(data, SENDING, prefix="")
    problems = Invalid()
    fields = coerce(data, SENDING, prefix="", problems=problems)
    problems.raise_if_any()
    if not invoice["details"]:
        raise symbolic_error(400, "details cannot be empty", sales_invoice="details_cannot_be_empty")
    if invoice["contact_id"] is None:
        raise invalid("contact", "can't be blank", "blank")
    contact = contact_in(call, invoice["contact_id"], key="contact_id")
    method = fields.get("delivery_method") or contact["delivery_method"]
    if method not in SEND_METHODS:
        if "delivery_method" in fields:
            raise invalid("delivery_method", "is not included in the list", "inclusion", value=method)
        method = "Email"  # Post/Simplerinvoicing on the contact: Moneybird falls back to e-mail
    address = fields.get("email_address") or contact["send_invoices_to_email"]
    if method == "Email" and not address:
        raise invalid("email_address", "can't be blank", "blank")
    if method == "Peppol" and not contact["si_identifier"]:
        raise invalid("delivery_method", "The contact has no Peppol identifier", "need_si_identifier")
    if invoice["state"] == "draft":
        _finalise(call, invoice, fields)
    event_data = {"email_address": address, "email_message": fields.get("email_message", "")}
    call.sandbox.touch(
        invoice,
        _SEND_EVENTS.get(method, "sales_invoice_send_si"),
        data=event_data if method == "Email" else {},
    )
    return Reply(200, invoice)


def _finalise(call: Call, invoice: Record, fields: Record) -> None:
    sandbox, adm = call.sandbox, call.adm
    today = sandbox.clock.today()
    invoice_date: date = fields.get("invoice_date") or (
        date.fromisoformat(invoice["invoice_date"]) if invoice["invoice_date"] else today
    )
    invoice["invoice_date"] = invoice_date.isoformat()
    invoice["due_date"] = (invoice_date + timedelta(days=sandbox.due_intervals[invoice["id"]])).isoformat()
    if fields.get("sending_scheduled") and invoice_date > today:
        set_state(sandbox, invoice, "scheduled")
        return
    number = adm.invoice_numbers.get(invoice_date.year, 0) + 1
    adm.invoice_numbers[invoice_date.year] = number
    tail = invoice["id"][-12:]
    invoice.update(
        {
            "invoice_id": f"{invoice_date.year}-{number:04d}",
            "draft_id": None,
            "sent_at": today.isoformat(),
            "payment_reference": f"RF{int(invoice['id']) % 97:02d}{tail}",
            "short_payment_reference": f"RF{int(invoice['id']) % 97:02d}{tail[-8:]}",
            "public_view_code": tail[-6:],
            "public_view_code_expires_at": sandbox.clock.timestamp(),
            "next_reminder": invoice["due_date"],
        }
    )
    set_state(sandbox, invoice, "open")
    if unpaid(invoice) == 0:
        # Nothing to collect: a zero-total invoice is settled as soon as it is final.
        invoice["paid_at"] = invoice["invoice_date"]
        set_state(sandbox, invoice, "paid")
    else:
        set_state(sandbox, invoice, due_state(sandbox, invoice))


# -- payments and credit invoices ----------------------------------------------------------------


def create_payment(call: Call) -> Reply:
    invoice = invoice_in(call, call.params["id"])
    return Reply(201, register_payment(call, invoice, invoice_type="SalesInvoice"))


def destroy_payment(call: Call) -> Reply:
    delete_payment(call, invoice_in(call, call.params["id"]))
    return Reply(204)


def duplicate_creditinvoice(call: Call) -> Reply:
    original = invoice_in(call)
    unwrap(call.body, "sales_invoice", "Sales invoice", required=False)
    if original["state"] == "draft":
        raise invalid("base", "A draft invoice cannot be credited", "not_sent")
    workflow = call.adm.workflows.get(original["workflow_id"]) or call.adm.default_workflow()
    contact = call.sandbox.contacts.get(original["contact_id"] or "")
    fields = {
        key: original[key] for key in ("reference", "currency", "prices_are_incl_tax", "payment_conditions")
    }
    fields["discount"] = Decimal(original["discount"])
    credit = _new_invoice(
        call, contact=contact, workflow=workflow, style_id=original["document_style_id"], fields=fields
    )
    credit["original_sales_invoice_id"] = original["id"]
    credit["details"] = _credit_lines(call, original)
    refresh_totals(call.sandbox, call.adm, credit)
    call.sandbox.sales_invoices[credit["id"]] = credit
    call.sandbox.touch(
        credit, "credit_invoice_created_from_original", data={"original_invoice": original["invoice_id"]}
    )
    return Reply(200, credit)


def _credit_lines(call: Call, original: Record) -> list[Record]:
    first = original["details"][0]
    header = {
        "description": f"**Creditfactuur voor factuur {original['invoice_id']}**",
        "price": "0.0",
        "tax_rate_id": first["tax_rate_id"],
        "ledger_account_id": first["ledger_account_id"],
    }
    lines: list[Any] = [header]
    for detail in original["details"]:
        lines.append(
            {
                "description": detail["description"],
                "price": detail["price"],
                "amount": money_str(-Decimal(detail["amount_decimal"])),
                "tax_rate_id": detail["tax_rate_id"],
                "ledger_account_id": detail["ledger_account_id"],
            }
        )
    problems = Invalid()
    details = build_details(call, lines, existing=[], problems=problems)
    problems.raise_if_any()
    return details


def register_payment_creditinvoice(call: Call) -> Reply:
    credit = invoice_in(call)
    unwrap(call.body, "sales_invoice", "Sales invoice", required=False)
    if not credit["original_sales_invoice_id"]:
        raise symbolic_error(
            400, "Sales invoice is not a credit invoice", sales_invoice="not_a_credit_invoice"
        )
    original = invoice_in(call, credit["original_sales_invoice_id"])
    amount = unpaid(credit)
    try:
        check_payable(credit, amount)
        check_payable(original, -amount)
    except ApiError as exc:
        raise symbolic_error(
            422, "Both invoices must be in a state that accepts this payment", sales_invoice="not_payable"
        ) from exc
    today = call.sandbox.clock.today()
    on_credit = new_payment(call, credit, invoice_type="SalesInvoice", price=amount, payment_date=today)
    on_original = new_payment(call, original, invoice_type="SalesInvoice", price=-amount, payment_date=today)
    for payment, other in ((on_credit, on_original), (on_original, on_credit)):
        payment["ledger_account_id"] = call.adm.settlement_ledger_account_id
        payment["linked_payment_id"] = other["id"]
    on_original["credit_invoice_id"] = credit["id"]
    book_payment(call, credit, on_credit)
    book_payment(call, original, on_original)
    return Reply(200, credit)


# -- find and list ---------------------------------------------------------------------------------


def find_by_reference(call: Call) -> Reply:
    reference = call.params["reference"]
    matches = [i for i in _invoices_of(call) if i["reference"] == reference]
    if not matches:
        raise symbolic_error(
            404, f"Sales invoice with reference: {reference} was not found", reference="not_found"
        )
    return Reply(200, min(matches, key=lambda i: int(i["id"])))


def find_by_invoice_id(call: Call) -> Reply:
    number = call.params["invoice_id"]
    for invoice in _invoices_of(call):
        if invoice["invoice_id"] == number and invoice["state"] != "draft":
            return Reply(200, invoice)
    raise symbolic_error(
        404, f"Sales invoice with invoice_id: {number} was not found", invoice_id="not_found"
    )


def get_sales_invoice(call: Call) -> Reply:
    return Reply(200, invoice_in(call))


def list_sales_invoices(call: Call) -> Reply:
    return list_reply(call, filtered_invoices(call))


def filtered_invoices(call: Call) -> list[Record]:
    """`filter=` like Moneybird: any filter given replaces the default `period:this_year`."""
    terms = parse_filter(call.query.get("filter")) or {"period": "this_year"}
    invoices = _invoices_of(call)
    if "state" in terms and terms["state"] != "all":
        states = check_states(terms["state"], (*_STATES, "all"))
        invoices = [i for i in invoices if i["state"] in states]
    if "reference" in terms:
        references = set(terms["reference"].split("|"))
        invoices = [i for i in invoices if i["reference"] in references]
    for key in ("contact_id", "workflow_id", "recurring_sales_invoice_id"):
        if key in terms:
            invoices = [i for i in invoices if i[key] == terms[key]]
    if "period" in terms:
        start, end = period_range(terms["period"], call.sandbox.clock.today())
        today = call.sandbox.clock.today()
        invoices = [i for i in invoices if start <= document_day(i["invoice_date"], today) <= end]
    return changed_after(invoices, terms)


def document_day(value: str | None, today: date) -> date:
    # A draft without invoice date is in a period exactly when the period contains today.
    return date.fromisoformat(value) if value else today


def changed_after(documents: list[Record], terms: dict[str, str]) -> list[Record]:
    for key in ("created_after", "updated_after"):
        if key in terms:
            try:
                moment = parse_timestamp(terms[key])
            except ValueError as exc:
                raise symbolic_error(400, f"{key} is not a valid date", filter="invalid") from exc
            field = key.removesuffix("_after") + "_at"
            documents = [d for d in documents if parse_timestamp(d[field]) > moment]
    return documents


def all_invoices(call: Call) -> list[Record]:
    """The administration's sales invoices, whatever their date or state (synchronization by id)."""
    return _invoices_of(call)


def _invoices_of(call: Call) -> list[Record]:
    return [i for i in call.sandbox.sales_invoices.values() if i["administration_id"] == call.adm.id]
