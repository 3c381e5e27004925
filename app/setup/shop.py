"""Step 1: the shop's address, WooCommerce's app authorization, and the keys checked at once.

The authorization (`/wc-auth/v1/authorize`) ends with WooCommerce POSTing a key pair to woobird's
callback from the shop's server, with the `user_id` woobird put in the link. That id is a random,
single-use token that woobird remembers for 15 minutes, bound to the admin session that started
it: a POST with an id woobird did not hand out, one already used, or one too old stores nothing.
Anything but a 200 makes WooCommerce delete the key again, which is what an unsolicited POST deserves.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpx
from arq.connections import ArqRedis

from app import clients
from app.address_guard import AllowedAddresses, allowed_for, guarded_transport, refused
from app.checks import LOCAL_HOSTS
from app.clients import shop_client
from app.constants import SETUP_SHOP_PENDING_PREFIX, SETUP_SHOP_RESULT_PREFIX
from app.settings import Settings
from app.woocommerce.errors import WooCommerceAuthError, WooCommerceError, WooCommerceNotFound

APP_NAME: Final = "woobird"
SCOPE: Final = "read_write"
AUTHORIZATION_TTL_SECONDS: Final = 15 * 60
CALLBACK_PATH: Final = "/setup/woocommerce/callback"
RETURN_PATH: Final = "/admin/setup/shop/return"
CALLBACK_MAX_BYTES: Final = 4096
_PENDING: Final = SETUP_SHOP_PENDING_PREFIX
_RESULT: Final = SETUP_SHOP_RESULT_PREFIX
PROBE_TIMEOUT_SECONDS: Final = 10.0
# The REST index of a WordPress with WooCommerce lists every route: a few MiB on a real shop.
PROBE_MAX_BYTES: Final = 16 * 1024 * 1024
PROBE_MAX_REDIRECTS: Final = 3
# The wizard's progress key holding a mark of the webhook secret given to the shop connected before.
RETIRED_SECRET: Final = "retired_webhook_secret"


class CallbackRefused(Exception):
    """The POST is not the answer to an authorization woobird started; nothing is stored."""


@dataclass(frozen=True)
class GrantedKeys:
    shop_url: str
    consumer_key: str
    consumer_secret: str
    session: str
    connection_id: int = 1  # the connection whose wizard started the authorization


def session_binding(session: str | None) -> str:
    """What ties an authorization to the admin session that started it (never the cookie itself)."""
    return hashlib.sha256(f"woobird-setup:{session or 'header'}".encode()).hexdigest()[:32]


MAX_URL_LENGTH: Final = 2048


def normalise_shop_url(text: str) -> str:
    url = text.strip()[:MAX_URL_LENGTH].rstrip("/")
    if url and "://" not in url:
        url = "https://" + url
    return url


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def allowed_addresses(settings: Settings) -> AllowedAddresses:
    """The non-public addresses the wizard may reach anyway: none, but for the sandbox and test rig."""
    return allowed_for(settings)


def not_a_shop(url: str) -> str:
    # Deliberately the same sentence for every answer that is not a WooCommerce: what an arbitrary
    # server says (its status, redirect, error or fields) is not repeated to anyone.
    return (
        f"{url} is not a WooCommerce shop: no WordPress with WooCommerce answers there. Enter the address "
        "the shop's own pages open at, e.g. https://shop.example.nl."
    )


def refused_address(host: str) -> str:
    return (
        f"{host} is not on the public internet (it is this machine, or a private, link-local or reserved "
        "network), and the wizard connects only to shops on the internet. For a shop on this machine or "
        "your LAN, put WOOCOMMERCE_URL and its keys in the environment instead (see “A shop on plain "
        "HTTP” in the README)."
    )


async def _read(client: httpx.AsyncClient, url: str, **params: str) -> tuple[httpx.Response, Any]:
    """One GET, its body read up to PROBE_MAX_BYTES (an arbitrary server may send without end) and
    parsed as JSON when it is; the response's URL is where the redirects ended."""
    async with client.stream("GET", url, params=params) as response:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > PROBE_MAX_BYTES:
                return response, None
    try:
        return response, json.loads(body)
    except ValueError:
        return response, None


