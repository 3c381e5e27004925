"""Schemathesis against woobird's own OpenAPI document, over real HTTP, bounded to a few seconds.

Every operation the web app publishes is called with generated input (valid and invalid); no
answer may be a 5xx, every answer must match what the document promises, and no generated
request may get an order into the ledger (nothing it sends can carry a valid signature).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from app.db import create_engine, session_factory
from app.main import create_app
from app.schema import OrderRecord
from tests.conftest import make_settings
from tests.server import serve_in_thread

# A handful of examples per operation keeps the run to a few seconds on 2 cores.
MAX_EXAMPLES = 25


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The real app (lifespan included) on a free loopback port, and its OpenAPI document."""
    settings = make_settings(database_url=sqlite_url)
    app = create_app(settings)
    with serve_in_thread(app) as base_url:
        yield base_url, app.openapi()


def _not_a_server_error(ctx: Any, response: Any, case: Any) -> bool:
    # /readyz answers 503 by design here: no worker runs, so there is no heartbeat.
    deliberate = case.path == "/readyz" and response.status_code == 503
    assert response.status_code < 500 or deliberate, (
        f"{case.method} {case.path} answered {response.status_code}"
    )
    return True


async def _orders_in(sqlite_url: str) -> int:
    engine = create_engine(make_settings(database_url=sqlite_url).database_url)
    try:
        async with session_factory(engine)() as session:
            return int((await session.execute(select(func.count()).select_from(OrderRecord))).scalar_one())
    finally:
        await engine.dispose()


def _fuzz(base_url: str, document: dict[str, Any], checks: list[Any]) -> list[str]:
    """Call every operation with generated input; returns "METHOD path status" per call."""
    schema = schemathesis.openapi.from_dict(document)
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # every operation's schema reads
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert {op.path for op in operations} >= {"/webhooks/woocommerce", "/healthz", "/readyz"}
    calls: list[str] = []
    with requests.Session() as session:
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call(base_url=base_url, session=session, timeout=5)
                calls.append(f"{case.method} {case.path} {response.status_code}")
                case.validate_response(response, checks=checks)

            run()
    assert len(calls) >= len(operations)
    return calls


def test_every_operation_survives_generated_input(
    served: tuple[str, dict[str, Any]], sqlite_url: str
) -> None:
    checks = [
        _not_a_server_error,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    _fuzz(*served, checks)
    assert asyncio.run(_orders_in(sqlite_url)) == 0


def test_every_status_code_answered_is_documented(served: tuple[str, dict[str, Any]]) -> None:
    # An integrator reading /openapi.json must learn of the webhook's 202/400/401/413/503 and /readyz's 503.
    _fuzz(*served, [status_code_conformance])


@given(body=st.binary(max_size=2048), signature=st.one_of(st.none(), st.text(max_size=60)))
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_random_bytes_never_reach_the_ledger(
    served: tuple[str, dict[str, Any]], body: bytes, signature: str | None
) -> None:
    base_url, _ = served
    headers = {"content-type": "application/json", "x-wc-webhook-topic": "order.updated"}
    # A header value cannot start or end with whitespace (requests refuses to send " ").
    if (
        signature is not None
        and signature.isascii()
        and signature.isprintable()
        and signature.strip() == signature
    ):
        headers["x-wc-webhook-signature"] = signature
    response = requests.post(f"{base_url}/webhooks/woocommerce", data=body, headers=headers, timeout=5)
    is_ping = body.strip().startswith(b"webhook_id=") and body.strip()[11:].isdigit()
    assert response.status_code == (200 if is_ping else 401), response.text
