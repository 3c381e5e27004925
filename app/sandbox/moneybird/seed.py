"""Reference data a fresh Moneybird administration has, shaped like the API returns it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.moneybird.records import SandboxAdministration, SandboxBooks, SandboxTaxRate
from app.sandbox.moneybird.wire import Record, money_str

# name, percentage, type, country, tax report boxes, text the invoice must carry
_TAX_RATES: tuple[tuple[str, str, str, str | None, tuple[str, ...], str | None], ...] = (
    ("21% btw", "21", "sales_invoice", None, ("NL/1a",), None),
    ("9% btw", "9", "sales_invoice", None, ("NL/1b",), None),
    ("0% btw", "0", "sales_invoice", None, ("NL/1e",), None),
    ("Btw verlegd", "0", "sales_invoice", None, ("NL/3b",), "Btw verlegd"),
    ("0% btw buiten EU", "0", "sales_invoice", None, ("NL/3a",), "Export buiten de EU"),
    ("19% DE (OSS)", "19", "sales_invoice", "DE", ("OSS",), None),
    ("21% BE (OSS)", "21", "sales_invoice", "BE", ("OSS",), None),
    ("20% FR (OSS)", "20", "sales_invoice", "FR", ("OSS",), None),
    ("21% btw", "21", "purchase_invoice", None, ("NL/5b",), None),
    ("9% btw", "9", "purchase_invoice", None, ("NL/5b",), None),
)

_SALES_DOCS = ["sales_invoice", "financial_mutation", "general_journal_document"]
# name, account type, code, allowed document types
_LEDGER_ACCOUNTS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("Omzet", "revenue", "8000", _SALES_DOCS),
    ("Omzet verzendkosten", "revenue", "8010", _SALES_DOCS),
    ("Ongecategoriseerde inkomsten", "revenue", "8099", _SALES_DOCS),
    ("Te rubriceren ontvangen betalingen", "current_assets", "1099", ["financial_mutation"]),
    ("Verrekeningen", "current_liabilities", "1990", ["financial_mutation", "general_journal_document"]),
    ("Debiteuren", "current_assets", "1300", ["financial_mutation", "general_journal_document"]),
    ("Algemene kosten", "expenses", "4800", ["purchase_invoice", "financial_mutation"]),
)


def seed_administration(sandbox: SandboxBooks, *, name: str, administration_id: str) -> SandboxAdministration:
    stamp = sandbox.clock.timestamp()
    today = sandbox.clock.today()
    adm = SandboxAdministration(
        record={
            "id": administration_id,
            "name": name,
            "language": "nl",
            "currency": "EUR",
            "country": "NL",
            "time_zone": "Europe/Amsterdam",
            "access": "user",
            "suspended": False,
            "period_locked_until": None,
            "period_start_date": f"{today.year}-01-01",
        }
    )
    base = {"administration_id": administration_id, "created_at": stamp, "updated_at": stamp}
    _seed_tax_rates(sandbox, adm, base)
    _seed_ledger_accounts(sandbox, adm, base)
    _seed_settings(sandbox, adm, base)
    return adm


def _seed_tax_rates(sandbox: SandboxBooks, adm: SandboxAdministration, base: Record) -> None:
    for name, pct, rate_type, country, boxes, text in _TAX_RATES:
        rate_id = sandbox.ids.next()
        record = {
            "id": rate_id,
            **base,
            "name": name,
            "percentage": money_str(Decimal(pct)),
            "tax_rate_type": rate_type,
            "show_tax": True,
            "active": True,
            "country": country,
        }
        adm.tax_rates[rate_id] = SandboxTaxRate(record, Decimal(pct), boxes, text)
    adm.default_tax_rate_id = next(iter(adm.tax_rates))


def _seed_ledger_accounts(sandbox: SandboxBooks, adm: SandboxAdministration, base: Record) -> None:
    for name, account_type, code, docs in _LEDGER_ACCOUNTS:
        account_id = sandbox.ids.next()
        adm.ledger_accounts[account_id] = {
            "id": account_id,
            **base,
            "name": name,
            "account_type": account_type,
            "account_id": code,
            "parent_id": None,
            "active": True,
            "allowed_document_types": list(docs),
            "taxonomy_item": None,
            "financial_account_id": None,
        }
    by_name = {a["name"]: a["id"] for a in adm.ledger_accounts.values()}
    adm.default_ledger_account_id = by_name["Ongecategoriseerde inkomsten"]
    adm.payments_ledger_account_id = by_name["Te rubriceren ontvangen betalingen"]
    adm.settlement_ledger_account_id = by_name["Verrekeningen"]


def _seed_settings(sandbox: SandboxBooks, adm: SandboxAdministration, base: Record) -> None:
    identity_id = sandbox.ids.next()
    adm.identity = {
        "id": identity_id,
        "administration_id": adm.id,
        "company_name": adm.record["name"],
        "city": "Utrecht",
        "country": "NL",
        "zipcode": "3511AA",
        "address1": "Sandboxstraat 1",
        "address2": None,
        "email": "facturen@sandbox.invalid",
        "phone": None,
        "bank_account_name": None,
        "bank_account_number": "NL00SAND0000000000",
        "bank_account_bic": None,
        "custom_fields": [],
        "chamber_of_commerce": "00000000",
        "tax_number": "NL000000000B01",
        "created_at": base["created_at"],
        "updated_at": base["updated_at"],
    }
    for workflow in (
        _workflow(sandbox, base, kind="InvoiceWorkflow", name="Standaard", default=True, incl=False),
        _workflow(
            sandbox, base, kind="InvoiceWorkflow", name="Webshop (incl. btw)", default=False, incl=True
        ),
        _workflow(sandbox, base, kind="EstimateWorkflow", name="Standaard", default=True, incl=False),
    ):
        adm.workflows[workflow["id"]] = workflow
    style_id = sandbox.ids.next()
    adm.document_styles[style_id] = {
        "id": style_id,
        **base,
        "name": "Standaard",
        "identity_id": identity_id,
        "default": True,
        "paper_size": "A4",
    }
    for account_type, name, identifier in (
        ("BankAccount", "Zakelijke rekening", "NL00SAND0000000000"),
        ("CreditCardAccount", "Creditcard 0001", "0001"),
    ):
        account_id = sandbox.ids.next()
        adm.financial_accounts[account_id] = {
            "id": account_id,
            **base,
            "type": account_type,
            "name": name,
            "identifier": identifier,
            "currency": "EUR",
            "provider": None,
            "moneybird_account": False,
            "active": True,
        }


def _workflow(
    sandbox: SandboxBooks, base: Record, *, kind: str, name: str, default: bool, incl: bool
) -> dict[str, Any]:
    workflow_id = sandbox.ids.next()
    step = {
        "id": sandbox.ids.next(),
        **base,
        "step_order": 0,
        "due_interval": 14,
        "reminder_delay": 0,
        "reminder_text": None,
        "reminder_auto_send": False,
        "action": None,
    }
    return {
        "id": workflow_id,
        **base,
        "type": kind,
        "name": name,
        "default": default,
        "currency": "EUR",
        "language": "nl",
        "active": True,
        "prices_are_incl_tax": incl,
        "payment_methods": [],
        "collection_method": None,
        "number_of_collections": 0,
        "show_qr_code": True,
        "steps": [step],
    }
