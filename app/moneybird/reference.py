"""The administration's reference data — tax rates, ledger accounts, workflows, document styles —
fetched from Moneybird once and shared by every process through Redis.

Fetching it costs five or more requests of the 150 per five minutes; fetching it per order would
spend more of the budget on lookups than on bookings. It changes rarely (someone adds a tax rate
or a ledger account in Moneybird), so an hour's TTL plus `invalidate()` after such a change — or
after Moneybird refuses an id we took from here — is fresh enough.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from app.constants import REFERENCE_CACHE_KEY, REFERENCE_CACHE_TTL_SECONDS
from app.invoicing.reference import AdministrationReference, DocumentStyle, LedgerAccount, TaxRate, Workflow
from app.moneybird import models
from app.moneybird.errors import MoneybirdConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.moneybird.client import MoneybirdClient

logger = logging.getLogger("woobird.moneybird")

# Bump when the cached shape changes: an old entry then reads as a miss instead of an error.
_CACHE_FORMAT = 1


async def load_reference(client: MoneybirdClient) -> AdministrationReference:
    """Fetch the administration's reference data from Moneybird and turn it into plain values."""
    administration = await _own_administration(client)
    return _plain(
        administration_id=administration.id,
        currency=administration.currency,
        country=administration.country,
        extra=_extra(administration),
        tax_rates=await client.tax_rates(),
        ledger_accounts=await client.ledger_accounts(),
        workflows=await client.workflows(),
        document_styles=await client.document_styles(),
    )


def _plain(
    *,
    administration_id: str,
    currency: str,
    country: str,
    extra: dict[str, str],
    tax_rates: Sequence[models.TaxRateResponse],
    ledger_accounts: Sequence[models.LedgerAccountResponse],
    workflows: Sequence[models.WorkflowResponse],
    document_styles: Sequence[models.DocumentStyleResponse],
) -> AdministrationReference:
    """The wire's reference data as the plan's plain values: the one mapping between the two."""
    return AdministrationReference(
        administration_id=administration_id,
        currency=currency,
        country=country,
        tax_rates=tuple(_tax_rate(r) for r in tax_rates),
        # An inactive account cannot be booked on; leaving it out makes a plan that names it fail
        # with "not found" here instead of a 422 from Moneybird.
        ledger_accounts=tuple(_ledger_account(a) for a in ledger_accounts if a.active),
        workflows=tuple(_workflow(w) for w in workflows),
        document_styles=tuple(_document_style(s) for s in document_styles),
        extra=extra,
    )


async def _own_administration(client: MoneybirdClient) -> models.Administration:
    administrations = await client.list_administrations()
    for administration in administrations:
        if administration.id == client.administration_id:
            return administration
    reachable = ", ".join(f"{a.id} ({a.name})" for a in administrations) or "none"
    raise MoneybirdConfigurationError(
        f"MONEYBIRD_ADMINISTRATION_ID {client.administration_id} is not reachable with this token; "
        f"it can reach: {reachable}"
    )


def _tax_rate(rate: models.TaxRateResponse) -> TaxRate:
    return TaxRate(
        id=rate.id,
        name=rate.name,
        percentage=rate.percentage,
        tax_rate_type=rate.tax_rate_type,
        active=rate.active is not False,
        country=rate.country or None,
        show_tax=rate.show_tax is not False,
    )


def _ledger_account(account: models.LedgerAccountResponse) -> LedgerAccount:
    return LedgerAccount(
        id=account.id,
        name=account.name,
        account_type=account.account_type,
        account_id=account.account_id,
        allowed_document_types=tuple(account.allowed_document_types or ()),
    )


def _workflow(workflow: models.WorkflowResponse) -> Workflow:
    return Workflow(
        id=workflow.id,
        name=workflow.name,
        type=workflow.type,
        default=workflow.default,
        prices_are_incl_tax=workflow.prices_are_incl_tax,
        currency=workflow.currency,
        active=workflow.active,
    )


