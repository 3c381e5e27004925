"""Serve an ASGI app over real HTTP with uvicorn for as long as a `with` block lasts (the demo's
fake shop and Moneybird; tests/server.py runs one in a thread of its own, over https if asked).

    async with serve(app) as base_url: ...        # same event loop

It binds the socket first (port 0 = a free one, known before start), returns once uvicorn says it
has started, and on exit stops it, cancelling requests still running after a short grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import uvicorn

START_TIMEOUT_SECONDS = 10.0
GRACE_SECONDS = 1.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process (pytest, the CLI) owns SIGINT/SIGTERM, not this embedded server.
        yield


def bind(host: str, port: int) -> socket.socket:
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket names its
    # protocol; without it every answer waits ~40 ms for the client's delayed ACK (Nagle), which no
    # real server does and which would swamp the latency the benchmarks measure.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def uvicorn_server(app: Any, *, certfile: Path | None = None, keyfile: Path | None = None) -> uvicorn.Server:
    """uvicorn for `app` that leaves the host process's signals alone; https with a certificate."""
    config = uvicorn.Config(
        app,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        ws="none",
        timeout_graceful_shutdown=int(GRACE_SECONDS),
    )
    return _Server(config)


def base_url(sock: socket.socket, *, https: bool = False) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if https else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@contextlib.asynccontextmanager
async def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run `app` on this event loop; yields its base URL, e.g. 'http://127.0.0.1:54321'."""
    sock = bind(host, port)
    server = uvicorn_server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()  # surfaces the start-up error
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield base_url(sock)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), GRACE_SECONDS * 5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock.close()
