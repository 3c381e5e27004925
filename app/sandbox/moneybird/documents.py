"""What sales invoices and external sales invoices share: detail lines, totals, payments, periods."""

from __future__ import annotations

import calendar
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from app.sandbox.moneybird.records import Call, Rounding, SandboxAdministration, SandboxBooks
from app.sandbox.moneybird.request_keys import DETAIL, MANUAL_PAYMENT_ACTIONS, PAYMENT, PERIOD_PRESETS
from app.sandbox.moneybird.wire import (
    CENT,
    ApiError,
    Invalid,
    Record,
    coerce,
    invalid,
    money_str,
    not_found,
    parse_date,
    parse_number,
    quantity_display,
    reject_unknown,
    round_cents,
    symbolic_error,
    unwrap,
)

_ONE = Decimal(1)
_HUNDRED = Decimal(100)
UNPAYABLE_STATES = frozenset({"draft", "scheduled", "uncollectible"})


# -- totals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    line_net: tuple[Decimal, ...]
    tax_totals: tuple[tuple[str, Decimal, Decimal], ...]  # (tax rate id, taxable amount, tax amount)
    excl: Decimal
    incl: Decimal


def compute_totals(
    details: list[Record],
    *,
    percentages: Mapping[str, Decimal],
    incl_tax: bool,
    rounding: Rounding,
    discount: Decimal,
) -> Totals:
    """Moneybird's arithmetic as far as known; whether VAT is rounded per line or per rate is a switch.

    Excl. tax: taxable = round(Σ amount×price), tax = round_half_up(taxable × pct).
    Incl. tax: gross = round(Σ amount×price), taxable = round(gross / (1 + pct)), tax = gross − taxable.
    per_line applies that to every line and sums; per_rate applies it once per tax rate.
    """
    factor = _ONE - discount / _HUNDRED
    split = _split_gross if incl_tax else _split_net
    values = [Decimal(d["amount_decimal"]) * Decimal(d["price"]) * factor for d in details]
    fractions = [percentages[d["tax_rate_id"]] / _HUNDRED for d in details]
    grouped: dict[str, list[int]] = {}
    for index, detail in enumerate(details):
        grouped.setdefault(detail["tax_rate_id"], []).append(index)
    tax_totals = []
    for rate_id, indexes in grouped.items():
        fraction = percentages[rate_id] / _HUNDRED
        groups = [[values[i]] for i in indexes] if rounding == "per_line" else [[values[i] for i in indexes]]
        parts = [split(group, fraction) for group in groups]
        tax_totals.append(
            (rate_id, sum((p[0] for p in parts), Decimal(0)), sum((p[1] for p in parts), Decimal(0)))
        )
    excl = sum((t[1] for t in tax_totals), Decimal(0))
    tax = sum((t[2] for t in tax_totals), Decimal(0))
    line_net = tuple(split([v], f)[0] for v, f in zip(values, fractions, strict=True))
    return Totals(line_net=line_net, tax_totals=tuple(tax_totals), excl=excl, incl=excl + tax)


def _split_net(values: Iterable[Decimal], fraction: Decimal) -> tuple[Decimal, Decimal]:
    taxable = round_cents(sum(values, Decimal(0)))
    return taxable, round_cents(taxable * fraction)


def _split_gross(values: Iterable[Decimal], fraction: Decimal) -> tuple[Decimal, Decimal]:
    gross = round_cents(sum(values, Decimal(0)))
    taxable = round_cents(gross / (_ONE + fraction))
    return taxable, gross - taxable