def _document_style(style: models.DocumentStyleResponse) -> DocumentStyle:
    return DocumentStyle(id=style.id, name=style.name, default=style.default)


def _extra(administration: models.Administration) -> dict[str, str]:
    extra = {"administration_name": administration.name}
    if administration.time_zone:
        extra["time_zone"] = administration.time_zone
    if administration.language:
        extra["language"] = administration.language
    return extra


# ── the Redis cache ───────────────────────────────────────────────────────────────────────────


class ReferenceCache:
    """`AdministrationReference` for one administration, as JSON in Redis with a TTL."""

    def __init__(
        self, redis: Redis, *, administration_id: str, ttl: int = REFERENCE_CACHE_TTL_SECONDS
    ) -> None:
        self.administration_id = administration_id
        self.key = f"{REFERENCE_CACHE_KEY}:{administration_id}"
        self.ttl = ttl
        self._redis = redis
        # Jobs in one process that miss together load once, not once each.
        self._loading = asyncio.Lock()

    async def get(self, client: MoneybirdClient) -> AdministrationReference:
        """The cached reference data; on a miss, load it through `client` and cache it."""
        if client.administration_id != self.administration_id:
            raise ValueError(
                f"cache is for administration {self.administration_id}, client for {client.administration_id}"
            )
        cached = await self.peek()
        if cached is not None:
            return cached
        async with self._loading:
            cached = await self.peek()
            if cached is not None:
                return cached
            reference = await load_reference(client)
            await self._redis.set(self.key, dumps(reference), ex=self.ttl)
            return reference

    async def peek(self) -> AdministrationReference | None:
        """The cached value without ever calling Moneybird; None on a miss or an unreadable entry."""
        raw: Any = await self._redis.get(self.key)
        if raw is None:
            return None
        try:
            return loads(raw)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable reference cache entry %s: %s", self.key, exc)
            return None

    async def invalidate(self) -> None:
        await self._redis.delete(self.key)


# The cache entry is the plain values as pydantic writes them (amounts as strings) plus a format.
_PLAIN = TypeAdapter(AdministrationReference)


def dumps(reference: AdministrationReference) -> str:
    return json.dumps({"format": _CACHE_FORMAT, **_PLAIN.dump_python(reference, mode="json")})


def loads(raw: str | bytes) -> AdministrationReference:
    """A cache entry back; ValueError (pydantic's ValidationError is one) for one it cannot read."""
    data = json.loads(raw)
    if data.pop("format", None) != _CACHE_FORMAT:
        raise ValueError(f"cache format is not {_CACHE_FORMAT}")
    return _PLAIN.validate_python(data)


def reference_from_json(data: dict[str, Any]) -> AdministrationReference:
    """Reference data as Moneybird's API returns it, collected in one JSON object:
    `{"administration_id", "country", "currency", "tax_rates": [...], "ledger_accounts": [...],
    "workflows": [...], "document_styles": [...]}`; read with the client's own wire models."""
    return _plain(
        administration_id=str(data.get("administration_id", "")),
        currency=data.get("currency", "EUR"),
        country=data.get("country", "NL"),
        extra={},
        tax_rates=_TAX_RATES.validate_python(data.get("tax_rates", [])),
        ledger_accounts=_LEDGER_ACCOUNTS.validate_python(data.get("ledger_accounts", [])),
        workflows=_WORKFLOWS.validate_python(data.get("workflows", [])),
        document_styles=_DOCUMENT_STYLES.validate_python(data.get("document_styles", [])),
    )


_TAX_RATES = TypeAdapter(list[models.TaxRateResponse])
_LEDGER_ACCOUNTS = TypeAdapter(list[models.LedgerAccountResponse])
_WORKFLOWS = TypeAdapter(list[models.WorkflowResponse])
_DOCUMENT_STYLES = TypeAdapter(list[models.DocumentStyleResponse])