def _namespaces(response: httpx.Response, body: Any) -> list[str]:
    if response.status_code != 200 or not isinstance(body, dict):
        return []
    found = body.get("namespaces")
    return [str(name) for name in found] if isinstance(found, list) else []


async def probe_shop(url: str, *, allowed: AllowedAddresses) -> list[str]:
    """What stands between this address and a working connection, in words; empty when nothing.

    Reached through the address guard: a name that is (or resolves to, now or after a redirect) an
    address outside the public internet is refused before any connection is made."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [f"{url!r} is not a web address: enter the shop's address, e.g. https://shop.example.nl"]
    if parts.scheme != "https" and not _is_loopback(url):
        return [
            f"{url} uses plain HTTP. WooCommerce hands out API keys only over HTTPS: use the shop's "
            "https:// address (and give the shop a certificate first, e.g. Let's Encrypt at your host)."
        ]
    async with httpx.AsyncClient(
        transport=clients.transports.shop or guarded_transport(allowed),
        timeout=PROBE_TIMEOUT_SECONDS,
        follow_redirects=True,
        max_redirects=PROBE_MAX_REDIRECTS,
    ) as client:
        try:
            index, body = await _read(client, url + "/wp-json/")
            if index.status_code == 404:
                plain, plain_body = await _read(client, url + "/", rest_route="/")
                if {"wc/v3", "wp/v2"} & set(_namespaces(plain, plain_body)):
                    return [
                        "the shop's REST API is only reachable without pretty links: in wp-admin go to "
                        "Settings → Permalinks, choose any setting but “Plain” (e.g. “Post name”), save, "
                        "and try again."
                    ]
                return [not_a_shop(url)]
        except httpx.HTTPError as exc:
            refusal = refused(exc)
            if refusal is not None and refusal.host.lower().strip("[]") == parts.hostname:
                return [refused_address(parts.hostname)]
            if refusal is not None:  # a redirect into a private network: where to, is not repeated
                return [not_a_shop(url)]
            if isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
                return [f"could not reach {parts.hostname}: check the address and that the shop is online."]
            return [not_a_shop(url)]
    namespaces = _namespaces(index, body)
    if "wc/v3" not in namespaces:
        if "wp/v2" in namespaces:
            return [
                "WordPress answers, but WooCommerce is not active there (no wc/v3 API): activate "
                "WooCommerce under Plugins, or enter the address of the WordPress that runs the shop."
            ]
        return [not_a_shop(url)]
    landed = str(index.url).split("/wp-json", 1)[0].rstrip("/")
    if landed != url:  # a WooCommerce, at a public address, is where the shop's address leads
        return [f"{url} sends visitors to {landed}: enter that address instead."]
    return []


def authorize_url(shop_url: str, *, state: str, return_url: str, callback_url: str) -> str:
    query = urlencode(
        {
            "app_name": APP_NAME,
            "scope": SCOPE,
            "user_id": state,
            "return_url": return_url,
            "callback_url": callback_url,
        }
    )
    return f"{shop_url}/wc-auth/v1/authorize?{query}"


async def begin_authorization(
    redis: ArqRedis, *, shop_url: str, session: str | None, connection_id: int = 1
) -> str:
    """Remember a new authorization (single use, 15 minutes) and return its state token; the keys
    it brings are stored for `connection_id` (the connection whose wizard started it)."""
    state = secrets.token_urlsafe(24)
    record = {
        "shop_url": shop_url,
        "session": session_binding(session),
        "created": time.time(),
        "connection": connection_id,
    }
    await redis.set(_PENDING + state, json.dumps(record), ex=AUTHORIZATION_TTL_SECONDS)
    return state


def _field(body: dict[str, Any], name: str, *, prefix: str = "", limit: int = 128) -> str:
    value = body.get(name)
    text = str(value) if isinstance(value, str | int) else ""
    if not text or len(text) > limit or not text.startswith(prefix) or not text.isprintable():
        raise CallbackRefused(f"the callback's {name} is missing or malformed")
    return text


async def accept_callback(redis: ArqRedis, body: bytes) -> GrantedKeys:
    """The keys WooCommerce POSTed, if they answer an authorization woobird started (consumed now).

    Everything is checked before the authorization is taken: a malformed or read-only key leaves it
    for the shop's real answer, and only a complete, read/write one uses it up."""
    try:
        document = json.loads(body)
    except ValueError:
        raise CallbackRefused("the callback body is not JSON") from None
    if not isinstance(document, dict):
        raise CallbackRefused("the callback body is not a JSON object")
    state = _field(document, "user_id", limit=64)
    consumer_key = _field(document, "consumer_key", prefix="ck_")
    consumer_secret = _field(document, "consumer_secret", prefix="cs_")
    if _field(document, "key_permissions", limit=16) != SCOPE:
        pending_raw = await redis.get(_PENDING + state)
        if pending_raw is not None:  # said on the return page; the authorization stays open
            await _remember(redis, state, json.loads(pending_raw), outcome="the key is not read/write")
        raise CallbackRefused("the key is not read/write")
    # GETDEL: the first complete POST with this state takes it; a replay finds nothing.
    raw = await redis.getdel(_PENDING + state)
    if raw is None:
        raise CallbackRefused("no authorization woobird started has this user_id (unknown, used or expired)")
    pending = json.loads(raw)
    keys = GrantedKeys(
        shop_url=str(pending["shop_url"]),
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        session=str(pending["session"]),
        connection_id=int(pending.get("connection", 1)),
    )
    await _remember(redis, state, pending, outcome="granted")
    return keys