def refresh_totals(sandbox: SandboxBooks, adm: SandboxAdministration, doc: Record) -> None:
    """Recompute every derived money field of a document from its details and payments."""
    percentages = {rate_id: rate.percentage for rate_id, rate in adm.tax_rates.items()}
    discount = Decimal(doc.get("discount") or "0")
    totals = compute_totals(
        doc["details"],
        percentages=percentages,
        incl_tax=doc["prices_are_incl_tax"],
        rounding=sandbox.rounding,
        discount=discount,
    )
    for detail, net in zip(doc["details"], totals.line_net, strict=True):
        detail["total_price_excl_tax_with_discount"] = detail["total_price_excl_tax_with_discount_base"] = (
            money_str(net)
        )
    paid = sum((Decimal(p["price"]) for p in doc["payments"]), Decimal(0))
    tax_totals = list(totals.tax_totals)
    incl = totals.incl
    skew = sandbox.total_skews.get(doc["id"], Decimal(0))
    if skew and tax_totals:  # a VAT rule of Moneybird's own (`skew_next_totals`)
        rate_id, taxable, tax = tax_totals[0]
        tax_totals[0] = (rate_id, taxable, tax + skew)
        incl += skew
    # No exchange rates in the fake: *_base amounts equal the document currency amounts.
    _set_pair(doc, "total_price_excl_tax", totals.excl)
    _set_pair(doc, "total_price_incl_tax", incl)
    _set_pair(doc, "total_unpaid", incl - paid)
    doc["total_paid"] = money_str(paid)
    doc["tax_totals"] = [
        {
            "tax_rate_id": rate_id,
            "taxable_amount": money_str(taxable),
            "taxable_amount_base": money_str(taxable),
            "tax_amount": money_str(tax),
            "tax_amount_base": money_str(tax),
        }
        for rate_id, taxable, tax in tax_totals
    ]
    if "total_discount" in doc:
        undiscounted = totals if not discount else _undiscounted(doc, percentages, sandbox.rounding)
        doc["total_discount"] = money_str(undiscounted.excl - totals.excl)


def _undiscounted(doc: Record, percentages: Mapping[str, Decimal], rounding: Rounding) -> Totals:
    return compute_totals(
        doc["details"],
        percentages=percentages,
        incl_tax=doc["prices_are_incl_tax"],
        rounding=rounding,
        discount=Decimal(0),
    )


def _set_pair(doc: Record, key: str, value: Decimal) -> None:
    doc[key] = money_str(value)
    doc[f"{key}_base"] = money_str(value)


def unpaid(doc: Record) -> Decimal:
    return Decimal(doc["total_unpaid"])


# -- details -----------------------------------------------------------------------------------


def build_details(call: Call, raw: Any, *, existing: list[Record], problems: Invalid) -> list[Record]:
    """New detail list from `details_attributes` (array or index-keyed hash) applied to `existing`."""
    details = copy.deepcopy(existing)
    for item in _detail_items(raw):
        reject_unknown(item, DETAIL, prefix="details.")
        fields = coerce(item, DETAIL, prefix="details.", problems=problems)
        if fields.get("id"):
            match = next((d for d in details if d["id"] == fields["id"]), None)
            if match is None:
                problems.add("details.id", "is not found", "invalid", value=fields["id"])
            elif fields.get("_destroy"):
                details.remove(match)
            else:
                _fill_detail(call, match, fields, problems, new=False)
        elif not fields.get("_destroy"):
            detail = _new_detail(call, row_order=len(details))
            _fill_detail(call, detail, fields, problems, new=True)
            details.append(detail)
    return details


def _detail_items(raw: Any) -> list[Record]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise invalid("details_attributes", "is invalid", "invalid")
    return raw


