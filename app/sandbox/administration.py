"""A Dutch Moneybird administration's reference data, for dry runs without a Moneybird account.

The names follow a fresh Moneybird administration (and woobird's built-in Moneybird sandbox);
the ids are fixed so a printed plan is the same every time.
"""

from __future__ import annotations

from decimal import Decimal

from app.invoicing.reference import AdministrationReference, DocumentStyle, LedgerAccount, TaxRate, Workflow

SANDBOX_ADMINISTRATION_ID = "468139513215436010"

SALES_21 = "468139513387402477"
SALES_9 = "468139513392645358"
SALES_0 = "468139513396839663"
REVERSE_CHARGE = "468139513401033968"
EXPORT = "468139513405228273"
OSS_DE_19 = "468139513409422578"
OSS_BE_21 = "468139513413616883"
OSS_FR_20 = "468139513417811188"
PURCHASE_21 = "468139513422005493"
PURCHASE_9 = "468139513426199798"

REVENUE = "468139513430394103"
UNCATEGORISED_REVENUE = "468139513434588408"
INVOICE_WORKFLOW = "468139513438782713"
DOCUMENT_STYLE = "468139513442977018"


def sandbox_reference() -> AdministrationReference:
    def sales(rate_id: str, name: str, percentage: str, country: str | None = None) -> TaxRate:
        return TaxRate(rate_id, name, Decimal(percentage), "sales_invoice", country=country)

    sales_documents = ("sales_invoice", "financial_mutation", "general_journal_document")
    return AdministrationReference(
        administration_id=SANDBOX_ADMINISTRATION_ID,
        currency="EUR",
        country="NL",
        tax_rates=(
            sales(SALES_21, "21% btw", "21.0"),
            sales(SALES_9, "9% btw", "9.0"),
            sales(SALES_0, "0% btw", "0.0"),
            sales(REVERSE_CHARGE, "Btw verlegd", "0.0"),
            sales(EXPORT, "0% btw buiten EU", "0.0"),
            sales(OSS_DE_19, "19% DE (OSS)", "19.0", "DE"),
            sales(OSS_BE_21, "21% BE (OSS)", "21.0", "BE"),
            sales(OSS_FR_20, "20% FR (OSS)", "20.0", "FR"),
            TaxRate(PURCHASE_21, "21% btw", Decimal("21.0"), "purchase_invoice"),
            TaxRate(PURCHASE_9, "9% btw", Decimal("9.0"), "purchase_invoice"),
        ),
        ledger_accounts=(
            LedgerAccount(REVENUE, "Omzet", "revenue", "8000", sales_documents),
            LedgerAccount(
                UNCATEGORISED_REVENUE, "Ongecategoriseerde inkomsten", "revenue", "8099", sales_documents
            ),
        ),
        workflows=(
            Workflow(INVOICE_WORKFLOW, "Standaard", "InvoiceWorkflow", default=True),
            Workflow("468139513447171323", "Standaard", "EstimateWorkflow", default=True),
        ),
        document_styles=(DocumentStyle(DOCUMENT_STYLE, "Standaard", default=True),),
    )
