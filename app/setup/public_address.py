"""woobird's own address (PUBLIC_URL): where the shop sends its key, Moneybird sends the admin back,
and WooCommerce delivers orders.

The wizard never takes it from a request on its own. A request's `Host` header is the client's word
(a forged one would send the shop's key and the webhook secret to whoever it names), so it is only
offered as a suggestion in an editable field; the address is stored, and used, once the admin has
confirmed it. PUBLIC_URL in the environment is the admin's confirmation too.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from app.i18n import N_

MAX_LENGTH: Final = 300


def normalise(text: str) -> str:
    return text.strip()[:MAX_LENGTH].rstrip("/")


NOT_AN_ADDRESS: Final = N_(
    "that is not a web address: enter it as https://woobird.example.nl (scheme and host, and a port if it "
    "needs one)"
)
NOT_ONLY_AN_ADDRESS: Final = N_(
    "woobird's address is its scheme and host only, without a path, query or user name: enter it as "
    "https://woobird.example.nl (scheme and host, and a port if it needs one)"
)


def problem(url: str) -> str | None:
    """Why `url` cannot be woobird's address (a message id), or None when it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return NOT_AN_ADDRESS
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return NOT_AN_ADDRESS
    if "@" in parts.netloc or parts.query or parts.fragment or parts.path not in ("", "/"):
        return NOT_ONLY_AN_ADDRESS
    if not url.isprintable() or any(c.isspace() for c in url):
        return NOT_AN_ADDRESS
    return None


def suggestion(scheme: str, host: str) -> str:
    """What the address field offers before anything is confirmed: where the browser opened woobird
    (the request's own scheme, which only the trusted proxy may change). Never stored by itself."""
    url = normalise(f"{scheme}://{host}")
    return url if problem(url) is None else ""
