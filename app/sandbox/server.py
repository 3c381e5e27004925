"""Serve an ASGI app over real HTTP with uvicorn for as long as a `with` block lasts.

    async with serve(app) as base_url: ...        # same event loop (async tests)
    with serve_in_thread(app) as base_url: ...     # own thread and loop (sync code, other loops)

Both bind the socket first (port 0 = a free one, known before start), return once uvicorn says
it has started, and on exit stop it, cancelling requests still running after a short grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from app.sandbox.tls import Certificate

_START_TIMEOUT_SECONDS = 10.0
_GRACE_SECONDS = 1.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process (pytest, the CLI) owns SIGINT/SIGTERM, not this embedded server.
        yield


def _bind(host: str, port: int) -> socket.socket:
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


def _server(app: Any, tls: Certificate | None = None) -> _Server:
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls.certfile) if tls else None,
        ssl_keyfile=str(tls.keyfile) if tls else None,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        ws="none",
        timeout_graceful_shutdown=int(_GRACE_SECONDS),
    )
    return _Server(config)


def _base_url(sock: socket.socket, *, https: bool = False) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if https else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@contextlib.asynccontextmanager
async def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run `app` on this event loop; yields its base URL, e.g. 'http://127.0.0.1:54321'."""
    sock = _bind(host, port)
    server = _server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()  # surfaces the start-up error
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield _base_url(sock)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _GRACE_SECONDS * 5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock.close()


@contextlib.contextmanager
def serve_in_thread(
    app: Any, port: int = 0, *, host: str = "127.0.0.1", tls: Certificate | None = None
) -> Iterator[str]:
    """Run `app` in a daemon thread with its own event loop; yields its base URL (https with `tls`)."""
    sock = _bind(host, port)
    server = _server(app, tls)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    try:
        deadline = _START_TIMEOUT_SECONDS
        while not server.started and deadline > 0:
            if failure or not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started") from (failure[0] if failure else None)
            threading.Event().wait(0.01)
            deadline -= 0.01
        if not server.started:
            raise RuntimeError("uvicorn did not start in time")
        yield _base_url(sock, https=tls is not None)
    finally:
        server.should_exit = True
        thread.join(_GRACE_SECONDS * 5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_GRACE_SECONDS * 5)
        sock.close()
