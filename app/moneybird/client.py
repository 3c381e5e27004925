"""The one way woobird talks to Moneybird: a typed async client, one method per endpoint it uses.

Bodies are wrapped in the resource's root key and answers come back as the models in
`app.moneybird.models`. How a request travels — the shared rate limit, retried reads, 429s,
Moneybird's errors as one tree — is `app.moneybird.http`, underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Self

import httpx
import structlog

from app.moneybird.errors import MoneybirdConfigurationError, MoneybirdNotFound
from app.moneybird.http import MoneybirdHttp, ResponseHook, TokenRefresher, parse, parse_list
from app.moneybird.models import (
    Administration,
    Contact,
    ContactCreate,
    ContactUpdate,
    ContactVersion,
    DocumentStyleResponse,
    ExternalSalesInvoice,
    ExternalSalesInvoiceCreate,
    FinancialAccount,
    LedgerAccountResponse,
    MoneybirdWebhook,
    Payment,
    PaymentCreate,
    Product,
    ProductCreate,
    SalesInvoice,
    SalesInvoiceCreate,
    SalesInvoiceSending,
    TaxRateResponse,
    WorkflowResponse,
)
from app.moneybird.ratelimit import RateLimiter

if TYPE_CHECKING:
    from collections import Counter

    from app.settings import Settings

log = structlog.get_logger("woobird.moneybird")

InvoiceKind = Literal["sales_invoice", "external_sales_invoice"]
# POST …/synchronization answers at most this many records, whatever it is sent.
SYNCHRONIZATION_BATCH = 100
# Moneybird's list filters: without an explicit period they silently cover this year only.
WIDE_PERIOD_START = date(2000, 1, 1)


class MoneybirdClient:
    """Typed access to one Moneybird administration. Use as `async with`, or call `aclose()`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        administration_id: str,
        limiter: RateLimiter | None = None,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: ResponseHook | None = None,
        get_attempts: int = 3,
        blip_wait: tuple[float, float] = (0.2, 1.0),
        short_rate_limit_wait: float = 3.0,
        limiter_max_wait: float | None = 20.0,
        on_unauthorized: TokenRefresher | None = None,
    ) -> None:
        self.administration_id = administration_id
        self._http = MoneybirdHttp(
            base_url=base_url,
            token=token,
            administration_id=administration_id,
            limiter=limiter,
            timeout=timeout,
            transport=transport,
            on_response=on_response,
            get_attempts=get_attempts,
            blip_wait=blip_wait,
            short_rate_limit_wait=short_rate_limit_wait,
            limiter_max_wait=limiter_max_wait,
            on_unauthorized=on_unauthorized,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: ResponseHook | None = None,
        on_unauthorized: TokenRefresher | None = None,
    ) -> MoneybirdClient:
        token = settings.moneybird_api_token.get_secret_value().strip()
        if not token:
            raise MoneybirdConfigurationError("MONEYBIRD_API_TOKEN is not set")
        if not settings.moneybird_administration_id:
            raise MoneybirdConfigurationError("MONEYBIRD_ADMINISTRATION_ID is not set")
        return cls(
            base_url=settings.moneybird_api_url,
            token=token,
            administration_id=settings.moneybird_administration_id,
            limiter=limiter,
            timeout=settings.moneybird_timeout_seconds,
            transport=transport,
            on_response=on_response,
            on_unauthorized=on_unauthorized,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"MoneybirdClient(base_url={self._http.base_url!r}, administration={self.administration_id})"

    async def take_turn(self) -> None:
        """Before a backfilled order's booking starts: its turn at the rate limit, when there is room
        for the whole order (app.moneybird.ratelimit); `MoneybirdRateLimited` with `backlog` if not."""
        await self._http.take_turn()

    async def end_turn(self) -> None:
        """After a backfilled order's run: the requests promised to it and not made go back."""
        await self._http.end_turn()

    @property
    def calls(self) -> Counter[str]:
        """Requests actually sent, by "METHOD route" — retries included, local refusals not."""
        return self._http.calls

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    # ── administration and reference data ────────────────────────────────────────────────────

    async def list_administrations(self) -> list[Administration]:
        """Every administration the token can reach; the cheapest check that the token works."""
        response = await self._http.request("GET", "administrations", scoped=False)
        return parse_list(response, Administration)

    async def tax_rates(self) -> list[TaxRateResponse]:
        return await self._http.get_all("tax_rates", TaxRateResponse)

    async def ledger_accounts(self) -> list[LedgerAccountResponse]:
        # Not paginated: Moneybird returns every account at once.
        return parse_list(await self._http.request("GET", "ledger_accounts"), LedgerAccountResponse)

    async def workflows(self) -> list[WorkflowResponse]:
        return parse_list(await self._http.request("GET", "workflows"), WorkflowResponse)

    async def document_styles(self) -> list[DocumentStyleResponse]:
        return parse_list(await self._http.request("GET", "document_styles"), DocumentStyleResponse)

    async def financial_accounts(self) -> list[FinancialAccount]:
        return parse_list(await self._http.request("GET", "financial_accounts"), FinancialAccount)

    # ── contacts ─────────────────────────────────────────────────────────────────────────────

    async def search_contacts(self, query: str, *, max_pages: int = 5) -> list[Contact]:
        """Moneybird's fuzzy full-text search; callers must still match exactly on their side."""
        return await self._http.get_all("contacts", Contact, params={"query": query}, max_pages=max_pages)

    async def contact_versions(self) -> dict[str, int]:
        """Every active contact's id and version, in one request (Moneybird does not paginate it)."""
        response = await self._http.request("GET", "contacts/synchronization")
        return {entry.id: entry.version for entry in parse_list(response, ContactVersion)}

    async def contacts_by_id(self, ids: Sequence[str]) -> list[Contact]:
        """The contacts with these ids that still exist, a request per SYNCHRONIZATION_BATCH ids."""
        found: list[Contact] = []
        wanted = list(ids)
        for first in range(0, len(wanted), SYNCHRONIZATION_BATCH):
            batch = wanted[first : first + SYNCHRONIZATION_BATCH]
            response = await self._http.request("POST", "contacts/synchronization", body={"ids": batch})
            found += parse_list(response, Contact)
        return found

    async def contact_by_customer_id(self, customer_id: str) -> Contact | None:
        try:
            response = await self._http.request(
                "GET", "contacts/customer_id/{customer_id}", ids={"customer_id": customer_id}
            )
        except MoneybirdNotFound:
            return None
        return parse(response, Contact)

    async def get_contact(self, contact_id: str, *, include_archived: bool = False) -> Contact:
        """The contact; an archived one is found only with `include_archived` (404 otherwise)."""
        params = {"include_archived": "true"} if include_archived else None
        response = await self._http.request(
            "GET", "contacts/{contact_id}", ids={"contact_id": contact_id}, params=params
        )
        return parse(response, Contact)

    async def create_contact(self, contact: ContactCreate) -> Contact:
        response = await self._http.request(
            "POST",
            "contacts",
            body={"contact": contact.to_wire()},
            extra_ids=_ids(customer_id=contact.customer_id),
        )
        return parse(response, Contact)

    async def update_contact(self, contact_id: str, contact: ContactUpdate) -> Contact:
        response = await self._http.request(
            "PATCH",
            "contacts/{contact_id}",
            ids={"contact_id": contact_id},
            body={"contact": contact.to_wire()},
        )
        return parse(response, Contact)

    # ── sales invoices ───────────────────────────────────────────────────────────────────────

    async def create_sales_invoice(self, invoice: SalesInvoiceCreate) -> SalesInvoice:
        response = await self._http.request(
            "POST",
            "sales_invoices",
            body={"sales_invoice": invoice.to_wire()},
            extra_ids=_ids(contact_id=invoice.contact_id, reference=invoice.reference),
        )
        return parse(response, SalesInvoice)

    async def get_sales_invoice(self, invoice_id: str) -> SalesInvoice:
        response = await self._http.request("GET", "sales_invoices/{id}", ids={"id": invoice_id})
        return parse(response, SalesInvoice)

    async def find_sales_invoice_by_reference(self, reference: str) -> SalesInvoice | None:
        """The invoice whose reference is exactly `reference`, or None.

        Moneybird does not promise that `find_by_reference` matches exactly or that references are
        unique. Adopting someone else's invoice would leave an order unbooked, so an inexact answer
        is checked against a filtered list before anything is believed.
        """
        try:
            response = await self._http.request(
                "GET", "sales_invoices/find_by_reference/{reference}", ids={"reference": reference}
            )
        except MoneybirdNotFound:
            return None
        found = parse(response, SalesInvoice)
        if found.reference == reference:
            return found
        log.warning(
            "find_by_reference answered another reference; searching the list instead",
            reference=reference,
            invoice_id=found.id,
            answered=found.reference,
        )
        matches = await self.find_sales_invoices(reference=reference)
        return matches[0] if matches else None

    async def find_sales_invoices(self, *, reference: str, max_pages: int = 5) -> list[SalesInvoice]:
        """Invoices with exactly this reference, oldest first, in any state and any year."""
        if any(sep in reference for sep in ",|"):
            # Those characters are the filter syntax itself; the query would mean something else.
            raise ValueError(f"cannot filter on a reference containing ',' or '|': {reference!r}")
        filter_ = f"reference:{reference},state:all,period:{wide_period()}"
        invoices = await self._http.get_all(
            "sales_invoices", SalesInvoice, params={"filter": filter_}, max_pages=max_pages
        )
        return sorted((i for i in invoices if i.reference == reference), key=lambda i: int(i.id))

    async def send_sales_invoice(self, invoice_id: str, sending: SalesInvoiceSending) -> SalesInvoice:
        response = await self._http.request(
            "PATCH",
            "sales_invoices/{id}/send_invoice",
            ids={"id": invoice_id},
            body={"sales_invoice_sending": sending.to_wire()},
        )
        return parse(response, SalesInvoice)

    async def create_sales_invoice_payment(self, invoice_id: str, payment: PaymentCreate) -> Payment:
        response = await self._http.request(
            "POST",
            "sales_invoices/{id}/payments",
            ids={"id": invoice_id},
            body={"payment": payment.to_wire()},
        )
        return parse(response, Payment)

    async def duplicate_credit_invoice(self, invoice_id: str) -> SalesInvoice:
        """A new draft credit invoice mirroring `invoice_id`; send it like any invoice."""
        response = await self._http.request(
            "PATCH", "sales_invoices/{id}/duplicate_creditinvoice", ids={"id": invoice_id}, body={}
        )
        return parse(response, SalesInvoice)

    async def register_payment_creditinvoice(self, credit_invoice_id: str) -> SalesInvoice:
        """Settle a sent credit invoice against its original; returns the credit invoice."""
        response = await self._http.request(
            "PATCH",
            "sales_invoices/{id}/register_payment_creditinvoice",
            ids={"id": credit_invoice_id},
            body={},
        )
        return parse(response, SalesInvoice)

    # ── external sales invoices ──────────────────────────────────────────────────────────────

    async def create_external_sales_invoice(
        self, invoice: ExternalSalesInvoiceCreate
    ) -> ExternalSalesInvoice:
        response = await self._http.request(
            "POST",
            "external_sales_invoices",
            body={"external_sales_invoice": invoice.to_wire()},
            extra_ids=_ids(contact_id=invoice.contact_id, reference=invoice.reference),
        )
        return parse(response, ExternalSalesInvoice)

    async def get_external_sales_invoice(self, invoice_id: str) -> ExternalSalesInvoice:
        response = await self._http.request("GET", "external_sales_invoices/{id}", ids={"id": invoice_id})
        return parse(response, ExternalSalesInvoice)

    async def find_external_sales_invoices(
        self, *, reference: str, contact_id: str | None = None, max_pages: int = 20
    ) -> list[ExternalSalesInvoice]:
        """External invoices with exactly this reference, oldest first.

        Moneybird has no lookup by reference for these and no reference filter, so this lists
        (narrowed to the contact when known — pass it, it is far fewer pages) over an explicit wide
        period: the default filter would only cover the current year and miss last December's
        order adopted in January.
        """
        terms = ["state:all", f"period:{wide_period()}"]
        if contact_id is not None:
            terms.append(f"contact_id:{contact_id}")
        invoices = await self._http.get_all(
            "external_sales_invoices",
            ExternalSalesInvoice,
            params={"filter": ",".join(terms)},
            max_pages=max_pages,
        )
        return sorted((i for i in invoices if i.reference == reference), key=lambda i: int(i.id))

    async def create_external_sales_invoice_payment(self, invoice_id: str, payment: PaymentCreate) -> Payment:
        response = await self._http.request(
            "POST",
            "external_sales_invoices/{id}/payments",
            ids={"id": invoice_id},
            body={"payment": payment.to_wire()},
        )
        return parse(response, Payment)

    # ── verification: the invoices as Moneybird holds them now ──────────────────────────────

    async def invoices_dated(
        self, kind: InvoiceKind, *, start: date, end: date, max_pages: int = 100
    ) -> tuple[list[Standing], bool]:
        """Every invoice of `kind` (credit invoices too) dated `start`..`end`, in any state, and
        whether the list was complete within `max_pages` pages of 100."""
        filter_ = f"period:{start:%Y%m%d}..{end:%Y%m%d},state:all"
        model: type[SalesInvoice | ExternalSalesInvoice] = (
            SalesInvoice if kind == "sales_invoice" else ExternalSalesInvoice
        )
        found, complete = await self._http.get_pages(
            f"{kind}s", model, params={"filter": filter_}, max_pages=max_pages
        )
        return [standing(document) for document in found], complete

    async def invoices_by_id(self, kind: InvoiceKind, ids: Sequence[str]) -> list[Standing]:
        """The invoices of `kind` with these ids that still exist, whatever their date.

        Moneybird's synchronization endpoint answers at most 100 ids a request.
        """
        model: type[SalesInvoice | ExternalSalesInvoice] = (
            SalesInvoice if kind == "sales_invoice" else ExternalSalesInvoice
        )
        found: list[Standing] = []
        wanted = list(ids)
        for first in range(0, len(wanted), SYNCHRONIZATION_BATCH):
            batch = wanted[first : first + SYNCHRONIZATION_BATCH]
            response = await self._http.request("POST", f"{kind}s/synchronization", body={"ids": batch})
            found += [standing(document) for document in parse_list(response, model)]
        return found

    # ── webhooks (the `settings` scope) ───────────────────────────────────────────────────────

    async def list_webhooks(self) -> list[MoneybirdWebhook]:
        return parse_list(await self._http.request("GET", "webhooks"), MoneybirdWebhook)

    async def create_webhook(self, *, url: str, events: Sequence[str]) -> MoneybirdWebhook:
        """Moneybird pushes a check to `url` before it answers, and refuses a url that does not say 200."""
        body = {"url": url, "enabled_events": list(events)}
        return parse(await self._http.request("POST", "webhooks", body=body), MoneybirdWebhook)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._http.request("DELETE", "webhooks/{id}", ids={"id": webhook_id})

    # ── products ─────────────────────────────────────────────────────────────────────────────

    async def product_by_identifier(self, identifier: str) -> Product | None:
        try:
            response = await self._http.request(
                "GET", "products/identifier/{identifier}", ids={"identifier": identifier}
            )
        except MoneybirdNotFound:
            return None
        return parse(response, Product)

    async def create_product(self, product: ProductCreate) -> Product:
        response = await self._http.request(
            "POST",
            "products",
            body={"product": product.to_wire()},
            extra_ids=_ids(identifier=product.identifier),
        )
        return parse(response, Product)

    async def list_products(self, *, query: str | None = None, max_pages: int = 20) -> list[Product]:
        params = {"query": query} if query else {}
        return await self._http.get_all("products", Product, params=params, max_pages=max_pages)


@dataclass(frozen=True, slots=True)
class Standing:
    """A sales or external sales invoice as verification reads it: is it there, at what total, paid?"""

    id: str
    number: str | None  # the invoice number ("2026-0012"); an external invoice's reference
    state: str
    total: Decimal  # incl. VAT; negative for a credit invoice
    unpaid: Decimal
    invoice_date: date | None

    @property
    def paid(self) -> bool:
        return self.state == "paid"


def standing(document: SalesInvoice | ExternalSalesInvoice) -> Standing:
    if isinstance(document, SalesInvoice):
        number, on = document.invoice_id, document.invoice_date
    else:
        number, on = document.reference, document.date
    return Standing(
        id=document.id,
        number=number,
        state=document.state,
        total=document.total_price_incl_tax,
        unpaid=document.total_unpaid,
        invoice_date=on,
    )


def wide_period(today: date | None = None) -> str:
    """A filter period from 2000 to the end of next year: every invoice a shop could have."""
    today = today or datetime.now(UTC).date()
    end = date(today.year + 1, 12, 31)
    return f"{WIDE_PERIOD_START:%Y%m%d}..{end:%Y%m%d}"


def _ids(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


__all__ = [
    "InvoiceKind",
    "MoneybirdClient",
    "ResponseHook",
    "Standing",
    "TokenRefresher",
    "wide_period",
]
