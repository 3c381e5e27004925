"""The one way woobird talks to Moneybird: a typed async client over httpx.

Every request carries the Bearer token, ends in `.json`, wraps its body in the resource's root key,
and first takes a slot from the shared `RateLimiter`. Answers come back as the models in
`app.moneybird.models`; failures as the tree in `app.moneybird.errors`.

Retrying, deliberately narrow:
- GETs are retried here a couple of times within a second on a timeout, a broken connection or a
  5xx, because nothing can be duplicated by reading.
- POST and PATCH never are. A create whose answer was lost may have happened; only the booking
  layer can tell, by looking its record up by reference ("adopt") before trying again.
- A 429 pauses every process until Moneybird's reset. If that is a few seconds away the request
  waits and goes once more (a throttled request was not carried out, so even a POST is safe);
  otherwise `MoneybirdRateLimited` goes up to the job layer, which defers the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random

from app.moneybird.errors import (
    REJECTED_BY_STATUS,
    MoneybirdAuthError,
    MoneybirdConfigurationError,
    MoneybirdConnectionError,
    MoneybirdError,
    MoneybirdNotFound,
    MoneybirdRateLimited,
    MoneybirdRejected,
    MoneybirdServerError,
    MoneybirdTimeout,
    MoneybirdTransient,
    MoneybirdUnexpectedResponse,
    describe_error_body,
)
from app.moneybird.models import (
    Administration,
    Contact,
    ContactCreate,
    ContactUpdate,
    DocumentStyle,
    ExternalSalesInvoice,
    ExternalSalesInvoiceCreate,
    FinancialAccount,
    LedgerAccount,
    Payment,
    PaymentCreate,
    Product,
    ProductCreate,
    SalesInvoice,
    SalesInvoiceCreate,
    SalesInvoiceSending,
    TaxRate,
    Workflow,
)
from app.moneybird.ratelimit import RateLimitBusy, RateLimiter
from app.redaction import safe_url

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger("woobird.moneybird")

M = TypeVar("M", bound=BaseModel)

# Called after every HTTP exchange with (method, route template, status, seconds). The route has
# no ids in it ("sales_invoices/{id}/send_invoice"), so it is safe as a metric label. Status 0
# means no response arrived (timeout, connection error).
ResponseHook = Callable[[str, str, int, float], None]
TokenRefresher = Callable[[str], Awaitable[str | None]]

PER_PAGE = 100
# A 429 without a usable reset header: Moneybird's window is 5 minutes, a minute is a fair guess.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0
# A reset further away than this is a misread header, not a plan.
MAX_RATE_LIMIT_WAIT_SECONDS = 3600.0
# Epoch seconds are about 1.7e9; a smaller Retry-After is a delay in seconds.
_EPOCH_THRESHOLD = 1e9
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
        self._token = token
        # OAuth connections: called with the refused token on a 401, returns a fresh one (or None).
        self._on_unauthorized = on_unauthorized
        self.limiter = limiter
        self.on_response = on_response
        # Requests actually sent, by "METHOD route" — retries included, local refusals not.
        self.calls: Counter[str] = Counter()
        self._timeout = timeout
        self._get_attempts = max(1, get_attempts)
        self._blip_wait = blip_wait
        self._short_rate_limit_wait = short_rate_limit_wait
        self._limiter_max_wait = limiter_max_wait
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "woobird",
            },
            timeout=timeout,
            transport=transport,
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
        return (
            f"MoneybirdClient(base_url={str(self._http.base_url)!r}, administration={self.administration_id})"
        )

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    # ── administration and reference data ────────────────────────────────────────────────────

    async def list_administrations(self) -> list[Administration]:
        """Every administration the token can reach; the cheapest check that the token works."""
        response = await self._request("GET", "administrations", scoped=False)
        return self._parse_list(response, Administration)

    async def tax_rates(self) -> list[TaxRate]:
        return await self._get_all("tax_rates", TaxRate)

    async def ledger_accounts(self) -> list[LedgerAccount]:
        # Not paginated: Moneybird returns every account at once.
        return self._parse_list(await self._request("GET", "ledger_accounts"), LedgerAccount)

    async def workflows(self) -> list[Workflow]:
        return self._parse_list(await self._request("GET", "workflows"), Workflow)

    async def document_styles(self) -> list[DocumentStyle]:
        return self._parse_list(await self._request("GET", "document_styles"), DocumentStyle)

    async def financial_accounts(self) -> list[FinancialAccount]:
        return self._parse_list(await self._request("GET", "financial_accounts"), FinancialAccount)

    # ── contacts ─────────────────────────────────────────────────────────────────────────────

    async def search_contacts(self, query: str, *, max_pages: int = 5) -> list[Contact]:
        """Moneybird's fuzzy full-text search; callers must still match exactly on their side."""
        return await self._get_all("contacts", Contact, params={"query": query}, max_pages=max_pages)

    async def contact_by_customer_id(self, customer_id: str) -> Contact | None:
        try:
            response = await self._request(
                "GET", "contacts/customer_id/{customer_id}", ids={"customer_id": customer_id}
            )
        except MoneybirdNotFound:
            return None
        return self._parse(response, Contact)

    async def get_contact(self, contact_id: str) -> Contact:
        response = await self._request("GET", "contacts/{contact_id}", ids={"contact_id": contact_id})
        return self._parse(response, Contact)

    async def create_contact(self, contact: ContactCreate) -> Contact:
        response = await self._request(
            "POST",
            "contacts",
            body={"contact": contact.to_wire()},
            extra_ids=_ids(customer_id=contact.customer_id),
        )
        return self._parse(response, Contact)

    async def update_contact(self, contact_id: str, contact: ContactUpdate) -> Contact:
        response = await self._request(
            "PATCH",
            "contacts/{contact_id}",
            ids={"contact_id": contact_id},
            body={"contact": contact.to_wire()},
        )
        return self._parse(response, Contact)

    # ── sales invoices ───────────────────────────────────────────────────────────────────────

    async def create_sales_invoice(self, invoice: SalesInvoiceCreate) -> SalesInvoice:
        response = await self._request(
            "POST",
            "sales_invoices",
            body={"sales_invoice": invoice.to_wire()},
            extra_ids=_ids(contact_id=invoice.contact_id, reference=invoice.reference),
        )
        return self._parse(response, SalesInvoice)

    async def get_sales_invoice(self, invoice_id: str) -> SalesInvoice:
        response = await self._request("GET", "sales_invoices/{id}", ids={"id": invoice_id})
        return self._parse(response, SalesInvoice)

    async def find_sales_invoice_by_reference(self, reference: str) -> SalesInvoice | None:
        """The invoice whose reference is exactly `reference`, or None.

        Moneybird does not promise that `find_by_reference` matches exactly or that references are
        unique. Adopting someone else's invoice would leave an order unbooked, so an inexact answer
        is checked against a filtered list before anything is believed.
        """
        try:
            response = await self._request(
                "GET", "sales_invoices/find_by_reference/{reference}", ids={"reference": reference}
            )
        except MoneybirdNotFound:
            return None
        found = self._parse(response, SalesInvoice)
        if found.reference == reference:
            return found
        logger.warning(
            "find_by_reference(%r) answered invoice %s with reference %r; searching the list instead",
            reference,
            found.id,
            found.reference,
        )
        matches = await self.find_sales_invoices(reference=reference)
        return matches[0] if matches else None

    async def find_sales_invoices(self, *, reference: str, max_pages: int = 5) -> list[SalesInvoice]:
        """Invoices with exactly this reference, oldest first, in any state and any year."""
        if any(sep in reference for sep in ",|"):
            # Those characters are the filter syntax itself; the query would mean something else.
            raise ValueError(f"cannot filter on a reference containing ',' or '|': {reference!r}")
        filter_ = f"reference:{reference},state:all,period:{wide_period()}"
        invoices = await self._get_all(
            "sales_invoices", SalesInvoice, params={"filter": filter_}, max_pages=max_pages
        )
        return sorted((i for i in invoices if i.reference == reference), key=lambda i: int(i.id))

    async def send_sales_invoice(self, invoice_id: str, sending: SalesInvoiceSending) -> SalesInvoice:
        response = await self._request(
            "PATCH",
            "sales_invoices/{id}/send_invoice",
            ids={"id": invoice_id},
            body={"sales_invoice_sending": sending.to_wire()},
        )
        return self._parse(response, SalesInvoice)

    async def create_sales_invoice_payment(self, invoice_id: str, payment: PaymentCreate) -> Payment:
        response = await self._request(
            "POST",
            "sales_invoices/{id}/payments",
            ids={"id": invoice_id},
            body={"payment": payment.to_wire()},
        )
        return self._parse(response, Payment)

    async def duplicate_credit_invoice(self, invoice_id: str) -> SalesInvoice:
        """A new draft credit invoice mirroring `invoice_id`; send it like any invoice."""
        response = await self._request(
            "PATCH", "sales_invoices/{id}/duplicate_creditinvoice", ids={"id": invoice_id}, body={}
        )
        return self._parse(response, SalesInvoice)

    async def register_payment_creditinvoice(self, credit_invoice_id: str) -> SalesInvoice:
        """Settle a sent credit invoice against its original; returns the credit invoice."""
        response = await self._request(
            "PATCH",
            "sales_invoices/{id}/register_payment_creditinvoice",
            ids={"id": credit_invoice_id},
            body={},
        )
        return self._parse(response, SalesInvoice)

    # ── external sales invoices ──────────────────────────────────────────────────────────────

    async def create_external_sales_invoice(
        self, invoice: ExternalSalesInvoiceCreate
    ) -> ExternalSalesInvoice:
        response = await self._request(
            "POST",
            "external_sales_invoices",
            body={"external_sales_invoice": invoice.to_wire()},
            extra_ids=_ids(contact_id=invoice.contact_id, reference=invoice.reference),
        )
        return self._parse(response, ExternalSalesInvoice)

    async def get_external_sales_invoice(self, invoice_id: str) -> ExternalSalesInvoice:
        response = await self._request("GET", "external_sales_invoices/{id}", ids={"id": invoice_id})
        return self._parse(response, ExternalSalesInvoice)

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
        invoices = await self._get_all(
            "external_sales_invoices",
            ExternalSalesInvoice,
            params={"filter": ",".join(terms)},
            max_pages=max_pages,
        )
        return sorted((i for i in invoices if i.reference == reference), key=lambda i: int(i.id))

    async def create_external_sales_invoice_payment(self, invoice_id: str, payment: PaymentCreate) -> Payment:
        response = await self._request(
            "POST",
            "external_sales_invoices/{id}/payments",
            ids={"id": invoice_id},
            body={"payment": payment.to_wire()},
        )
        return self._parse(response, Payment)

    # ── products ─────────────────────────────────────────────────────────────────────────────

    async def product_by_identifier(self, identifier: str) -> Product | None:
        try:
            response = await self._request(
                "GET", "products/identifier/{identifier}", ids={"identifier": identifier}
            )
        except MoneybirdNotFound:
            return None
        return self._parse(response, Product)

    async def create_product(self, product: ProductCreate) -> Product:
        response = await self._request(
            "POST",
            "products",
            body={"product": product.to_wire()},
            extra_ids=_ids(identifier=product.identifier),
        )
        return self._parse(response, Product)

    async def list_products(self, *, query: str | None = None, max_pages: int = 20) -> list[Product]:
        params = {"query": query} if query else {}
        return await self._get_all("products", Product, params=params, max_pages=max_pages)

    # ── the request path ─────────────────────────────────────────────────────────────────────

    async def _request(
        self,
        method: str,
        route: str,
        *,
        ids: Mapping[str, str] | None = None,
        extra_ids: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        scoped: bool = True,
    ) -> httpx.Response:
        path = self._path(route, ids or {}, scoped=scoped)
        request = _Request(
            method=method,
            route=route,
            path=path,
            params=params,
            body=body,
            ids={"administration_id": self.administration_id, **(ids or {}), **(extra_ids or {})},
        )
        # Only reads are repeated here; see the module docstring for why writes never are.
        attempts = self._get_attempts if method == "GET" else 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_random(*self._blip_wait),
            retry=retry_if_exception(_is_blip),
            reraise=True,
            before_sleep=lambda state: logger.info(
                "Moneybird %s %s failed (%s); retrying",
                method,
                path,
                state.outcome and state.outcome.exception(),
            ),
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_waiting_out_short_429(request)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send_waiting_out_short_429(self, request: _Request) -> httpx.Response:
        try:
            return await self._send(request)
        except MoneybirdRateLimited as exc:
            wait = exc.retry_after_seconds(time.time())
            if exc.local or wait > self._short_rate_limit_wait:
                raise
            logger.info("Moneybird rate limit resets in %.1f s; waiting", wait)
            await asyncio.sleep(wait)
            return await self._send(request)

    async def _send(self, request: _Request, *, refreshed: bool = False) -> httpx.Response:
        await self._take_slot(request)
        started = time.monotonic()
        status = 0
        try:
            response = await self._http.request(
                request.method, request.path, params=request.params, json=request.body
            )
            status = response.status_code
        except httpx.TimeoutException as exc:
            waited = f"{self._timeout:g} s ({type(exc).__name__})"
            raise MoneybirdTimeout(
                f"Moneybird did not answer within {waited}{request.maybe_done}", **request.where
            ) from exc
        except httpx.TransportError as exc:
            raise MoneybirdConnectionError(
                f"could not talk to Moneybird: {exc!r}{request.maybe_done}", **request.where
            ) from exc
        finally:
            self._record(request, status, time.monotonic() - started)
        if response.is_success:
            return response
        # A 401 was not carried out, so even a write may be sent again, once, with a fresh token.
        if response.status_code == 401 and self._on_unauthorized is not None and not refreshed:
            fresh = await self._on_unauthorized(self._token)
            if fresh and fresh != self._token:
                self._token = fresh
                self._http.headers["Authorization"] = f"Bearer {fresh}"
                return await self._send(request, refreshed=True)
        raise await self._error_for(response, request)

    async def _take_slot(self, request: _Request) -> None:
        if self.limiter is None:
            return
        try:
            waited = await self.limiter.acquire(max_wait=self._limiter_max_wait)
        except RateLimitBusy as busy:
            raise MoneybirdRateLimited(
                "woobird's rate limiter has no free Moneybird slot soon enough",
                reset_at=busy.retry_at,
                local=True,
                **request.where,
            ) from busy
        if waited > 1:
            logger.debug("waited %.1f s for a Moneybird rate-limit slot", waited)

    def _record(self, request: _Request, status: int, seconds: float) -> None:
        self.calls[f"{request.method} {request.route}"] += 1
        logger.debug(
            "Moneybird %s %s → %s in %.0f ms", request.method, request.path, status or "-", seconds * 1000
        )
        if self.on_response is None:
            return
        try:
            self.on_response(request.method, request.route, status, seconds)
        except Exception:  # a broken metrics hook must not fail a booking
            logger.exception("Moneybird on_response hook failed")

    async def _error_for(self, response: httpx.Response, request: _Request) -> MoneybirdError:
        status = response.status_code
        body = _read_body(response)
        detail = describe_error_body(body)
        if status == 429:
            reset_at = rate_limit_reset(response.headers, now=time.time())
            if self.limiter is not None:
                await self.limiter.pause_until(reset_at)
            logger.warning(
                "Moneybird answered 429 to %s %s; pausing until %.0f", request.method, request.path, reset_at
            )
            return MoneybirdRateLimited(
                f"Moneybird rate limit reached: {detail}", reset_at=reset_at, **request.where
            )
        if status >= 500:
            return MoneybirdServerError(
                f"Moneybird server error {status}: {detail}",
                status=status,
                retry_at=_header_time(response.headers.get("Retry-After"), now=time.time()),
                **request.where,
            )
        if status == 401:
            return MoneybirdAuthError(
                f"Moneybird refused the API token ({detail}); check MONEYBIRD_API_TOKEN and its scopes",
                body=body,
                **request.where,
            )
        if 400 <= status < 500:
            rejected = REJECTED_BY_STATUS.get(status, MoneybirdRejected)
            return rejected(detail, status=status, body=body, **request.where)
        location = response.headers.get("Location", "")
        hint = f" to {safe_url(location)}" if location else ""
        return MoneybirdUnexpectedResponse(
            f"Moneybird answered {status}{hint} instead of an API response; check MONEYBIRD_API_URL",
            status=status,
            **request.where,
        )

    async def _get_all(
        self,
        route: str,
        model: type[M],
        *,
        params: Mapping[str, str | int] | None = None,
        max_pages: int = 50,
    ) -> list[M]:
        items: list[M] = []
        for page in range(1, max_pages + 1):
            response = await self._request(
                "GET", route, params={**(params or {}), "page": page, "per_page": PER_PAGE}
            )
            batch = self._parse_list(response, model)
            items.extend(batch)
            if not _has_next_page(response, len(batch)):
                return items
        logger.warning(
            "Moneybird %s has more than %d pages; using the first %d items", route, max_pages, len(items)
        )
        return items

    def _path(self, route: str, ids: Mapping[str, str], *, scoped: bool) -> str:
        # Ids and references go into the path encoded whole: a reference holds '#', ' ' and maybe '/'.
        filled = route.format_map({name: quote(str(value), safe="") for name, value in ids.items()})
        prefix = f"{self.administration_id}/" if scoped else ""
        return f"{prefix}{filled}.json"

    def _parse(self, response: httpx.Response, model: type[M]) -> M:
        data = _json(response)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _unexpected_shape(response, exc) from exc

    def _parse_list(self, response: httpx.Response, model: type[M]) -> list[M]:
        data = _json(response)
        if not isinstance(data, list):
            raise MoneybirdUnexpectedResponse(
                f"expected a list from Moneybird, got {type(data).__name__}",
                status=response.status_code,
                method=response.request.method,
                path=response.request.url.path,
            )
        try:
            return [model.model_validate(item) for item in data]
        except ValidationError as exc:
            raise _unexpected_shape(response, exc) from exc


