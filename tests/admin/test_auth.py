"""Nothing on /admin without the admin token: not without it, not with a wrong one, not via the URL."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
import pytest
from arq.connections import ArqRedis

from app.admin.auth import COOKIE_NAME, SESSION_SECONDS, session_cookie, valid_session
from app.logs import ScrubRecords
from app.settings import Settings
from app.tokens import new_token
from tests.admin.conftest import BOOKED_ID, FAILED_ID, app_with_admin, logout_csrf, sign_in
from tests.conftest import ADMIN_TOKEN, make_settings

PAGES = ["/admin", f"/admin/orders/{FAILED_ID}", f"/admin/orders/{BOOKED_ID}", "/admin/report?month=2026-11"]
SECRETS = ("2026-0041", "xq7-marker", "18.75")


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    # Authentication does not depend on the database: SQLite alone keeps these tests quick.
    return make_settings(database_url=sqlite_url)


def _shows_nothing(response: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in response.text, f"{secret!r} leaked on a {response.status_code}"


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_no_token_is_401_with_no_order_data(client: httpx.AsyncClient, path: str, accept: str) -> None:
    response = await client.get(path, headers={"accept": accept})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    _shows_nothing(response)
    if accept == "text/html":
        assert 'name="token"' in response.text  # the login form, so a browser can sign in


async def test_retry_without_token_is_401_and_changes_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": "x"})
    assert response.status_code == 401
    signed_in = await client.get("/admin", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert f'data-order="{FAILED_ID}" data-state="failed"' in signed_in.text


async def test_wrong_token_in_form_is_401_and_sets_no_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/login", data={"token": ADMIN_TOKEN[:-1] + "x"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "not the admin token" in response.text
    assert (await client.get("/admin")).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        ADMIN_TOKEN,
        f"Bearer {ADMIN_TOKEN[:20]}",
    ],
)
async def test_wrong_authorization_header_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/admin", headers={"authorization": header})
    assert response.status_code == 401
    _shows_nothing(response)


async def test_right_bearer_token_shows_the_dashboard(client: httpx.AsyncClient, settings: Settings) -> None:
    token = settings.admin_token.get_secret_value()
    response = await client.get(
        "/admin", headers={"authorization": f"Bearer {token}", "accept": "application/json"}
    )
    assert response.status_code == 200
    numbers = {row["order_number"] for row in response.json()["recent"]}
    assert numbers == {str(BOOKED_ID), str(FAILED_ID)}


@pytest.mark.parametrize("path", ["/admin", "/admin/login", f"/admin/orders/{FAILED_ID}", "/admin/report"])
@pytest.mark.parametrize("name", ["token", "TOKEN", "admin_token"])
async def test_token_in_query_string_is_refused_even_when_right(
    client: httpx.AsyncClient, settings: Settings, path: str, name: str
) -> None:
    token = settings.admin_token.get_secret_value()
    response = await client.get(path, params={name: token})
    assert response.status_code == 400
    assert "never put the admin token in a URL" in response.text
    assert "set-cookie" not in response.headers
    _shows_nothing(response)


async def test_token_in_query_string_is_refused_even_with_a_valid_session(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_in(client, settings)
    response = await client.get("/admin", params={"token": "anything"})
    assert response.status_code == 400
    _shows_nothing(response)


def test_access_log_never_shows_a_query_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/admin?token={ADMIN_TOKEN}&x=1", "1.1", 400),
        None,
    )
    assert ScrubRecords().filter(record)
    assert ADMIN_TOKEN not in record.getMessage()
    assert '"GET /admin HTTP/1.1" 400' in record.getMessage()


def test_access_log_shows_the_path_only_never_moneybirds_oauth_code() -> None:
    code = "mb-oauth-code-3f9a7c2e"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/admin/setup/moneybird/callback?code={code}&state=s7", "1.1", 303),
        None,
    )
    assert ScrubRecords().filter(record)
    assert code not in record.getMessage()
    assert "state=s7" not in record.getMessage()
    assert '"GET /admin/setup/moneybird/callback HTTP/1.1" 303' in record.getMessage()


def _forgeries(settings: Settings) -> dict[str, str]:
    now = int(time.time())
    other = make_settings(database_url=settings.database_url, admin_token=new_token())
    valid = session_cookie(settings, issued=now)
    return {
        "the token itself": settings.admin_token.get_secret_value(),
        "signed with another token": session_cookie(other, issued=now),
        "expired": session_cookie(settings, issued=now - SESSION_SECONDS - 5),
        "issued in the future": session_cookie(settings, issued=now + 3600),
        "time changed, signature kept": f"{now + 1}.{valid.partition('.')[2]}",
        "signature truncated": valid[:-1],
        "garbage": "x.y",
        "empty": "",
    }


@pytest.mark.parametrize(
    "forgery",
    [
        "the token itself",
        "signed with another token",
        "expired",
        "issued in the future",
        "time changed, signature kept",
        "signature truncated",
        "garbage",
        "empty",
    ],
)
async def test_forged_cookie_is_401(client: httpx.AsyncClient, settings: Settings, forgery: str) -> None:
    client.cookies.set(COOKIE_NAME, _forgeries(settings)[forgery], domain="woobird.test", path="/admin")
    response = await client.get("/admin")
    assert response.status_code == 401
    _shows_nothing(response)


async def test_login_sets_a_signed_httponly_strict_cookie(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = settings.admin_token.get_secret_value()
    response = await client.post("/admin/login", data={"token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert token not in cookie
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http in this test: a Secure cookie would never come back
    page = await client.get("/admin")
    assert page.status_code == 200
    assert "2026-0041" in page.text
    assert page.headers["cache-control"] == "no-store"


async def _login_cookie_attributes(settings: Settings, *, headers: dict[str, str]) -> set[str]:
    """Sign in over plain http with these headers; the session cookie's attributes."""
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as web:
            response = await web.post(
                "/admin/login", data={"token": settings.admin_token.get_secret_value()}, headers=headers
            )
    assert response.status_code == 303
    return {part.strip().lower() for part in response.headers["set-cookie"].split(";")}


