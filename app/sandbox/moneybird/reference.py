"""Reference data and products of the Moneybird fake: tax rates, ledger accounts, workflows, styles,
products."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from app.sandbox.moneybird.records import Call, Reply, list_reply
from app.sandbox.moneybird.request_keys import PRODUCT
from app.sandbox.moneybird.wire import (
    Invalid,
    Record,
    coerce,
    money_str,
    not_found,
    parse_filter,
    parse_timestamp,
    reject_unknown,
    symbolic_error,
    unwrap,
)

_TAX_RATE_TYPES = ("all", "general_journal_document", "purchase_invoice", "sales_invoice")


def list_administrations(call: Call) -> Reply:
    return Reply(200, [adm.record for adm in call.sandbox.administrations.values()])


def list_tax_rates(call: Call) -> Reply:
    terms = parse_filter(call.query.get("filter"))
    rates = [rate.record for rate in call.adm.tax_rates.values()]
    return list_reply(call, [r for r in rates if _tax_rate_matches(r, terms)])


def _tax_rate_matches(rate: Record, terms: dict[str, str]) -> bool:
    return all(_tax_rate_term(rate, key, value) for key, value in terms.items())


def _tax_rate_term(rate: Record, key: str, value: str) -> bool:
    if key == "tax_rate_type":
        if value not in _TAX_RATE_TYPES:
            raise symbolic_error(400, "Tax rate type is not included in the list", filter="invalid")
        return value == "all" or rate["tax_rate_type"] == value
    if key == "percentage":
        try:
            return Decimal(rate["percentage"]) == Decimal(value)
        except InvalidOperation as exc:
            raise symbolic_error(400, "Percentage is not a number", filter="invalid") from exc
    if key == "country":
        return str(rate["country"] or "").upper() == value.upper()
    if key in ("active", "show_tax"):
        return str(rate[key]).lower() == value.lower()
    if key == "name":
        return bool(rate["name"] == value)
    if key == "partial_name":
        return value.lower() in rate["name"].lower()
    if key in ("created_after", "updated_after"):
        return parse_timestamp(rate[key.removesuffix("_after") + "_at"]) > parse_timestamp(value)
    return True  # unknown filter keys are ignored, as Moneybird does on other lists


def list_ledger_accounts(call: Call) -> Reply:
    # Not paginated in Moneybird: everything in one answer.
    return Reply(200, list(call.adm.ledger_accounts.values()))


def get_ledger_account(call: Call) -> Reply:
    account = call.adm.ledger_accounts.get(call.params["id"])
    if account is None:
        raise symbolic_error(404, "Record not found for model name: Category")
    return Reply(200, account)


def list_workflows(call: Call) -> Reply:
    return Reply(200, list(call.adm.workflows.values()))


def get_workflow(call: Call) -> Reply:
    workflow = call.adm.workflows.get(call.params["id"])
    if workflow is None:
        raise not_found()
    return Reply(200, workflow)


def list_document_styles(call: Call) -> Reply:
    return Reply(200, list(call.adm.document_styles.values()))


def list_financial_accounts(call: Call) -> Reply:
    return Reply(200, [a for a in call.adm.financial_accounts.values() if a["active"]])


def default_identity(call: Call) -> Reply:
    return Reply(200, call.adm.identity)


def list_identities(call: Call) -> Reply:
    return Reply(200, [call.adm.identity])


def list_custom_fields(call: Call) -> Reply:
    return Reply(200, [])


# -- products ----------------------------------------------------------------------------------


def create_product(call: Call) -> Reply:
    data = unwrap(call.body, "product", "Product")
    reject_unknown(data, PRODUCT, prefix="")
    problems = Invalid()
    fields = coerce(data, PRODUCT, prefix="", problems=problems)
    if not fields.get("title") and not fields.get("description"):
        problems.add("title", "can't be blank", "blank")
        problems.add("description", "can't be blank", "blank")
        problems.add("base", "must contain a title or description", "must_have_a_title_or_description")
    for key in ("price", "ledger_account_id"):
        if fields.get(key) is None:
            problems.add(key, "can't be blank", "blank")
    _check_product_links(call, fields, problems, except_id="")
    problems.raise_if_any()
    stamp = call.sandbox.clock.timestamp()
    product: Record = {
        "id": call.sandbox.ids.next(),
        "administration_id": call.adm.id,
        "description": None,
        "title": None,
        "identifier": None,
        "price": "0.0",
        "currency": call.adm.record["currency"],
        "frequency": None,
        "frequency_type": None,
        "tax_rate_id": call.adm.default_tax_rate_id,
        "ledger_account_id": None,
        "created_at": stamp,
        "updated_at": stamp,
    }
    _apply_product(product, fields)
    call.sandbox.products[product["id"]] = product
    return Reply(201, product)


def update_product(call: Call) -> Reply:
    product = _product_in(call)
    data = unwrap(call.body, "product", "Product")
    reject_unknown(data, PRODUCT, prefix="")
    problems = Invalid()
    fields = coerce(data, PRODUCT, prefix="", problems=problems)
    _check_product_links(call, fields, problems, except_id=product["id"])
    problems.raise_if_any()
    _apply_product(product, fields)
    product["updated_at"] = call.sandbox.clock.timestamp()
    return Reply(200, product)


def _check_product_links(call: Call, fields: Record, problems: Invalid, *, except_id: str) -> None:
    if fields.get("tax_rate_id") and fields["tax_rate_id"] not in call.adm.tax_rates:
        problems.add("tax_rate_id", "is not found", "invalid", value=fields["tax_rate_id"])
    if fields.get("ledger_account_id") and fields["ledger_account_id"] not in call.adm.ledger_accounts:
        problems.add("ledger_account_id", "is not found", "invalid", value=fields["ledger_account_id"])
    for key in ("workflow_id", "document_style_id"):
        known = call.adm.workflows if key == "workflow_id" else call.adm.document_styles
        if fields.get(key) and fields[key] not in known:
            problems.add(key, "is not found", "invalid", value=fields[key])
    identifier = fields.get("identifier")
    if identifier and any(
        p["identifier"] == identifier and p["administration_id"] == call.adm.id and p["id"] != except_id
        for p in call.sandbox.products.values()
    ):
        problems.add("identifier", "has already been taken", "taken", value=identifier)
    if fields.get("description") and len(fields["description"]) > 4096:
        problems.add("description", "is too long (maximum is 4096 characters)", "too_long", count=4096)


def _apply_product(product: Record, fields: Record) -> None:
    for key in ("title", "description", "identifier", "currency", "frequency", "frequency_type"):
        if key in fields:
            product[key] = fields[key]
    for key in ("tax_rate_id", "ledger_account_id"):
        if fields.get(key):
            product[key] = fields[key]
    if fields.get("price") is not None:
        product["price"] = money_str(fields["price"])


def _product_in(call: Call, *, by_model_name: bool = False) -> Record:
    """Moneybird words this 404 differently per endpoint: GET names the model, PATCH/DELETE are symbolic."""
    product = call.sandbox.products.get(call.params["id"])
    if product is None or product["administration_id"] != call.adm.id:
        raise (
            symbolic_error(404, "Record not found for model name: Product") if by_model_name else not_found()
        )
    return product


def get_product(call: Call) -> Reply:
    return Reply(200, _product_in(call, by_model_name=True))


def delete_product(call: Call) -> Reply:
    product = _product_in(call)
    del call.sandbox.products[product["id"]]
    return Reply(204)


def get_product_by_identifier(call: Call) -> Reply:
    for product in call.sandbox.products.values():
        if product["administration_id"] == call.adm.id and product["identifier"] == call.params["identifier"]:
            return Reply(200, product)
    raise not_found()


def list_products(call: Call) -> Reply:
    words = call.query.get("query", "").lower().split()
    products = [
        p
        for p in call.sandbox.products.values()
        if p["administration_id"] == call.adm.id
        and all(
            any(w in str(p[f] or "").lower() for f in ("title", "description", "identifier")) for w in words
        )
        and (
            "ledger_account_id" not in call.query or p["ledger_account_id"] == call.query["ledger_account_id"]
        )
        and ("currency" not in call.query or p["currency"] == call.query["currency"])
    ]
    return list_reply(call, products, default_per_page=10, style="products")
