from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest
import respx
from redis.asyncio import Redis

from app.constants import REFERENCE_CACHE_KEY, REFERENCE_CACHE_TTL_SECONDS
from app.invoicing.reference import AdministrationReference
from app.moneybird.client import MoneybirdClient
from app.moneybird.errors import MoneybirdConfigurationError
from app.moneybird.reference import ReferenceCache, dumps, load_reference, loads
from tests.moneybird import bodies
from tests.moneybird.conftest import ADMINISTRATION_ID, BASE_URL

MakeClient = Callable[..., MoneybirdClient]


def _serve_reference(router: respx.Router) -> None:
    respx_admin = router.get(f"{BASE_URL}/administrations.json")
    respx_admin.respond(
        200, json=[bodies.administration(id="1"), bodies.administration(id=ADMINISTRATION_ID)]
    )
    router.get("/tax_rates.json").respond(
        200,
        json=[
            bodies.tax_rate("11", "21.0"),
            bodies.tax_rate("12", "9.0", show_tax=None, active=None),
            bodies.tax_rate("13", "19.0", country="DE", name="19% DE"),
            bodies.tax_rate("14", "21.0", kind="purchase_invoice"),
        ],
    )
    router.get("/ledger_accounts.json").respond(
        200,
        json=[
            bodies.ledger_account("21", "Omzet"),
            bodies.ledger_account("22", "Oude omzet", active=False),
            bodies.ledger_account("23", "Bank", account_type="current_assets", allowed_document_types=None),
        ],
    )
    router.get("/workflows.json").respond(200, json=[bodies.workflow()])
    router.get("/document_styles.json").respond(200, json=[bodies.document_style()])


async def test_load_reference_maps_the_wire_to_plain_values(
    router: respx.Router, client: MoneybirdClient
) -> None:
    _serve_reference(router)
    reference = await load_reference(client)
    assert reference.administration_id == ADMINISTRATION_ID
    assert reference.extra["administration_name"] == "Tuinmeubels B.V."
    assert [r.id for r in reference.sales_tax_rates()] == ["11", "12", "13"]
    rate_9 = reference.tax_rate("12")
    assert rate_9 is not None
    assert rate_9.show_tax
    assert reference.tax_rate("13").country == "DE"  # type: ignore[union-attr]
    assert reference.tax_rate("11").percentage == Decimal("21.0")  # type: ignore[union-attr]
    assert [a.id for a in reference.ledger_accounts] == ["21", "23"]  # the inactive one is left out
    assert [a.id for a in reference.revenue_accounts()] == ["21"]
    assert reference.workflows[0].prices_are_incl_tax
    assert reference.document_styles[0].default


async def test_administration_the_token_cannot_reach(router: respx.Router, client: MoneybirdClient) -> None:
    router.get(f"{BASE_URL}/administrations.json").respond(
        200, json=[bodies.administration(id="1", name="Ander")]
    )
    with pytest.raises(MoneybirdConfigurationError, match="MONEYBIRD_ADMINISTRATION_ID") as caught:
        await load_reference(client)
    assert "1 (Ander)" in str(caught.value)


async def test_cache_hit_costs_no_moneybird_call(
    router: respx.Router, make_client: MakeClient, mb_redis: Redis
) -> None:
    _serve_reference(router)
    loader, other_process = make_client(), make_client()
    cache = ReferenceCache(mb_redis, administration_id=ADMINISTRATION_ID)

    loaded = await cache.get(loader)
    assert loader.calls_total == 5
    key = f"{REFERENCE_CACHE_KEY}:{ADMINISTRATION_ID}"
    assert 0 < await mb_redis.ttl(key) <= REFERENCE_CACHE_TTL_SECONDS

    cached = await ReferenceCache(mb_redis, administration_id=ADMINISTRATION_ID).get(other_process)
    assert other_process.calls_total == 0
    assert cached == loaded

    await cache.invalidate()
    await cache.get(other_process)
    assert other_process.calls_total == 5


async def test_misses_in_one_process_load_once(
    router: respx.Router, client: MoneybirdClient, mb_redis: Redis
) -> None:
    _serve_reference(router)
    cache = ReferenceCache(mb_redis, administration_id=ADMINISTRATION_ID)
    results = await asyncio.gather(*(cache.get(client) for _ in range(5)))
    assert client.calls_total == 5
    assert all(r == results[0] for r in results)


async def test_unreadable_entry_is_a_miss(mb_redis: Redis) -> None:
    cache = ReferenceCache(mb_redis, administration_id=ADMINISTRATION_ID)
    await mb_redis.set(cache.key, '{"format": 0}')
    assert await cache.peek() is None
    await mb_redis.set(cache.key, "not json")
    assert await cache.peek() is None


def test_cache_format_round_trips_exactly() -> None:
    from app.invoicing.reference import DocumentStyle, LedgerAccount, TaxRate, Workflow

    reference = AdministrationReference(
        administration_id="496081347126756459",
        tax_rates=(
            TaxRate("1", "21% btw", Decimal("21.0"), "sales_invoice"),
            TaxRate("2", "DE", Decimal("19"), "sales_invoice", country="DE"),
        ),
        ledger_accounts=(LedgerAccount("3", "Omzet", "revenue", "8000", ("sales_invoice",)),),
        workflows=(Workflow("4", "Standaard", "InvoiceWorkflow", default=True, prices_are_incl_tax=True),),
        document_styles=(DocumentStyle("5", "Standaard", default=True),),
        extra={"administration_name": "X"},
    )
    assert loads(dumps(reference)) == reference
    assert loads(dumps(reference).encode()) == reference


def test_reference_from_json_reads_as_the_api_does(router: respx.Router) -> None:
    """`woobird plan --reference`'s file goes through the wire models and the one mapping: the same
    plain values as load_reference, the inactive account left out, ids as strings."""
    from app.moneybird.reference import reference_from_json

    data = {
        "administration_id": 7,
        "country": "BE",
        "tax_rates": [bodies.tax_rate("12", "9.0", show_tax=None, active=None) | {"id": 12}],
        "ledger_accounts": [
            bodies.ledger_account("21", "Omzet"),
            bodies.ledger_account("22", "Oud", active=False),
        ],
        "workflows": [bodies.workflow()],
        "document_styles": [bodies.document_style()],
    }
    reference = reference_from_json(data)
    assert (reference.administration_id, reference.country, reference.currency) == ("7", "BE", "EUR")
    [rate] = reference.tax_rates
    assert (rate.id, rate.percentage, rate.active, rate.show_tax) == ("12", Decimal("9.0"), True, True)
    assert [a.id for a in reference.ledger_accounts] == ["21"]
    assert reference.workflows[0].prices_are_incl_tax
    assert reference.document_styles[0].default
    with pytest.raises(ValueError, match="tax_rate_type"):
        reference_from_json({"tax_rates": [{"id": "1", "name": "x", "percentage": "21"}]})
