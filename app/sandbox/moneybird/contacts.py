"""Contacts of the Moneybird fake: create/update validation, customer_id, fuzzy search, filter."""

from __future__ import annotations

import copy
import re
from typing import Any

from app.sandbox.moneybird.records import Call, Reply, SandboxAdministration, SandboxBooks, list_reply
from app.sandbox.moneybird.request_keys import (
    CONTACT_CREATE,
    CONTACT_PERSON,
    CONTACT_UPDATE,
    DELIVERY_METHODS,
)
from app.sandbox.moneybird.wire import (
    ApiError,
    Invalid,
    Record,
    coerce,
    not_found,
    parse_filter,
    parse_timestamp,
    reject_unknown,
    symbolic_error,
    unwrap,
)

_TEXT_FIELDS = (
    "company_name",
    "firstname",
    "lastname",
    "address1",
    "address2",
    "zipcode",
    "city",
    "phone",
    "tax_number",
    "chamber_of_commerce",
    "bank_account",
    "attention",
    "send_invoices_to_attention",
    "send_invoices_to_email",
    "send_estimates_to_attention",
    "send_estimates_to_email",
    "sepa_iban",
    "sepa_iban_account_name",
    "sepa_bic",
    "sepa_mandate_id",
    "si_identifier",
    "credit_card_number",
    "credit_card_reference",
)
_SEARCHED = (
    "company_name",
    "attention",
    "firstname",
    "lastname",
    "address1",
    "address2",
    "zipcode",
    "city",
    "country",
    "email",
    "send_invoices_to_email",
    "phone",
    "customer_id",
    "tax_number",
    "chamber_of_commerce",
    "bank_account",
)
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


# -- records -----------------------------------------------------------------------------------


def create_contact_record(sandbox: SandboxBooks, adm: SandboxAdministration, data: Record) -> Record:
    reject_unknown(data, CONTACT_CREATE, prefix="")
    problems = Invalid()
    fields = coerce(data, CONTACT_CREATE, prefix="", problems=problems)
    person = _contact_person(fields.pop("contact_person", None), problems)
    problems.raise_if_any()
    reject_custom_fields(fields.pop("custom_fields_attributes", None))
    contact_id = sandbox.ids.next()
    stamp = sandbox.clock.timestamp()
    record: Record = {
        "id": contact_id,
        "administration_id": adm.id,
        **dict.fromkeys(_TEXT_FIELDS, ""),
        "country": "NL",
        "delivery_method": "Email",
        "customer_id": "",
        "is_trusted": False,
        "max_transfer_amount": None,
        "email": "",
        "email_ubl": True,
        "direct_debit": False,
        "sepa_active": False,
        "sepa_mandate_date": None,
        "sepa_sequence_type": "RCUR",
        "credit_card_type": None,
        "tax_number_validated_at": None,
        "tax_number_valid": None,
        "invoice_workflow_id": None,
        "estimate_workflow_id": None,
        "si_identifier_type": None,
        "moneybird_payments_mandate": False,
        "created_at": stamp,
        "updated_at": stamp,
        "version": sandbox.clock.version(),
        "sales_invoices_url": f"{sandbox.web_url}/{adm.id}/sales_invoices/{contact_id}/all",
        "notes": [],
        "custom_fields": [],
        "contact_people": [],
        "archived": False,
        "events": [],
    }
    _apply(sandbox, adm, record, fields)
    if person:
        record["contact_people"].append(_person_record(sandbox, record, person))
    sandbox.contacts[contact_id] = record
    sandbox.touch(record, "contact_created")
    return record


def _apply(sandbox: SandboxBooks, adm: SandboxAdministration, record: Record, fields: Record) -> None:
    """Validate `fields` against the merged result and only then write them (a 422 changes nothing)."""
    if "email" in fields and "send_invoices_to_email" not in fields:
        fields["send_invoices_to_email"] = fields["email"]
    fields.pop("email", None)
    merged = {**record, **fields}
    problems = Invalid()
    if not any(str(merged.get(k) or "").strip() for k in ("company_name", "firstname", "lastname")):
        for key in ("firstname", "lastname", "company_name"):
            problems.add(key, "is required", "is required")
    _check_choices(merged, fields, adm, problems)
    _check_emails(fields, problems)
    customer_id = str(fields.get("customer_id") or "").strip()
    if customer_id and _customer_id_taken(sandbox, adm.id, customer_id, except_id=record["id"]):
        problems.add("customer_id", "has already been taken", "taken", value=customer_id)
    problems.raise_if_any()
    record.update(fields)
    if customer_id:
        record["customer_id"] = customer_id
    elif not record["customer_id"]:
        record["customer_id"] = _next_customer_id(sandbox, adm)
    record["email"] = record["send_invoices_to_email"]