async def test_cookie_is_secure_behind_the_trusted_proxy_over_https(
    settings: Settings, redis: ArqRedis
) -> None:
    behind_heroku = settings.model_copy(update={"trusted_proxy": "heroku"})

    attributes = await _login_cookie_attributes(behind_heroku, headers={"x-forwarded-proto": "https"})

    assert "secure" in attributes


async def test_a_client_saying_https_itself_does_not_make_the_cookie_secure(
    settings: Settings, redis: ArqRedis
) -> None:
    no_proxy = settings.model_copy(update={"trusted_proxy": "none"})

    attributes = await _login_cookie_attributes(no_proxy, headers={"x-forwarded-proto": "https"})

    assert "secure" not in attributes  # plain http, no proxy named: the client's word does not count


async def test_logout_ends_the_session(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = await client.get("/admin")
    assert page.status_code == 200
    response = await client.post("/admin/logout", data={"csrf": logout_csrf(page.text)})
    assert response.status_code == 303
    assert (await client.get("/admin")).status_code == 401


async def test_a_changed_admin_token_ends_old_sessions(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    old_cookie = client.cookies.get(COOKIE_NAME)
    assert old_cookie
    rotated = make_settings(database_url=settings.database_url, admin_token=new_token())
    assert valid_session(settings, old_cookie)
    assert not valid_session(rotated, old_cookie)


async def test_retry_with_a_session_but_without_csrf_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_in(client, settings)
    for csrf in ("", "0" * 64):
        response = await client.post(f"/admin/orders/{FAILED_ID}/retry", data={"csrf": csrf})
        assert response.status_code == 403
    page = await client.get(f"/admin/orders/{FAILED_ID}")
    assert '<span class="pill failed">failed</span>' in page.text


def test_the_cookie_is_not_keyed_with_the_token_itself(settings: Settings) -> None:
    issued = int(time.time())
    cookie = session_cookie(settings, issued=issued)
    raw_key = settings.admin_token.get_secret_value().encode()
    keyed_with_token = hmac.new(
        raw_key, f"woobird-admin-session:{issued}".encode(), hashlib.sha256
    ).hexdigest()
    assert keyed_with_token not in cookie
    assert valid_session(settings, cookie)
