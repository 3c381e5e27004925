"""Which scopes of a Moneybird token each route accepts, from the OpenAPI document's security blocks.

A token is created with a set of scopes ticked (sales_invoices, documents, estimates, bank,
time_entries, settings). A request none of whose accepted scopes the token has is refused with
401 `{"error": "No access to <scope>"}` — the shape of the document's examples ("No access to
sales_invoices or estimates"); the document lists no 403 for a missing scope (403 is for features
an administration lacks).
"""

from __future__ import annotations

ALL_SCOPES = frozenset({"sales_invoices", "documents", "estimates", "bank", "time_entries", "settings"})
# The order Moneybird names them in its messages.
_NAMING_ORDER = ("sales_invoices", "estimates", "documents", "bank", "settings", "time_entries")

_CONTACTS = frozenset({"estimates", "sales_invoices", "documents", "bank", "settings"})
_READ_BOOKKEEPING = frozenset({"documents", "estimates", "sales_invoices", "settings"})
_SETTINGS = frozenset({"settings"})
_SALES = frozenset({"sales_invoices"})

# First path segment → accepted scopes; (segment, method) where a write needs more than a read.
_BY_RESOURCE: dict[str, frozenset[str]] = {
    "contacts": _CONTACTS,
    "sales_invoices": _SALES,
    "external_sales_invoices": _SALES,
    "tax_rates": _READ_BOOKKEEPING,
    "ledger_accounts": _READ_BOOKKEEPING,
    "workflows": _CONTACTS,
    "document_styles": frozenset({"estimates", "sales_invoices", "settings"}),
    "custom_fields": _CONTACTS,
    "financial_accounts": _SETTINGS,
    "identities": _SETTINGS,
    "products": _SETTINGS,
    "webhooks": _SETTINGS,
}
_WRITES: dict[str, frozenset[str]] = {"ledger_accounts": _SETTINGS}


def missing_scope(method: str, template: str, scopes: frozenset[str]) -> str | None:
    """The refusal's message when `scopes` lack what the route needs; None when allowed."""
    resource = template.strip("/").split("/")[0]
    accepted = _BY_RESOURCE.get(resource)
    if method != "GET":
        accepted = _WRITES.get(resource, accepted)
    if accepted is None or accepted & scopes:  # e.g. GET /payments/{id}: no scope listed
        return None
    return "No access to " + " or ".join(scope for scope in _NAMING_ORDER if scope in accepted)
