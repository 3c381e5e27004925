"""A Moneybird administration's reference data as plain values.

The Moneybird client produces these from the wire; the invoice plan consumes them. Neither side
needs to know the other's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TaxRate:
    id: str
    name: str
    percentage: Decimal
    tax_rate_type: str  # sales_invoice | purchase_invoice | general_journal_document
    active: bool = True
    country: str | None = None  # set only on foreign (OSS) rates
    show_tax: bool = True


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    id: str
    name: str
    account_type: str
    account_id: str | None = None
    allowed_document_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    type: str  # InvoiceWorkflow | EstimateWorkflow
    default: bool = False
    prices_are_incl_tax: bool = False
    currency: str = "EUR"
    active: bool = True


@dataclass(frozen=True, slots=True)
class DocumentStyle:
    id: str
    name: str
    default: bool = False


@dataclass(frozen=True, slots=True)
class AdministrationReference:
    """Everything the plan may look up about the administration, fetched once and cached."""

    administration_id: str
    currency: str = "EUR"
    country: str = "NL"
    tax_rates: tuple[TaxRate, ...] = ()
    ledger_accounts: tuple[LedgerAccount, ...] = ()
    workflows: tuple[Workflow, ...] = ()
    document_styles: tuple[DocumentStyle, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def sales_tax_rates(self) -> tuple[TaxRate, ...]:
        return tuple(r for r in self.tax_rates if r.tax_rate_type == "sales_invoice" and r.active)

    def revenue_accounts(self) -> tuple[LedgerAccount, ...]:
        return tuple(
            a
            for a in self.ledger_accounts
            if a.account_type == "revenue"
            and (not a.allowed_document_types or "sales_invoice" in a.allowed_document_types)
        )

    def tax_rate(self, rate_id: str) -> TaxRate | None:
        return next((r for r in self.tax_rates if r.id == rate_id), None)
