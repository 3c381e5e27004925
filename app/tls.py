"""One TLS client context per process, shared by every outgoing HTTP client.

httpx builds a new `ssl.SSLContext` for each client and loads the whole CA bundle into it: about
0.8 MiB a client. A worker holds a shop client and a Moneybird client per connection, so fifty
connections cost some 80 MiB of identical certificate stores. The context holds no per-connection
state (no client certificate, no session cache we rely on), so one serves them all.

It is made the way httpx makes its own (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured, certifi
otherwise), on first use, so a process that never speaks HTTPS never loads the bundle.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls_context() -> ssl.SSLContext:
    """The process's verifying TLS context for outgoing requests."""
    return httpx.create_ssl_context(trust_env=True)