class _Request:
    """One logical request, kept together so retries and errors describe it the same way."""

    __slots__ = ("body", "ids", "method", "params", "path", "route")

    def __init__(
        self,
        *,
        method: str,
        route: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        ids: dict[str, str],
    ) -> None:
        self.method = method
        self.route = route
        self.path = path
        self.params = dict(params) if params else None
        self.body = dict(body) if body is not None else None
        self.ids = ids

    @property
    def maybe_done(self) -> str:
        # A write whose answer was lost may still have happened; say so where it will be read.
        return "" if self.method == "GET" else "; it may have been carried out, look it up before repeating"

    @property
    def where(self) -> dict[str, Any]:
        return {"method": self.method, "path": "/" + self.path, "ids": self.ids}


def wide_period(today: date | None = None) -> str:
    """A filter period from 2000 to the end of next year: every invoice a shop could have."""
    today = today or datetime.now(UTC).date()
    end = date(today.year + 1, 12, 31)
    return f"{WIDE_PERIOD_START:%Y%m%d}..{end:%Y%m%d}"


def rate_limit_reset(headers: httpx.Headers, *, now: float) -> float:
    """When a 429 ends, as epoch seconds: the later of `Retry-After` and `RateLimit-Reset`.

    Moneybird sends both as absolute epoch seconds (not the RFC delay); a small number is read as
    a delay and an HTTP date as a date, in case a proxy answered instead.
    """
    candidates = [
        moment
        for moment in (
            _header_time(headers.get(name), now=now) for name in ("Retry-After", "RateLimit-Reset")
        )
        if moment is not None
    ]
    reset = max(candidates) if candidates else now + DEFAULT_RATE_LIMIT_WAIT_SECONDS
    return min(reset, now + MAX_RATE_LIMIT_WAIT_SECONDS)


