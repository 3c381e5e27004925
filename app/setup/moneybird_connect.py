"""Step 3: a personal API token pasted, or Moneybird's OAuth authorization-code flow; then the
administration. Also the token refresh that keeps an OAuth connection working afterwards.

OAuth needs an app registered at moneybird.com/user/applications (MONEYBIRD_CLIENT_ID and
MONEYBIRD_CLIENT_SECRET) whose redirect URI is woobird's `/admin/setup/moneybird/callback`. The
`state` is random, single use, ten minutes, bound to the admin session. Moneybird does not document
PKCE; woobird sends an S256 challenge anyway (a server that does not know it ignores it, one that
does — the sandbox's — verifies it), so a stolen code is useless without the verifier.

Moneybird's access tokens currently do not expire, but may: on a 401, `refresh_stored_token`
trades the refresh token for a new pair once (under a Redis lock, so two workers do not race a
rotating refresh token) and stores both, so every process picks them up.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog
from arq.connections import ArqRedis
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from pydantic import SecretStr

from app import clients
from app.clients import moneybird_client
from app.constants import MONEYBIRD_REFRESH_LOCK_KEY, SETUP_OAUTH_STATE_PREFIX
from app.db import create_engine, session_factory
from app.i18n import N_
from app.moneybird.errors import MoneybirdAuthError, MoneybirdError
from app.moneybird.models import Administration
from app.queue import connect, connection_key
from app.settings import Settings
from app.settings_store import DEFAULT_CONNECTION, read_stored, write_settings
from app.setup.shop import session_binding
from app.tls import client_tls_context

log = structlog.get_logger("woobird.setup")

# Asked for by name: what woobird does with each.
SCOPES: Final[dict[str, str]] = {
    "sales_invoices": N_("create, send and register payment of invoices; find and create contacts"),
    "settings": N_("read tax rates, ledger accounts, workflows and document styles; create products"),
}
CALLBACK_PATH: Final = "/admin/setup/moneybird/callback"
STATE_TTL_SECONDS: Final = 10 * 60
_STATE: Final = SETUP_OAUTH_STATE_PREFIX
_REFRESH_LOCK: Final = MONEYBIRD_REFRESH_LOCK_KEY
TOKEN_TIMEOUT_SECONDS: Final = 20.0
MAX_TOKEN_LENGTH: Final = 512


class ConnectRefused(Exception):
    """The connection did not work; the message says what to do."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None


def oauth_available(settings: Settings) -> bool:
    secret = settings.moneybird_client_secret
    return bool(settings.moneybird_client_id and secret and secret.get_secret_value())