def _check_choices(merged: Record, fields: Record, adm: SandboxAdministration, problems: Invalid) -> None:
    if merged["delivery_method"] not in DELIVERY_METHODS:
        problems.add(
            "delivery_method", "is not included in the list", "inclusion", value=merged["delivery_method"]
        )
    if "country" in fields and not _COUNTRY.match(fields["country"]):
        problems.add("country", "is not a valid country code", "invalid", value=fields["country"])
    for key, kind in (
        ("invoice_workflow_id", "InvoiceWorkflow"),
        ("estimate_workflow_id", "EstimateWorkflow"),
    ):
        workflow_id = fields.get(key)
        if workflow_id and adm.workflows.get(workflow_id, {}).get("type") != kind:
            problems.add(key, "is not found", "invalid", value=workflow_id)
    if merged.get("sepa_active") and not merged.get("sepa_iban"):
        problems.add("sepa_iban", "can't be blank", "blank")


def _check_emails(fields: Record, problems: Invalid) -> None:
    for key in ("send_invoices_to_email", "send_estimates_to_email"):
        value = str(fields.get(key) or "")
        addresses = [a.strip() for a in value.split(",") if a.strip()]
        if any(not _EMAIL.match(address) for address in addresses):
            problems.add(key, "is invalid", "invalid", value=value)


def _customer_id_taken(sandbox: SandboxBooks, adm_id: str, customer_id: str, *, except_id: str) -> bool:
    return any(
        c["administration_id"] == adm_id and c["customer_id"] == customer_id and c["id"] != except_id
        for c in sandbox.contacts.values()
    )


def _next_customer_id(sandbox: SandboxBooks, adm: SandboxAdministration) -> str:
    while True:
        adm.customer_counter += 1
        candidate = str(adm.customer_counter)
        if not _customer_id_taken(sandbox, adm.id, candidate, except_id=""):
            return candidate


