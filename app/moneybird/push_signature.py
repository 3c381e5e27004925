"""Moneybird's signature on its webhook pushes (`Moneybird-Signature: t=<unix seconds>,v1=<hex>`).

The signed string is `"{t}.{raw body}"`, keyed with the webhook's secret (HMAC-SHA256, hex). During
a secret rotation the header carries one `v1` per active secret: any match will do. A `t` more than
five minutes from now is refused (a replayed push), and schemes other than `v1` are ignored so that
no weaker one can be slipped in. Nothing of the body is read before the signature holds.

Test vector, checked in tests/test_moneybird_pushes.py:
    secret    = "whsec_test_5b1f"
    t         = 1765100000
    body      = b'{"entity_id":"1"}'
    signature = "t=1765100000,v1=d5f56bcd2d0015822d9b5cbedce457d6603b7a846cd8dc8fea735ed2cd06abd4"
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "moneybird-signature"
# How far a push's timestamp may be from our clock, either way.
TOLERANCE_SECONDS: Final = 300
# A header is outside input: Moneybird's carries a timestamp and one or two digests.
MAX_HEADER_CHARS: Final = 1024


class PushSignatureError(ValueError):
    """The push is not Moneybird's (or not any more): the message says which check failed."""


def digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_push(secret: str, body: bytes, *, timestamp: int) -> str:
    """The header Moneybird puts on `body`; the Moneybird fake and the tests sign with it."""
    return f"t={timestamp},v1={digest(secret, body, timestamp)}"


def verify_push(secret: str, body: bytes, header: str | None, *, now: float) -> None:
    """Raise PushSignatureError unless `header` signs `body` with `secret` within the tolerance."""
    if not secret:
        raise PushSignatureError("no Moneybird webhook secret is stored (run `woobird webhook install`)")
    if not header:
        raise PushSignatureError("the Moneybird-Signature header is missing")
    if len(header) > MAX_HEADER_CHARS:
        raise PushSignatureError("the Moneybird-Signature header is too long")
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            given.append(value.strip().lower())
    if timestamp is None:
        raise PushSignatureError("the Moneybird-Signature header has no timestamp")
    if not given:
        raise PushSignatureError("the Moneybird-Signature header has no v1 signature")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise PushSignatureError("the push's timestamp is over 5 minutes from now (a replay, or a clock off)")
    expected = digest(secret, body, timestamp)
    # Every candidate is compared, in constant time each, so no early exit tells which one was close.
    matched = [hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in given]
    if not any(matched):
        raise PushSignatureError("the signature does not match the body (another secret, or an altered body)")
