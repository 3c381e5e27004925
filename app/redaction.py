"""What may leave woobird as text: no credential, no full e-mail address, nothing unbounded.

Every text that reaches a log line, the ledger, the dashboard or an alert goes through `scrub`:

- it is cut to a bounded length first, so nothing below ever sees more than `limit` characters;
- URLs lose their userinfo and their query (`https://ck:cs@shop/x?consumer_secret=…` →
  `https://[redacted]@shop/x?[redacted]`): a shop's redirect, an httpx error or a database
  error may quote a URL that carries a key;
- credential-shaped values are replaced: WooCommerce keys (`ck_…`, `cs_…`), `Bearer …`/`Basic …`,
  `password=…`/`"secret": "…"` pairs (any name ending in password, secret, token or api key),
  and long random-looking tokens such as Moneybird's;
- e-mail addresses are masked to their first letter and domain.

Every pattern is linear in the length of the text: outside input reaches this module (a webhook's
headers, a shop's error message), and a backtracking pattern there would hold the event loop.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[redacted]"
# The longest text a log value, a ledger message or an alert may carry.
TEXT_LIMIT: Final = 2000
_CUT_MARK: Final = "…[cut]"

# A URL: scheme, optional userinfo, the rest of the address, optional query. Each part stops at
# the characters the next part starts with, so no part re-scans another's text.
_URL = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]{0,15}://)"
    r"(?:(?P<userinfo>[^\s/?#@\"'<>]*)@)?"
    r"(?P<address>[^\s?#\"'<>]*)"
    r"(?P<query>\?[^\s#\"'<>]*)?"
)
_WOOCOMMERCE_KEY = re.compile(r"\b(?:ck|cs)_[A-Za-z0-9]{8,}")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token|OAuth)[ \t]{1,4}[A-Za-z0-9._~+/=\-]{4,}", re.IGNORECASE)
_CREDENTIAL_PAIR = re.compile(
    r"(?P<name>\b[\w\-]{0,32}(?:password|passwd|secret|token|api[_\-]?key|consumer[_\-]key)"
    r"[\"']?[ \t]{0,3}[=:][ \t]{0,3}[\"']?)"
    r"(?P<value>[^\s&\"',;<>]+)",
    re.IGNORECASE,
)
_TOKEN_CHARS = "A-Za-z0-9_\\-"
_LONG_TOKEN = re.compile(rf"(?<![{_TOKEN_CHARS}])[{_TOKEN_CHARS}]{{32,}}(?![{_TOKEN_CHARS}])")
_EMAIL_CHARS = "A-Za-z0-9._%+\\-"
# The look-behind lets a match start only where a run of address characters starts: without it
# every position inside a long run would scan to the run's end again (quadratic).
_EMAIL = re.compile(rf"(?<![{_EMAIL_CHARS}])([{_EMAIL_CHARS}])[{_EMAIL_CHARS}]*@([A-Za-z0-9.\-]+)")


def bound(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + _CUT_MARK


def mask_email(text: str) -> str:
    """`jan.jansen@example.nl` → `j…@example.nl`: enough to recognise, not enough to harvest."""
    return _EMAIL.sub(lambda m: f"{m[1]}…@{m[2]}", text)


def safe_url(url: str) -> str:
    """A URL fit to quote in a message: no userinfo, no query."""
    return _URL.sub(_strip_url, url)


def _strip_url(match: re.Match[str]) -> str:
    userinfo = f"{REDACTED}@" if match["userinfo"] is not None else ""
    query = f"?{REDACTED}" if match["query"] else ""
    return f"{match['scheme']}{userinfo}{match['address']}{query}"


def _looks_random(match: re.Match[str]) -> str:
    token = match[0]
    # Ids, dates and words are not credentials; a long run of letters *and* digits usually is.
    if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
        return REDACTED
    return token


def redact_credentials(text: str) -> str:
    text = safe_url(text)
    text = _WOOCOMMERCE_KEY.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _CREDENTIAL_PAIR.sub(lambda m: m["name"] + REDACTED, text)
    return _LONG_TOKEN.sub(_looks_random, text)


def scrub(text: str, *, limit: int = TEXT_LIMIT) -> str:
    """`text` bounded, without credentials and with e-mail addresses masked."""
    return mask_email(redact_credentials(bound(text, limit)))