def _contact_person(raw: Any, problems: Invalid) -> Record | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("contact_person", "is invalid", "invalid")
        return None
    reject_unknown(raw, CONTACT_PERSON, prefix="contact_person.")
    for key in ("firstname", "lastname"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.add(f"contact_person.{key}", "can't be blank", "blank")
    return raw


def _person_record(sandbox: SandboxBooks, contact: Record, person: Record) -> Record:
    stamp = sandbox.clock.timestamp()
    return {
        "id": sandbox.ids.next(),
        "contact_id": contact["id"],
        "administration_id": contact["administration_id"],
        "firstname": person["firstname"],
        "lastname": person["lastname"],
        "phone": None,
        "email": None,
        "department": None,
        "created_at": stamp,
        "updated_at": stamp,
        "version": sandbox.clock.version(),
    }


def reject_custom_fields(raw: Any) -> None:
    """The fake administration has no custom fields, so any id given is unknown (404, as Moneybird)."""
    entries = list(raw.values()) if isinstance(raw, dict) else list(raw or [])
    for entry in entries:
        field_id = entry.get("id") if isinstance(entry, dict) else entry
        raise symbolic_error(
            404,
            f"Custom field with id {field_id} not found for administration",
            custom_fields_attributes="not_found",
        )


def contact_in(call: Call, contact_id: str, *, key: str = "id") -> Record:
    contact = call.sandbox.contacts.get(contact_id)
    if contact is None or contact["administration_id"] != call.adm.id:
        raise not_found(key)
    return contact


def embedded_contact(contact: Record) -> Record:
    """The contact as an invoice carries it: a copy taken when the invoice is made."""
    return {k: copy.deepcopy(v) for k, v in contact.items() if k != "events"}


# -- handlers ----------------------------------------------------------------------------------


def create_contact(call: Call) -> Reply:
    data = unwrap(call.body, "contact", "Contact")
    return Reply(201, create_contact_record(call.sandbox, call.adm, data))


def update_contact(call: Call) -> Reply:
    contact = contact_in(call, call.params["id"])
    data = unwrap(call.body, "contact", "Contact")
    if "is_trusted" in data:
        raise symbolic_error(
            400, "An contact can only be trusted during the approval of a payment.", is_trusted="permission"
        )
    reject_unknown(data, CONTACT_UPDATE, prefix="")
    problems = Invalid()
    fields = coerce(data, CONTACT_UPDATE, prefix="", problems=problems)
    problems.raise_if_any()
    reject_custom_fields(fields.pop("custom_fields_attributes", None))
    _apply(call.sandbox, call.adm, contact, fields)
    call.sandbox.touch(contact, "contact_changed")
    return Reply(200, contact)


def get_contact(call: Call) -> Reply:
    contact = contact_in(call, call.params["id"])
    # The endpoint takes `include_archived` like the lists: without it an archived contact is not found.
    if contact["archived"] and not _include_archived(call):
        raise not_found("id")
    return Reply(200, contact)


def get_contact_by_customer_id(call: Call) -> Reply:
    wanted = call.params["customer_id"]
    for contact in _contacts_of(call, include_archived=True):
        if contact["customer_id"] == wanted:
            return Reply(200, contact)
    raise not_found("customer_id")


def delete_contact(call: Call) -> Reply:
    contact = contact_in(call, call.params["id"])
    in_use = any(
        inv.get("contact_id") == contact["id"]
        for store in (call.sandbox.sales_invoices, call.sandbox.external_sales_invoices)
        for inv in store.values()
    )
    if in_use:
        raise symbolic_error(422, "Contact is in use and cannot be destroyed", contact="in_use")
    del call.sandbox.contacts[contact["id"]]
    return Reply(204)


def archive_contact(call: Call) -> Reply:
    contact = contact_in(call, call.params["id"])
    if contact["archived"]:
        raise symbolic_error(400, "Contact can not be archived", id="can_not_be_archived")
    contact["archived"] = True
    call.sandbox.touch(contact, "contact_archived")
    return Reply(204)  # "Contact archived", no body (OpenAPI: patch_administration_id_contacts_id_archive)


def list_contacts(call: Call) -> Reply:
    found = _search(_contacts_of(call, include_archived=_include_archived(call)), call.query.get("query", ""))
    return list_reply(call, found)


def filter_contacts(call: Call) -> Reply:
    terms = parse_filter(call.query.get("filter"))
    found = _search(_contacts_of(call, include_archived=_include_archived(call)), call.query.get("query", ""))
    return list_reply(call, [c for c in found if _matches_filter(c, terms)])


def _include_archived(call: Call) -> bool:
    return call.query.get("include_archived", "").lower() == "true"


def synchronized_contacts(call: Call) -> list[Record]:
    """GET /contacts/synchronization: like the list, archived contacts only when asked for."""
    contacts = _contacts_of(call, include_archived=_include_archived(call))
    terms = parse_filter(call.query.get("filter"))
    return [c for c in contacts if _matches_filter(c, terms)]


def _contacts_of(call: Call, *, include_archived: bool) -> list[Record]:
    return [
        c
        for c in call.sandbox.contacts.values()
        if c["administration_id"] == call.adm.id and (include_archived or not c["archived"])
    ]


def _search(contacts: list[Record], query: str) -> list[Record]:
    """Fuzzy like Moneybird: every word must occur (case-insensitively) somewhere in the contact."""
    words = query.lower().split()
    if not words:
        return contacts
    return [
        c for c in contacts if all(any(w in str(c.get(f) or "").lower() for f in _SEARCHED) for w in words)
    ]


def _matches_filter(contact: Record, terms: dict[str, str]) -> bool:
    for key, value in terms.items():
        if key in ("created_after", "updated_after"):
            field = key.removesuffix("_after") + "_at"
            try:
                if parse_timestamp(contact[field]) <= parse_timestamp(value):
                    return False
            except ValueError as exc:
                raise symbolic_error(400, f"{key} is not a valid date", filter="invalid") from exc
        elif key in ("first_name", "last_name"):
            if str(contact[key.replace("_", "")] or "").lower() != value.lower():
                return False
        elif key == "contact_type":
            is_company = bool(contact["company_name"])
            if (value == "company" and not is_company) or (value == "private_individual" and is_company):
                return False
        elif key == "delivery_method" and value != "all":
            if contact["delivery_method"].lower() != value.lower():
                return False
        elif key in ("invoice_workflow_id", "estimate_workflow_id") and contact[key] != value:
            return False
    return True


def ensure_contact_id(call: Call, raw: Any) -> str:
    """Validates a contact id from a filter/query value (404 when unknown, as the external list does)."""
    contact = call.sandbox.contacts.get(str(raw))
    if contact is None or contact["administration_id"] != call.adm.id:
        raise ApiError(404, {"error": "record not found", "symbolic": {"contact_id": "not_found"}})
    return str(contact["id"])


def invalid_contact_for(root: str) -> ApiError:
    return symbolic_error(400, "Contact ID is invalid", **{root: {"contact_id": "contact_invalid"}})


def usable_contact(call: Call, contact_id: str | None, *, root: str) -> Record:
    """The contact a new invoice may go to: it exists here and is not archived (400 otherwise).

    Moneybird documents the 400 for an unknown contact (external_sales_invoices POST); an archived
    one is refused the same way, as shops report ("contact_id is invalid").
    """
    contact = call.sandbox.contacts.get(contact_id or "")
    if contact is None or contact["administration_id"] != call.adm.id or contact["archived"]:
        raise invalid_contact_for(root)
    return contact
