"""Moneybird's OAuth 2.0 authorization-code flow, faked: the consent page, the token endpoint, refresh.

What the reference says Moneybird does (docs and client libraries): `GET /oauth/authorize` with
`client_id`, `redirect_uri` (must match the registered one exactly), `response_type=code`, a
space-separated `scope` and `state`; the person allows or denies; the browser goes back to the
redirect URI with `code` and `state`, or `error=access_denied`. `POST /oauth/token`, form-encoded,
trades the code (with `client_id` and `client_secret`) for `access_token` and `refresh_token`, and
a refresh token for a new pair. Access tokens carry no `expires_in` (they "currently do not
expire"); a test can revoke one to make a refresh necessary.

Stricter than the reference where a fake must be: a code is single use and lives ten minutes, and
when the authorize request carried a PKCE challenge the token request must carry its verifier.
A refresh rotates: the old refresh token and access token stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

SCOPES: Final = frozenset({"sales_invoices", "documents", "estimates", "bank", "time_entries", "settings"})
CODE_SECONDS: Final = 600


@dataclass
class _Code:
    redirect_uri: str
    scope: str
    challenge: str | None
    expires: float


@dataclass
class MoneybirdOAuth:
    """One registered app, and the codes and tokens it was given."""

    client_id: str = field(default_factory=lambda: secrets.token_hex(16))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    redirect_uri: str = ""
    codes: dict[str, _Code] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh → its access token
    granted_scopes: list[str] = field(default_factory=list)
    token_requests: list[str] = field(default_factory=list)  # grant types, in order

    def revoke_access(self, token: str) -> None:
        """As if the access token expired: the next request with it gets Moneybird's 401."""
        self.access_tokens.discard(token)

    def _issue(self) -> dict[str, str | int]:
        access, refresh = secrets.token_hex(32), secrets.token_hex(32)
        self.access_tokens.add(access)
        self.refresh_tokens[refresh] = access
        return {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "scope": " ".join(self.granted_scopes),
            "created_at": int(time.time()),
        }


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body style='font-family:system-ui;max-width:34rem;margin:3rem auto'>"
        f"<p><strong>Moneybird</strong> <small>(sandbox)</small></p>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status)


class _Pages:
    def __init__(self, oauth: MoneybirdOAuth, *, administration_name: str) -> None:
        self.oauth = oauth
        self.administration_name = administration_name

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != self.oauth.client_id:
            return _page(
                "Unknown application",
                "<p>Unknown client_id: this application is not registered.</p>",
                status=400,
            )
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri or redirect_uri != self.oauth.redirect_uri:
            why = "The redirect URI does not match the one registered for this application."
            return _page("Wrong redirect URI", f"<p>{why}</p>", status=400)
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=query.get("state"))
        scopes = query.get("scope", "sales_invoices").split()
        if not scopes or not set(scopes) <= SCOPES:
            return _redirect(redirect_uri, error="invalid_scope", state=query.get("state"))
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(name)}' value='{html.escape(query.get(name, ''))}'>"
            for name in ("redirect_uri", "state", "scope", "code_challenge", "code_challenge_method")
        )
        listed = "".join(f"<li><code>{html.escape(scope)}</code></li>" for scope in scopes)
        body = (
            f"<h1>Allow woobird access to {html.escape(self.administration_name)}?</h1>"
            f"<p>It asks for:</p><ul>{listed}</ul>"
            f"<form method='post' action='/oauth/authorize'>{hidden}"
            "<button name='decision' value='allow'>Allow</button> "
            "<button name='decision' value='deny'>Deny</button></form>"
        )
        return _page("Authorize application", body)

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        redirect_uri = str(form.get("redirect_uri", ""))
        state = str(form.get("state", "")) or None
        if redirect_uri != self.oauth.redirect_uri:
            return _page("Wrong redirect URI", "<p>The redirect URI does not match.</p>", status=400)
        if form.get("decision") != "allow":
            return _redirect(redirect_uri, error="access_denied", state=state)
        method = str(form.get("code_challenge_method", "")) or None
        challenge = str(form.get("code_challenge", "")) or None
        if challenge and method != "S256":
            return _redirect(redirect_uri, error="invalid_request", state=state)
        code = secrets.token_hex(20)
        scope = str(form.get("scope", "sales_invoices"))
        self.oauth.codes[code] = _Code(redirect_uri, scope, challenge, time.time() + CODE_SECONDS)
        self.oauth.granted_scopes = scope.split()
        return _redirect(redirect_uri, code=code, state=state)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        self.oauth.token_requests.append(grant)
        client_ok = hmac.compare_digest(
            str(form.get("client_id", "")), self.oauth.client_id
        ) and hmac.compare_digest(str(form.get("client_secret", "")), self.oauth.client_secret)
        if not client_ok:
            return _error(401, "invalid_client", "Client authentication failed")
        if grant == "authorization_code":
            found = self.oauth.codes.pop(str(form.get("code", "")), None)
            if found is None or found.expires < time.time():
                return _error(400, "invalid_grant", "The authorization code is invalid, expired or used")
            if str(form.get("redirect_uri", "")) != found.redirect_uri:
                return _error(400, "invalid_grant", "The redirect URI does not match")
            if found.challenge is not None and not _pkce_holds(
                str(form.get("code_verifier", "")), found.challenge
            ):
                return _error(400, "invalid_grant", "The code verifier does not match the challenge")
            return JSONResponse(self.oauth._issue())
        if grant == "refresh_token":
            old = self.oauth.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if old is None:
                return _error(400, "invalid_grant", "The refresh token is invalid")
            self.oauth.access_tokens.discard(old)
            return JSONResponse(self.oauth._issue())
        return _error(400, "unsupported_grant_type", "The authorization grant type is not supported")


def routes(oauth: MoneybirdOAuth, *, administration_name: str) -> list[Route]:
    pages = _Pages(oauth, administration_name=administration_name)
    return [
        Route("/oauth/authorize", pages.authorize, methods=["GET"]),
        Route("/oauth/authorize", pages.decide, methods=["POST"]),
        Route("/oauth/token", pages.token, methods=["POST"]),
    ]


def _pkce_holds(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return bool(verifier) and hmac.compare_digest(expected, challenge)


def _redirect(uri: str, *, state: str | None, **params: str) -> RedirectResponse:
    if state:
        params["state"] = state
    return RedirectResponse(f"{uri}?{urlencode(params)}", status_code=302)


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
