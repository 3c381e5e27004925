"""An ASGI app served over real HTTP (or https, with tests/tls.py's certificate) in a daemon thread
of its own, for sync code and other event loops; the demo's own, same-loop `serve` is
app/sandbox/server.py's."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from app.sandbox.server import GRACE_SECONDS, START_TIMEOUT_SECONDS, base_url, bind, uvicorn_server
from tests.tls import Certificate


@contextlib.contextmanager
def serve_in_thread(
    app: Any, port: int = 0, *, host: str = "127.0.0.1", tls: Certificate | None = None
) -> Iterator[str]:
    """Run `app` in a daemon thread with its own event loop; yields its base URL (https with `tls`)."""
    sock = bind(host, port)
    server = uvicorn_server(app, certfile=tls.certfile if tls else None, keyfile=tls.keyfile if tls else None)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    try:
        deadline = START_TIMEOUT_SECONDS
        while not server.started and deadline > 0:
            if failure or not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started") from (failure[0] if failure else None)
            threading.Event().wait(0.01)
            deadline -= 0.01
        if not server.started:
            raise RuntimeError("uvicorn did not start in time")
        yield base_url(sock, https=tls is not None)
    finally:
        server.should_exit = True
        thread.join(GRACE_SECONDS * 5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(GRACE_SECONDS * 5)
        sock.close()
