"""Who may see /admin: whoever knows ADMIN_TOKEN, proven by a header or a signed session cookie.

The cookie never holds the token: it holds the time it was issued and an HMAC of that time keyed
by a key derived from the token (HKDF-SHA256; the token itself is never a MAC key), so a stolen
cookie expires and a changed ADMIN_TOKEN logs everyone out. Testing guesses against a captured
cookie offline is as hopeless as guessing the token, which is why a weak one refuses to start.
Forms carry a CSRF token derived from the session. A token in the query string is refused
outright: URLs end up in logs, history and Referer headers.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request

from app.i18n import N_
from app.settings import Settings

COOKIE_NAME = "woobird_admin"
# A shop owner's read-only sign-in with their connection's own token (app/connections.py).
VIEWER_COOKIE_NAME = "woobird_viewer"
COOKIE_PATH = "/admin"
SESSION_SECONDS = 12 * 3600
SESSION_ID_BYTES = 16
COOKIE_KEY_SALT = b"woobird admin cookie"
# Query parameters that look like someone pasting a credential into a URL.
QUERY_CREDENTIALS = frozenset({"token", "admin_token", "access_token"})


class LoginRequired(Exception):
    """No credentials, or wrong ones: answered with 401 and the login form."""

    def __init__(self, reason: str, *, guess: bool = False) -> None:
        super().__init__(reason)  # a message id (N_): the sign-in page shows it translated
        self.reason = reason
        self.guess = guess  # a wrong token was tried: counted by the login guard


class TokenInQuery(Exception):
    """A credential was put in the URL: answered with 400, and the URL is not logged."""


@dataclass(frozen=True, slots=True)
class Admin:
    via: Literal["cookie", "header", "viewer"]
    session: str | None  # the cookie value when signed in through the form
    # The connection a read-only sign-in may see (its own token); None for the admin.
    viewer_of: int | None = None

    def csrf(self, settings: Settings) -> str:
        return csrf_token(settings, self.session or "")


def _token(settings: Settings) -> bytes:
    return settings.admin_token.get_secret_value().encode()


@functools.lru_cache(maxsize=8)
def _cookie_key(token: bytes) -> bytes:
    """The key that signs cookies and CSRF tokens, derived from ADMIN_TOKEN for this one purpose."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=COOKIE_KEY_SALT, info=b"session v1").derive(token)


def _sign(settings: Settings, purpose: str) -> str:
    return hmac.new(_cookie_key(_token(settings)), purpose.encode(), hashlib.sha256).hexdigest()


def session_cookie(settings: Settings, *, issued: int | None = None, session_id: str | None = None) -> str:
    """`<issued>.<session id>.<mac>`: the id lets one session be signed out (app/admin/login_guard)."""
    issued = int(time.time()) if issued is None else issued
    session_id = secrets.token_hex(SESSION_ID_BYTES) if session_id is None else session_id
    return f"{issued}.{session_id}.{_sign(settings, f'woobird-admin-session:{issued}:{session_id}')}"


def viewer_cookie(
    settings: Settings,
    *,
    connection_id: int,
    digest: str,
    issued: int | None = None,
    session_id: str | None = None,
) -> str:
    """`<issued>.<session id>.c<connection>.<mac>`: a read-only session of one connection. The MAC
    covers the connection's current token digest, so a new token signs the old sessions out; the
    first two parts are an admin cookie's, so signing out and expiry work alike."""
    issued = int(time.time()) if issued is None else issued
    session_id = secrets.token_hex(SESSION_ID_BYTES) if session_id is None else session_id
    purpose = f"woobird-viewer-session:{connection_id}:{digest}:{issued}:{session_id}"
    return f"{issued}.{session_id}.c{connection_id}.{_sign(settings, purpose)}"


def viewer_connection_of(value: str) -> int | None:
    """The connection a well-formed viewer cookie names (not yet verified)."""
    parts = value.split(".")
    if len(parts) != 4 or session_parts(value) is None:
        return None
    number = parts[2].removeprefix("c")
    return (
        int(number)
        if parts[2].startswith("c") and number.isascii() and number.isdigit() and len(number) <= 9
        else None
    )


def valid_viewer_cookie(settings: Settings, value: str, *, digest: str, now: float | None = None) -> bool:
    parts = session_parts(value)
    connection_id = viewer_connection_of(value)
    if not _token(settings) or parts is None or connection_id is None or not digest:
        return False
    issued, session_id = parts
    now = time.time() if now is None else now
    if not (now - SESSION_SECONDS <= issued <= now + 60):
        return False
    expected = viewer_cookie(
        settings, connection_id=connection_id, digest=digest, issued=issued, session_id=session_id
    )
    return hmac.compare_digest(value.encode(), expected.encode())


def session_parts(value: str) -> tuple[int, str] | None:
    """The issue time and session id of a well-formed cookie value (not yet verified)."""
    issued_text, _, rest = value.partition(".")
    session_id, _, _ = rest.partition(".")
    # ASCII digits of a Unix time only: int() refuses "²" and a 5 000-digit number with a ValueError.
    if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
        return None
    if len(session_id) != 2 * SESSION_ID_BYTES or not all(c in "0123456789abcdef" for c in session_id):
        return None
    return int(issued_text), session_id


def valid_session(settings: Settings, value: str, *, now: float | None = None) -> bool:
    parts = session_parts(value)
    if not _token(settings) or parts is None:
        return False
    issued, session_id = parts
    now = time.time() if now is None else now
    if not (now - SESSION_SECONDS <= issued <= now + 60):
        return False
    expected = session_cookie(settings, issued=issued, session_id=session_id)
    return hmac.compare_digest(value.encode(), expected.encode())


def session_seconds_left(value: str, *, now: float | None = None) -> int:
    parts = session_parts(value)
    now = time.time() if now is None else now
    return max(1, int(parts[0] + SESSION_SECONDS - now)) if parts else 1


def csrf_token(settings: Settings, session: str) -> str:
    return _sign(settings, f"woobird-admin-csrf:{session}")


def valid_csrf(settings: Settings, admin: Admin, given: str) -> bool:
    if admin.via == "header":
        # Browsers never add an Authorization header on their own, so a forged form cannot carry it.
        return True
    return hmac.compare_digest(given.encode(), admin.csrf(settings).encode())


def token_matches(settings: Settings, given: str) -> bool:
    expected = _token(settings)
    return bool(expected) and hmac.compare_digest(given.strip().encode(), expected)


def refuse_query_token(request: Request) -> None:
    if QUERY_CREDENTIALS & {name.lower() for name in request.query_params}:
        raise TokenInQuery


def authenticate(request: Request, settings: Settings) -> Admin:
    """The signed-in admin, or LoginRequired naming what was wrong."""
    refuse_query_token(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not token_matches(settings, given):
            raise LoginRequired(N_("the Authorization header does not carry the admin token"), guess=True)
        return Admin(via="header", session=None)
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        raise LoginRequired(N_("sign in with the admin token"))
    if not valid_session(settings, cookie):
        raise LoginRequired(N_("the session expired or is not valid: sign in again"))
    return Admin(via="cookie", session=cookie)


def is_https(request: Request) -> bool:
    # Heroku and Fly terminate TLS in front of the app and say so in X-Forwarded-Proto; only the proxy
    # TRUSTED_PROXY names is believed, and PlatformProxyMiddleware has already put its word in the scope.
    return request.url.scheme == "https"