def _new_detail(call: Call, *, row_order: int) -> Record:
    stamp = call.sandbox.clock.timestamp()
    return {
        "id": call.sandbox.ids.next(),
        "administration_id": call.adm.id,
        "tax_rate_id": call.adm.default_tax_rate_id,
        "ledger_account_id": call.adm.default_ledger_account_id,
        "project_id": None,
        "product_id": None,
        "amount": None,
        "amount_decimal": "1.0",
        "description": "",
        "price": None,
        "period": None,
        "row_order": row_order,
        "total_price_excl_tax_with_discount": "0.0",
        "total_price_excl_tax_with_discount_base": "0.0",
        "tax_report_reference": [],
        "mandatory_tax_text": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def _fill_detail(call: Call, detail: Record, fields: Record, problems: Invalid, *, new: bool) -> None:
    if fields.get("product_id"):
        _apply_product(call, detail, fields, problems, new=new)
    for key in ("is_optional", "is_selected"):
        if key in fields:
            problems.add(f"details.{key}", "is only allowed on estimates", "invalid")
    if fields.get("project_id"):
        problems.add("details.project_id", "is not found", "invalid")
    _set_description(detail, fields, problems)
    _set_price(detail, fields, problems, new=new)
    if "amount" in fields:
        quantity: Decimal = fields["amount"]
        detail["amount_decimal"] = money_str(quantity)
        detail["amount"] = quantity_display(quantity)
    if fields.get("tax_rate_id"):
        _set_tax_rate(call.adm, detail, fields["tax_rate_id"], problems)
    else:
        _set_tax_rate(call.adm, detail, detail["tax_rate_id"], problems)
    if fields.get("ledger_account_id"):
        _set_ledger_account(call.adm, detail, fields["ledger_account_id"], problems)
    if "period" in fields:
        detail["period"] = _checked_period(fields["period"], problems)
    if "row_order" in fields:
        detail["row_order"] = fields["row_order"]
    detail["updated_at"] = call.sandbox.clock.timestamp()


def _apply_product(call: Call, detail: Record, fields: Record, problems: Invalid, *, new: bool) -> None:
    product = call.sandbox.products.get(fields["product_id"])
    if product is None or product["administration_id"] != call.adm.id:
        problems.add("details.product_id", "is not found", "invalid", value=fields["product_id"])
        return
    detail["product_id"] = product["id"]
    if new:
        fields.setdefault("price", Decimal(product["price"]))
        fields.setdefault("description", product["description"] or product["title"] or "")
        for key in ("tax_rate_id", "ledger_account_id"):
            if product[key]:
                fields.setdefault(key, product[key])


def _set_description(detail: Record, fields: Record, problems: Invalid) -> None:
    if "description" not in fields:
        return
    if len(fields["description"]) > 4096:
        problems.add(
            "details.description", "is too long (maximum is 4096 characters)", "too_long", count=4096
        )
    detail["description"] = fields["description"]


def _set_price(detail: Record, fields: Record, problems: Invalid, *, new: bool) -> None:
    if "price" not in fields:
        if new:
            problems.add("details.price", "can't be blank", "blank")
        return
    price = fields["price"]
    if price is None:
        problems.add("details.price", "can't be blank", "blank")
    elif price != price.quantize(CENT):
        problems.add("details.price", "can have at most 2 decimals", "invalid", value=str(price))
    else:
        detail["price"] = money_str(price)


def _set_tax_rate(adm: SandboxAdministration, detail: Record, rate_id: str, problems: Invalid) -> None:
    rate = adm.tax_rates.get(rate_id)
    if rate is None:
        problems.add("details.tax_rate_id", "is not found", "invalid", value=rate_id)
    elif rate.record["tax_rate_type"] != "sales_invoice" or not rate.record["active"]:
        problems.add(
            "details.tax_rate_id", "is not a sales invoice tax rate", "invalid_tax_rate", value=rate_id
        )
    else:
        detail["tax_rate_id"] = rate_id
        detail["tax_report_reference"] = list(rate.report_reference)
        detail["mandatory_tax_text"] = rate.mandatory_text


def _set_ledger_account(
    adm: SandboxAdministration, detail: Record, account_id: str, problems: Invalid
) -> None:
    account = adm.ledger_accounts.get(account_id)
    if account is None:
        problems.add("details.ledger_account_id", "is not found", "invalid", value=account_id)
    elif "sales_invoice" not in account["allowed_document_types"]:
        problems.add(
            "details.ledger_account_id", "is not allowed on sales invoices", "invalid", value=account_id
        )
    else:
        detail["ledger_account_id"] = account_id


def _checked_period(value: str, problems: Invalid) -> str:
    if value in PERIOD_PRESETS:
        return value
    start, sep, end = value.partition("..")
    if sep and len(start) == len(end) == 8 and start.isdigit() and end.isdigit():
        return value
    problems.add("details.period", "is invalid", "invalid", value=value)
    return value


# -- payments ----------------------------------------------------------------------------------


def register_payment(call: Call, doc: Record, *, invoice_type: str) -> Record:
    """POST …/payments: validates like Moneybird, refuses drafts and overpayment, books and settles."""
    data = unwrap(call.body, "payment", "Payment")
    reject_unknown(data, PAYMENT, prefix="")
    problems = Invalid()
    fields = coerce(data, PAYMENT, prefix="", problems=problems)
    payment_date = _payment_date(data.get("payment_date"), problems)
    price = _payment_price(data.get("price"), problems)
    _check_payment_links(call, fields, doc, problems)
    problems.raise_if_any()
    assert payment_date is not None  # raise_if_any covered a missing or bad date
    assert price is not None
    check_payable(doc, price)
    payment = new_payment(call, doc, invoice_type=invoice_type, price=price, payment_date=payment_date)
    payment.update(
        {
            "transaction_identifier": fields.get("transaction_identifier"),
            "manual_payment_action": fields.get("manual_payment_action"),
            "financial_account_id": fields.get("financial_account_id"),
            "price_base": money_str(fields["price_base"]) if fields.get("price_base") else money_str(price),
        }
    )
    if fields.get("ledger_account_id"):
        payment["ledger_account_id"] = fields["ledger_account_id"]
    book_payment(call, doc, payment)
    return payment


def _payment_date(raw: Any, problems: Invalid) -> date | None:
    if raw is None or raw == "":
        problems.add("payment_date", "can't be blank", "blank")
        problems.add("payment_date", "is not a valid date", "is not a valid date")
        return None
    try:
        return parse_date(raw, allow_timestamp=True)
    except ValueError:
        problems.add("payment_date", "is not a valid date", "is not a valid date")
        return None


def _payment_price(raw: Any, problems: Invalid) -> Decimal | None:
    if raw is None or raw == "":
        problems.add("price", "can't be blank", "blank")
        problems.add("price", "is not a number", "not_a_number", value=None)
        return None
    try:
        price = parse_number(raw, bounded=True)
    except ValueError:
        problems.add("price", "is not a number", "not_a_number", value=raw)
        return None
    if price is not None and price != price.quantize(CENT):
        problems.add("price", "can have at most 2 decimals", "invalid", value=str(price))
        return None
    return price


def _check_payment_links(call: Call, fields: Record, doc: Record, problems: Invalid) -> None:
    action = fields.get("manual_payment_action")
    if action is not None and action not in MANUAL_PAYMENT_ACTIONS:
        problems.add("manual_payment_action", "is not included in the list", "inclusion", value=action)
    account = fields.get("financial_account_id")
    if account and account not in call.adm.financial_accounts:
        problems.add("financial_account_id", "is not found", "invalid", value=account)
    if action in ("private_payment", "cash_payment") and not account:
        problems.add("financial_account_id", "can't be blank", "blank")
    if fields.get("financial_mutation_id"):
        problems.add(
            "financial_mutation_id", "is not found", "invalid", value=fields["financial_mutation_id"]
        )
    ledger = fields.get("ledger_account_id")
    if ledger and ledger not in call.adm.ledger_accounts:
        problems.add("ledger_account_id", "is not found", "invalid", value=ledger)
    if doc["currency"] != call.adm.record["currency"] and fields.get("price_base") is None:
        problems.add("price_base", "can't be blank", "blank")


def check_payable(doc: Record, price: Decimal) -> None:
    """Drafts take no payment; a payment may settle, never exceed, what is open (same sign, ≤ unpaid)."""
    if doc["state"] in UNPAYABLE_STATES:
        raise invalid(
            "base",
            f"Cannot register a payment on a {doc['state']} invoice; send the invoice first",
            "invoice_not_payable",
            state=doc["state"],
        )
    open_amount = unpaid(doc)
    if price == 0:
        raise invalid("price", "must be other than 0", "other_than", value=money_str(price))
    if open_amount == 0:
        raise invalid("base", "Invoice is already paid", "already_paid")
    if (price > 0) != (open_amount > 0) or abs(price) > abs(open_amount):
        raise invalid(
            "price",
            f"exceeds the open amount of {money_str(open_amount)}",
            "greater_than_open_amount",
            value=money_str(price),
            count=money_str(open_amount),
        )


def new_payment(call: Call, doc: Record, *, invoice_type: str, price: Decimal, payment_date: date) -> Record:
    stamp = call.sandbox.clock.timestamp()
    return {
        "id": call.sandbox.ids.next(),
        "administration_id": call.adm.id,
        "invoice_type": invoice_type,
        "invoice_id": doc["id"],
        "financial_account_id": None,
        "user_id": call.sandbox.user_id,
        "payment_transaction_id": None,
        "transaction_identifier": None,
        "price": money_str(price),
        "price_base": money_str(price),
        "payment_date": payment_date.isoformat(),
        "credit_invoice_id": None,
        "financial_mutation_id": None,
        "ledger_account_id": call.adm.payments_ledger_account_id,
        "linked_payment_id": None,
        "manual_payment_action": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def book_payment(call: Call, doc: Record, payment: Record) -> None:
    doc["payments"].append(payment)
    refresh_totals(call.sandbox, call.adm, doc)
    call.sandbox.touch(doc, "payment_registered", data={"payment_id": payment["id"]})
    if unpaid(doc) == 0:
        doc["paid_at"] = payment["payment_date"]
        set_state(call.sandbox, doc, "paid")


def delete_payment(call: Call, doc: Record) -> None:
    payment = next((p for p in doc["payments"] if p["id"] == call.params["payment_id"]), None)
    if payment is None:
        raise not_found("id")
    doc["payments"].remove(payment)
    refresh_totals(call.sandbox, call.adm, doc)
    call.sandbox.touch(doc, "payment_destroyed", data={"payment_id": payment["id"]})
    if doc["state"] == "paid" and unpaid(doc) != 0:
        doc["paid_at"] = None
        set_state(call.sandbox, doc, due_state(call.sandbox, doc))


def due_state(sandbox: SandboxBooks, doc: Record) -> str:
    """open, or late once the due date has passed (the fake decides this when the state is set)."""
    due = doc.get("due_date")
    return "late" if due and date.fromisoformat(due) < sandbox.clock.today() else "open"


def set_state(sandbox: SandboxBooks, doc: Record, state: str) -> None:
    if doc["state"] != state:
        doc["state"] = state
        prefix = "external_sales_invoice" if "entry_number" in doc else "sales_invoice"
        sandbox.touch(doc, f"{prefix}_state_changed_to_{state}")


def find_payment(sandbox: SandboxBooks, adm_id: str, payment_id: str) -> Record:
    for store in (sandbox.sales_invoices, sandbox.external_sales_invoices):
        for doc in store.values():
            for payment in doc["payments"] if doc["administration_id"] == adm_id else ():
                if payment["id"] == payment_id:
                    return dict(payment)
    raise not_found("id")


# -- list filters ------------------------------------------------------------------------------


def period_range(value: str, today: date) -> tuple[date, date]:
    """A Moneybird period: presets like this_year, or YYYYMM..YYYYMM / YYYYMMDD..YYYYMMDD."""
    if value in PERIOD_PRESETS:
        return _preset_range(value, today)
    start, sep, end = value.partition("..")
    if sep and (not start or not end):
        raise ApiError(400, {"error": "Period must have both a start and end date"})
    try:
        if sep and len(start) == len(end) == 6:
            first = date(int(start[:4]), int(start[4:]), 1)
            last_year, last_month = int(end[:4]), int(end[4:])
            return first, date(last_year, last_month, calendar.monthrange(last_year, last_month)[1])
        if sep and len(start) == len(end) == 8:
            return date(int(start[:4]), int(start[4:6]), int(start[6:])), date(
                int(end[:4]), int(end[4:6]), int(end[6:])
            )
    except ValueError:
        pass
    raise symbolic_error(400, "Period is invalid", filter="invalid")


def _preset_range(value: str, today: date) -> tuple[date, date]:
    when, unit = value.split("_")
    shift = {"this": 0, "prev": -1, "next": 1}[when]
    if unit == "week":
        start = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        return start, start + timedelta(days=6)
    if unit == "year":
        return date(today.year + shift, 1, 1), date(today.year + shift, 12, 31)
    months = 3 if unit == "quarter" else 1
    first_month = (today.month - 1) // months * months + shift * months
    year, month0 = today.year + first_month // 12, first_month % 12
    start = date(year, month0 + 1, 1)
    end_month0 = month0 + months - 1
    end_year, end_month = year + end_month0 // 12, end_month0 % 12 + 1
    return start, date(end_year, end_month, calendar.monthrange(end_year, end_month)[1])


def check_states(value: str, allowed: Iterable[str]) -> set[str]:
    states = set(value.split("|"))
    if not states <= set(allowed):
        raise symbolic_error(400, "State is not included in the list", filter="invalid")
    return states
