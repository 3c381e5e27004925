"""An administration's records and the shapes every handler of the fake works with: one request
(`Call`), one answer (`Reply`), a page of a list."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import httpx

from app.sandbox.moneybird.wire import Clock, IdMint, Record, paginate


@dataclass(frozen=True)
class SandboxTaxRate:
    record: Record
    percentage: Decimal
    report_reference: tuple[str, ...]
    mandatory_text: str | None


@dataclass
class SandboxAdministration:
    """One administration's reference data and number sequences."""

    record: Record
    tax_rates: dict[str, SandboxTaxRate] = field(default_factory=dict)
    ledger_accounts: dict[str, Record] = field(default_factory=dict)
    workflows: dict[str, Record] = field(default_factory=dict)
    document_styles: dict[str, Record] = field(default_factory=dict)
    financial_accounts: dict[str, Record] = field(default_factory=dict)
    identity: Record = field(default_factory=dict)
    default_tax_rate_id: str = ""
    default_ledger_account_id: str = ""
    payments_ledger_account_id: str = ""
    settlement_ledger_account_id: str = ""
    prices_are_incl_tax: bool = False
    draft_counter: int = 0
    customer_counter: int = 0
    entry_counter: int = 0
    invoice_numbers: dict[int, int] = field(default_factory=dict)  # year -> last number

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def default_workflow(self) -> Record:
        return next(w for w in self.workflows.values() if w["type"] == "InvoiceWorkflow" and w["default"])

    def default_document_style(self) -> Record:
        return next(s for s in self.document_styles.values() if s["default"])


Rounding = Literal["per_line", "per_rate"]


class SandboxBooks(Protocol):
    """What the handlers and the seed read and write of one fake Moneybird: its records, clock and
    ids. `MoneybirdSandbox` (state.py) is the one implementation; naming it here instead keeps
    state.py, which imports the handlers' helpers, above them."""

    clock: Clock
    ids: IdMint
    web_url: str
    user_id: str
    administrations: dict[str, SandboxAdministration]
    contacts: dict[str, Record]
    sales_invoices: dict[str, Record]
    external_sales_invoices: dict[str, Record]
    products: dict[str, Record]
    due_intervals: dict[str, int]
    rounding: Rounding
    total_skews: dict[str, Decimal]

    # Webhooks and their pushes (webhooks.py); `pushes` holds webhooks.Push.
    @property
    def lock(self) -> AbstractContextManager[Any, Any]: ...

    webhooks: dict[str, Record]
    pushes: list[Any]
    push_client: httpx.AsyncClient | None
    push_retry_seconds: float
    next_webhook_secret: str | None

    def touch(self, record: Record, *actions: str, data: Record | None = None) -> None: ...

    def take_total_skew(self, document_id: str) -> None: ...


@dataclass
class Call:
    """One request as a handler sees it: path params, query, JSON body (a dict) and its administration."""

    sandbox: SandboxBooks
    adm: SandboxAdministration
    params: dict[str, str]
    query: dict[str, str]
    body: Record
    url: str  # the request URL without query, for Link headers


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def list_reply(
    call: Call, items: list[Record], *, default_per_page: int = 50, style: str = "default"
) -> Reply:
    """A bare JSON array page with a Link header (rel next/prev) when there are other pages."""
    page = paginate(items, call.query, default_per_page=default_per_page, style=style)
    links = []
    for rel, number in page.links.items():
        query = {**call.query, "page": str(number), "per_page": str(page.per_page)}
        links.append(f'<{call.url}?{urlencode(query)}>; rel="{rel}"')
    headers = {"Link": ", ".join(links)} if links else {}
    return Reply(200, page.items, headers)
