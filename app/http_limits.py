"""What one client may hold of the web process: header bytes, and seconds to send a request.

Uvicorn bounds the idle time between requests (`--timeout-keep-alive`) and the requests served at
once (`--limit-concurrency`), but not how long a client may take to send a request, nor how large
its headers may grow (httptools has no limit; h11's is for its own, slower parser). So the
Procfile runs uvicorn with `--http app.http_limits:BoundedHttpToolsProtocol`, uvicorn's httptools
protocol with three rules added:

- the request line and headers must arrive within HTTP_HEADER_TIMEOUT_SECONDS of the connection
  opening (or of the request's first byte, on a kept-alive connection) — else `408`, closed;
- they may not exceed HTTP_MAX_HEADER_BYTES — else `431`, closed, before anything is parsed further;
- the body must arrive within HTTP_BODY_TIMEOUT_SECONDS of the headers — else `408`, closed, and
  the application's `receive` answers `http.disconnect`.

Behind Heroku's router or Fly's proxy a slow client holds a connection to the platform, not to
woobird (see the README's Security section); these rules are for what gets through anyway, and
for running woobird without a proxy in front.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.constants import HTTP_BODY_TIMEOUT_SECONDS, HTTP_HEADER_TIMEOUT_SECONDS, HTTP_MAX_HEADER_BYTES

log = logging.getLogger("uvicorn.error")


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn asks for a 400."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True
        self._raw_header_bytes = 0  # what arrived while the headers were incomplete
        self._parsed_header_bytes = 0  # the request line and headers as parsed
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    # ── connection ───────────────────────────────────────────────────────────────────────────

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadlines()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._raw_header_bytes > HTTP_MAX_HEADER_BYTES:
            self._refuse(431, "request headers larger than allowed")

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to any parser error, ours included: say what was really wrong.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # ── parser callbacks ─────────────────────────────────────────────────────────────────────

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._parsed_header_bytes = 0
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._raw_header_bytes = 0
        self._cancel(self._header_deadline)
        self._header_deadline = None
        self._body_deadline = self.loop.call_later(HTTP_BODY_TIMEOUT_SECONDS, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel(self._body_deadline)
        self._body_deadline = None
        self._reading_headers = True
        super().on_message_complete()

    # ── the rules ────────────────────────────────────────────────────────────────────────────

    def _count(self, size: int) -> None:
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > HTTP_MAX_HEADER_BYTES:
            self._refusal = (431, "request headers larger than allowed")
            raise _HeadersTooLarge

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(HTTP_HEADER_TIMEOUT_SECONDS, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._reading_headers:
            self._refuse(408, "request headers not received in time")

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.more_body:
            return
        if cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, "request body not received in time")
        # The application is told the client went away; anything it still sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()

    def _refuse(self, status: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        client = "%s:%d" % self.client if self.client else "unknown"  # noqa: UP031 - uvicorn's style
        log.warning("%s - %d, connection closed: %s", client, status, reason)
        body = reason.encode()
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()

    def _cancel_deadlines(self) -> None:
        for handle in (self._header_deadline, self._body_deadline):
            self._cancel(handle)
        self._header_deadline = self._body_deadline = None

    @staticmethod
    def _cancel(handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()