def _header_time(value: str | None, *, now: float) -> float | None:
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
    if number < 0:
        return None
    return number if number > _EPOCH_THRESHOLD else now + number


def _is_blip(exc: BaseException) -> bool:
    """A failure a quick in-process retry of a read can fix: not a 429, not a long Retry-After."""
    if not isinstance(exc, MoneybirdTransient) or isinstance(exc, MoneybirdRateLimited):
        return False
    return exc.retry_after_seconds(time.time()) <= 1.0


def _ids(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def _json(response: httpx.Response) -> Any:
    # Decimal for JSON numbers: money must never pass through float, even when Moneybird sends 1.5.
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise MoneybirdUnexpectedResponse(
            f"Moneybird's answer is not JSON ({response.headers.get('Content-Type', 'no content type')}); "
            "check MONEYBIRD_API_URL",
            status=response.status_code,
            method=response.request.method,
            path=response.request.url.path,
        ) from exc


def _read_body(response: httpx.Response) -> Any:
    """An error body as JSON when it is JSON; otherwise its text (a 429 says `Retry later`)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return response.text


def _has_next_page(response: httpx.Response, count: int) -> bool:
    # Follow Moneybird's Link header when it sends one; otherwise a full page suggests another.
    if "link" in response.headers:
        return "next" in response.links
    return count >= PER_PAGE


def _unexpected_shape(response: httpx.Response, exc: ValidationError) -> MoneybirdUnexpectedResponse:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return MoneybirdUnexpectedResponse(
        f"Moneybird's answer does not have the expected shape ({where}: {first['msg']})",
        status=response.status_code,
        method=response.request.method,
        path=response.request.url.path,
    )


__all__ = [
    "MoneybirdClient",
    "MoneybirdError",
    "MoneybirdRejected",
    "ResponseHook",
    "rate_limit_reset",
    "wide_period",
]