async def begin_oauth(
    redis: ArqRedis, settings: Settings, *, redirect_uri: str, session: str | None, connection_id: int = 1
) -> str:
    """The URL of Moneybird's consent page for a new, remembered authorization (for the connection
    whose wizard started it: Moneybird returns to the one redirect URI registered for woobird)."""
    state = secrets.token_urlsafe(24)
    verifier = generate_token(64)
    record = {
        "session": session_binding(session),
        "verifier": verifier,
        "redirect_uri": redirect_uri,
        "connection": connection_id,
    }
    await redis.set(_STATE + state, json.dumps(record), ex=STATE_TTL_SECONDS)
    url: str = prepare_grant_uri(
        settings.moneybird_oauth_url + "/authorize",
        settings.moneybird_client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=" ".join(SCOPES),
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    return url


async def oauth_connection(redis: ArqRedis, state: str) -> int:
    """The connection whose wizard started the authorization `state` (1 when unknown: finish_oauth
    then refuses it)."""
    raw = await redis.get(_STATE + state[:64]) if state else None
    return int(json.loads(raw).get("connection", 1)) if raw is not None else 1


async def finish_oauth(
    redis: ArqRedis,
    settings: Settings,
    *,
    state: str,
    code: str | None,
    error: str | None,
    session: str | None,
) -> Tokens:
    """Trade the code for tokens, if `state` is one this session started and has not used.

    The owner is checked first, and only the owner's complete answer (a code, or Moneybird's
    refusal) uses the state up: another session's request, or one with neither, leaves it."""
    key = _STATE + state[:64]
    raw = await redis.get(key) if state else None
    if raw is None:
        raise _unknown_state()
    record = json.loads(raw)
    if not secrets.compare_digest(str(record["session"]), session_binding(session)):
        raise ConnectRefused("this connection was started in another session: press Connect again.")
    if not (code or error):
        raise ConnectRefused("Moneybird sent no code: press Connect again.")
    if await redis.getdel(key) is None:  # the owner's other tab took it in between
        raise _unknown_state()
    if error:
        raise ConnectRefused(
            "Moneybird says access was not granted"
            + (f" ({error[:60]})" if error != "access_denied" else "")
            + ": press “Connect with Moneybird” again and choose to allow woobird, or paste a personal "
            "API token instead."
        )
    if not code:  # neither a code nor an error was turned away above
        raise ConnectRefused("Moneybird sent no code: press Connect again.")
    return await _token_request(
        settings,
        {
            "grant_type": "authorization_code",
            "code": code[:512],
            "redirect_uri": str(record["redirect_uri"]),
            "code_verifier": str(record["verifier"]),
        },
    )


def _unknown_state() -> ConnectRefused:
    return ConnectRefused(
        "this answer from Moneybird does not belong to a connection started here (or it is older "
        "than ten minutes, or was used already): press “Connect with Moneybird” again."
    )


async def _token_request(settings: Settings, form: dict[str, str]) -> Tokens:
    secret = settings.moneybird_client_secret.get_secret_value() if settings.moneybird_client_secret else ""
    form = {**form, "client_id": settings.moneybird_client_id or "", "client_secret": secret}
    async with httpx.AsyncClient(
        transport=clients.transports.moneybird,
        timeout=TOKEN_TIMEOUT_SECONDS,
        verify=client_tls_context(),
    ) as client:
        try:
            response = await client.post(
                settings.moneybird_oauth_url + "/token", data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise ConnectRefused(f"could not reach Moneybird ({type(exc).__name__}): try again") from exc
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        reason = (
            str(body.get("error", response.status_code)) if isinstance(body, dict) else response.status_code
        )
        raise ConnectRefused(
            f"Moneybird did not hand out a token ({reason}): check MONEYBIRD_CLIENT_ID and "
            "MONEYBIRD_CLIENT_SECRET, and that the app's redirect URI is woobird's "
            f"{CALLBACK_PATH}; then press Connect again."
        )
    refresh = body.get("refresh_token")
    return Tokens(access_token=str(body["access_token"]), refresh_token=str(refresh) if refresh else None)


async def administrations(settings: Settings, *, token: str) -> list[Administration]:
    """The administrations this token reaches; refused tokens explained."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise ConnectRefused(
            "that is not a Moneybird API token: copy the token itself (one line of letters and digits)."
        )
    probe = settings.model_copy(
        update={"moneybird_api_token": SecretStr(token.strip()), "moneybird_administration_id": "0"}
    )
    try:
        async with moneybird_client(probe) as moneybird:
            found = await moneybird.list_administrations()
    except MoneybirdAuthError:
        raise ConnectRefused(
            "Moneybird refused the token. Make a new personal API token under Moneybird → Settings → "
            "External and AI integrations (tick sales_invoices and settings), copy it whole, and paste it."
        ) from None
    except MoneybirdError as exc:
        raise ConnectRefused(f"could not talk to Moneybird: {exc}") from exc
    if not found:
        raise ConnectRefused("this token reaches no administration: make it as the administration's owner.")
    return found


# ── refresh, for the worker and the web alike ────────────────────────────────────────────────


def token_refresher(
    settings: Settings, *, connection_id: int = DEFAULT_CONNECTION
) -> Callable[[str], Awaitable[str | None]] | None:
    """For MoneybirdClient's `on_unauthorized`: None unless an OAuth connection can be refreshed."""
    if not (oauth_available(settings) and settings.moneybird_refresh_token):
        return None

    async def refresh(failed_token: str) -> str | None:
        return await refresh_stored_token(settings, failed_token=failed_token, connection_id=connection_id)

    return refresh


async def refresh_stored_token(
    settings: Settings, *, failed_token: str, connection_id: int = DEFAULT_CONNECTION
) -> str | None:
    """A working access token after `failed_token` got a 401, stored for every process (in the
    connection's own stored settings: never another connection's); or None."""
    redis = connect(settings.redis_url, tls_verify=settings.redis_tls_verify)
    engine = create_engine(settings.database_url)
    try:
        async with redis.lock(connection_key(_REFRESH_LOCK, connection_id), timeout=60, blocking_timeout=30):
            sessions = session_factory(engine)
            async with sessions() as session:
                stored = (await read_stored(session, settings, connection_id=connection_id)).values
            token = stored.get("MONEYBIRD_API_TOKEN", "")
            if token and token != failed_token:
                return token  # another process refreshed it while this one waited
            refresh = stored.get("MONEYBIRD_REFRESH_TOKEN")
            if not refresh:
                return None
            tokens = await _token_request(settings, {"grant_type": "refresh_token", "refresh_token": refresh})
            await write_settings(
                sessions,
                base=settings,
                values={
                    "MONEYBIRD_API_TOKEN": tokens.access_token,
                    "MONEYBIRD_REFRESH_TOKEN": tokens.refresh_token or refresh,
                },
                actor=N_("woobird (OAuth token refresh after a 401)"),
                connection_id=connection_id,
            )
            log.info("Moneybird access token refreshed")
            return tokens.access_token
    except ConnectRefused as exc:
        log.error("Moneybird token refresh refused", reason=str(exc))
        return None
    finally:
        await engine.dispose()
        await redis.aclose()
