"""Every connection's shop and Moneybird clients share the process's one TLS context (app.tls).

A context per client loads the CA bundle again each time (~0.8 MiB): fifty connections on one worker
were 1.6× the memory of one. `bench/bench_connections.py` measures the memory; this proves the cause
is gone.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from arq.connections import ArqRedis

from app.address_guard import AllowedAddresses, guarded_transport
from app.runtime import build_services
from app.tls import client_tls_context
from tests.conftest import make_settings


def _context_of(transport: Any) -> ssl.SSLContext:
    assert isinstance(transport, httpx.AsyncHTTPTransport), transport
    context = transport._pool._ssl_context
    assert isinstance(context, ssl.SSLContext)
    return context


def _client_context(client: httpx.AsyncClient) -> ssl.SSLContext:
    return _context_of(client._transport)


async def test_two_connections_clients_share_one_verifying_tls_context(
    redis: ArqRedis, sqlite_url: str
) -> None:
    first = make_settings(database_url=sqlite_url)
    second = make_settings(
        database_url=sqlite_url,
        woocommerce_url="https://tweede-winkel.test",
        moneybird_administration_id="223456789012345678",
    )
    one = await build_services(first, redis)
    other = await build_services(second, redis, environment=first, connection_id=2, engine=one.engine)
    try:
        contexts = [_client_context(services.shop._http) for services in (one, other)] + [
            _client_context(services.moneybird._http._client) for services in (one, other)
        ]
        assert all(context is client_tls_context() for context in contexts), contexts
    finally:
        await other.aclose()
        await one.aclose()
    # Shared, it still checks every certificate and host name.
    assert client_tls_context().verify_mode == ssl.CERT_REQUIRED
    assert client_tls_context().check_hostname


def test_the_setup_probe_uses_the_shared_context() -> None:
    transport = guarded_transport(AllowedAddresses())
    assert _context_of(transport) is client_tls_context()
