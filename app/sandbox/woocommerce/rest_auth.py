"""Who is calling the fake shop's REST API: `WC_REST_Authentication`, as WooCommerce decides it.

- Over HTTPS (the request's scheme, or `X-Forwarded-Proto: https` from a TLS proxy) the consumer
  key and secret may come as query parameters or as Basic auth, query parameters first.
- Over plain HTTP neither is looked at: only an OAuth 1.0a one-legged signature authenticates.
  Without one the request is anonymous, and the REST API answers 401 with the route's own
  "Sorry, you cannot …" message — which is why a key that works on https:// "does not work" on a
  local http:// shop.
- The signature is checked the way WooCommerce computes it: the request's query (as PHP parses
  it, so `status[]=a` becomes `status[0]`), form fields and the Authorization header's `oauth_*`
  parameters; keys sorted as given, keys and values RFC 3986-encoded, the pairs joined and
  encoded again; `METHOD&encoded home URL + path&pairs`, HMAC-SHA1 or HMAC-SHA256 with
  `consumer_secret&`. The timestamp must be within 15 minutes, a nonce is used once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote

from starlette.requests import Request

from app.sandbox.woocommerce.wire import RestError

AUTH_ERROR = "woocommerce_rest_authentication_error"
OAUTH_PARAMETERS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
WINDOW_SECONDS = 15 * 60
_HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def is_ssl(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        return None, None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else (None, None)


def key_and_secret(request: Request) -> tuple[str | None, str | None]:
    """Query-string keys, else Basic auth; both only count when WordPress sees TLS."""
    if not is_ssl(request):
        return None, None
    key = request.query_params.get("consumer_key")
    secret = request.query_params.get("consumer_secret")
    if key is None or secret is None:
        key, secret = basic_credentials(request.headers.get("authorization", ""))
    return key, secret


def php_query(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A query string as PHP's `$_GET` holds it, flattened the way WooCommerce signs it:
    `a[]=x&a[]=y` becomes `a[0]=x, a[1]=y`; a repeated plain key keeps its last value."""
    params: dict[str, str] = {}
    counters: dict[str, int] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            base = key[:-2]
            index = counters.get(base, 0)
            counters[base] = index + 1
            params[f"{base}[{index}]"] = value
        else:
            params[key] = value
    return params


def header_parameters(header: str) -> dict[str, str]:
    """`Authorization: OAuth oauth_x="…", …` → its `oauth_*` parameters, decoded."""
    header = header.strip()
    if not header.lower().startswith("oauth "):
        return {}
    params: dict[str, str] = {}
    for part in header[6:].split(","):
        key, separator, value = part.strip().partition("=")
        if separator and key.startswith("oauth_"):
            params[key] = unquote(value.strip().strip('"'))
    return params


def _encode(text: str) -> str:
    return quote(text, safe="~")


def signature(
    *, method: str, base_uri: str, params: Mapping[str, str], consumer_secret: str, hash_name: str
) -> str:
    """The signature WooCommerce expects for these parameters (without `oauth_signature`)."""
    ordered = sorted(params.items(), key=lambda item: item[0].encode())
    # Each pair is encoded twice, as WooCommerce does (`a[0]` → `a%5B0%5D` → `a%255B0%255D`).
    pairs = [_encode(f"{_encode(key)}={_encode(value)}") for key, value in ordered]
    string_to_sign = f"{method.upper()}&{_encode(base_uri)}&{'%26'.join(pairs)}"
    digest = hmac.new(f"{consumer_secret}&".encode(), string_to_sign.encode(), _HASHES[hash_name]).digest()
    return base64.b64encode(digest).decode()


class OAuthVerifier:
    """One shop's OAuth 1.0a check, with the nonces it has seen (per 15-minute window)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def parameters(self, request: Request, form: Mapping[str, str]) -> dict[str, str]:
        params = php_query(parse_qsl(request.url.query, keep_blank_values=True))
        params.update(form)
        params.update(header_parameters(request.headers.get("authorization", "")))
        return params

    def verify(
        self,
        request: Request,
        *,
        params: dict[str, str],
        home_url: str,
        consumer_secret: str | None,
    ) -> bool:
        """False when the request does not try OAuth at all; raises RestError when it tries and fails."""
        if not any(params.get(name) for name in OAUTH_PARAMETERS):
            return False
        missing = [name for name in OAUTH_PARAMETERS if not params.get(name)]
        if missing:
            noun = "parameter" if len(missing) == 1 else "parameters"
            message = f"Missing OAuth {noun} {', '.join(missing)}"
            raise RestError(401, "woocommerce_rest_authentication_missing_parameter", message)
        if consumer_secret is None:  # the shop knows no such key
            raise RestError(401, AUTH_ERROR, "Consumer key is invalid.")
        given = params.pop("oauth_signature").replace(" ", "+")
        hash_name = params["oauth_signature_method"]
        if hash_name not in _HASHES:
            raise RestError(401, AUTH_ERROR, "Invalid signature - signature method is invalid.")
        scheme = "https" if is_ssl(request) else "http"
        base_uri = re.sub(r"^https?://", f"{scheme}://", home_url.rstrip("/")) + request.url.path
        expected = signature(
            method=request.method,
            base_uri=base_uri,
            params=params,
            consumer_secret=consumer_secret,
            hash_name=hash_name,
        )
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise RestError(401, AUTH_ERROR, "Invalid signature - provided signature does not match.")
        self._check_timestamp_and_nonce(params["oauth_timestamp"], params["oauth_nonce"])
        return True

    def _check_timestamp_and_nonce(self, timestamp: str, nonce: str) -> None:
        now = time.time()
        try:
            moment = int(timestamp)
        except ValueError:
            moment = 0
        if not now - WINDOW_SECONDS <= moment <= now + WINDOW_SECONDS:
            raise RestError(401, AUTH_ERROR, "Invalid timestamp.")
        self.seen = {seen: at for seen, at in self.seen.items() if at > now - WINDOW_SECONDS}
        if nonce in self.seen:
            raise RestError(401, AUTH_ERROR, "Invalid nonce - nonce has already been used.")
        self.seen[nonce] = now