async def _remember(redis: ArqRedis, state: str, pending: dict[str, Any], *, outcome: str) -> None:
    record = {"session": pending["session"], "outcome": outcome, "shop_url": pending["shop_url"]}
    await redis.set(_RESULT + state, json.dumps(record), ex=AUTHORIZATION_TTL_SECONDS)


async def authorization_outcome(redis: ArqRedis, *, state: str, session: str | None) -> str | None:
    """What became of this session's authorization: "granted", a refusal, or None (no callback)."""
    raw = await redis.get(_RESULT + state[:64])
    if raw is None:
        return None
    record = json.loads(raw)
    if not secrets.compare_digest(str(record["session"]), session_binding(session)):
        return None  # another session's authorization: not this page's business
    return str(record["outcome"])


async def forget_authorization(redis: ArqRedis, *, state: str, session: str | None) -> None:
    """Drop this session's pending authorization (the admin denied it); another session's stays."""
    raw = await redis.get(_PENDING + state[:64])
    if raw is None:
        return
    owner = str(json.loads(raw)["session"])
    if secrets.compare_digest(owner, session_binding(session)):
        await redis.delete(_PENDING + state[:64])


def secret_mark(secret: str) -> str:
    """What identifies a webhook secret in the wizard's progress without revealing it (a digest of 32+
    random characters cannot be turned back)."""
    return hashlib.sha256(f"woobird-retired-webhook-secret:{secret}".encode()).hexdigest()[:32]


async def verify_keys(settings: Settings, *, allowed: AllowedAddresses) -> list[str]:
    """Ask the shop with these keys; the problems in words (empty: the shop accepts them)."""
    try:
        async with shop_client(settings, allowed=allowed) as shop:
            await shop.get_json("/system_status")
            await shop.list_webhooks()
    except WooCommerceAuthError:
        return [
            "the shop refused the key: copy both the ck_… key and the cs_… secret again (the secret is "
            "shown only once), and make sure the key has Read/Write permission — or use Connect, "
            "which makes a key for you."
        ]
    except WooCommerceNotFound:
        return [
            "the shop has no REST API at /wp-json/wc/v3: in wp-admin go to Settings → Permalinks, "
            "choose “Post name” and save."
        ]
    except WooCommerceError as exc:
        refusal = refused(exc)
        if refusal is not None:
            return [refused_address(refusal.host)]
        return [f"could not check the key with the shop: {exc}"]
    return []


__all__ = ["CALLBACK_MAX_BYTES", "CALLBACK_PATH", "RETURN_PATH"]
