"""Step 3: a pasted token, or the OAuth authorization-code flow against the fake Moneybird's pages
(state and PKCE verified, approval denied, replayed answers), the administration, and the refresh
that keeps an OAuth connection working when Moneybird stops taking its access token."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from app import clients
from app.moneybird.client import MoneybirdClient
from app.setup.moneybird_connect import token_refresher
from tests.setup.conftest import ADMIN_TOKEN, WOOBIRD_URL, Wizard, fresh_settings, leaving_for, query_of


async def test_a_refused_token_is_explained_and_not_stored(wizard: Wizard) -> None:
    answer = await wizard.post("/admin/setup/moneybird/token", {"token": "revoked-token-4242"})

    assert answer.status_code == 422
    assert "Moneybird refused the token" in answer.text
    assert "External and AI integrations" in answer.text
    assert await wizard.stored_besides_address() == {}


async def test_a_pasted_token_lists_the_administrations_to_choose_from(wizard: Wizard) -> None:
    pasted = await wizard.paste_token()
    page = await wizard.web.get("/admin/setup/moneybird")

    assert pasted.status_code == 303
    assert wizard.moneybird.administration_id in page.text
    assert wizard.moneybird.token not in page.text  # shown masked only
    chosen = await wizard.choose_administration()
    assert chosen.status_code == 303
    stored = await wizard.stored()
    assert stored["MONEYBIRD_API_TOKEN"] == wizard.moneybird.token
    assert stored["MONEYBIRD_ADMINISTRATION_ID"] == wizard.moneybird.administration_id


async def test_an_administration_the_token_cannot_reach_is_refused(wizard: Wizard) -> None:
    await wizard.paste_token()

    answer = await wizard.post("/admin/setup/moneybird/administration", {"administration_id": "999"})

    assert answer.status_code == 422
    assert "MONEYBIRD_ADMINISTRATION_ID" not in await wizard.stored()


@pytest.fixture
async def oauth(wizard: Wizard) -> Wizard:
    """The same wizard, with an OAuth app registered at the fake Moneybird and named in the env."""
    app_ = wizard.moneybird.oauth
    settings = fresh_settings(
        wizard.base.database_url,
        moneybird_client_id=app_.client_id,
        moneybird_client_secret=app_.client_secret,
    )
    wizard.state.live.base = settings
    wizard.base = settings
    await wizard.state.refresh_settings(force=True)  # the stored PUBLIC_URL over the new environment
    return wizard


async def _consent(
    wizard: Wizard, *, decision: str, started: httpx.Response | None = None
) -> tuple[httpx.Response, str]:
    started = started or await wizard.post("/admin/setup/moneybird/connect")
    authorize = leaving_for(started)
    params = query_of(authorize)
    page = await clients.transports.moneybird.handle_async_request(httpx.Request("GET", authorize))  # type: ignore[union-attr]
    await page.aread()
    assert page.status_code == 200
    assert "sales_invoices" in page.text
    assert "settings" in page.text
    fields = dict(re.findall(r"name='([a-z_]+)' value='([^']*)'", page.text))
    decided = await clients.transports.moneybird.handle_async_request(  # type: ignore[union-attr]
        httpx.Request(
            "POST",
            "https://moneybird.sandbox.test/oauth/authorize",
            data={**fields, "decision": decision},
        )
    )
    back = decided.headers["location"]
    assert back.startswith(WOOBIRD_URL + "/admin/setup/moneybird/callback?")
    return await wizard.web.get(back.removeprefix(WOOBIRD_URL)), params["state"]


async def test_oauth_asks_for_the_scopes_by_name_with_state_and_pkce_and_stores_both_tokens(
    oauth: Wizard,
) -> None:
    started = await oauth.post("/admin/setup/moneybird/connect")
    params = query_of(leaving_for(started))
    assert params["scope"] == "sales_invoices settings"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32
    assert params["redirect_uri"] == WOOBIRD_URL + "/admin/setup/moneybird/callback"

    back, _ = await _consent(oauth, decision="allow")

    assert back.status_code == 303, back.text
    stored = await oauth.stored()
    assert stored["MONEYBIRD_API_TOKEN"] in oauth.moneybird.oauth.access_tokens
    assert (
        oauth.moneybird.oauth.refresh_tokens[stored["MONEYBIRD_REFRESH_TOKEN"]]
        == stored["MONEYBIRD_API_TOKEN"]
    )
    page = await oauth.web.get("/admin/setup/moneybird")
    assert oauth.moneybird.administration_id in page.text  # the new token lists the administration


async def test_a_denied_approval_says_how_to_go_on(oauth: Wizard) -> None:
    back, _ = await _consent(oauth, decision="deny")

    assert back.status_code == 422
    assert "access was not granted" in back.text
    assert "paste a personal API token" in back.text
    assert await oauth.stored_besides_address() == {}


async def test_a_forged_or_replayed_state_is_refused(oauth: Wizard) -> None:
    forged = await oauth.web.get("/admin/setup/moneybird/callback", params={"code": "x", "state": "forged-1"})
    assert forged.status_code == 422
    assert "does not belong to a connection started here" in forged.text

    back, state = await _consent(oauth, decision="allow")
    assert back.status_code == 303
    tokens = await oauth.stored()
    replay = await oauth.web.get("/admin/setup/moneybird/callback", params={"code": "again", "state": state})
    assert replay.status_code == 422
    assert await oauth.stored() == tokens
    assert oauth.moneybird.oauth.token_requests == ["authorization_code"]


async def test_without_an_oauth_app_the_page_says_how_to_register_one(wizard: Wizard) -> None:
    page = (await wizard.web.get("/admin/setup/moneybird")).text

    assert "Connect with Moneybird" not in page
    assert "MONEYBIRD_CLIENT_ID" in page
    assert WOOBIRD_URL + "/admin/setup/moneybird/callback" in page
    assert (await wizard.post("/admin/setup/moneybird/connect")).status_code == 409


async def test_a_refused_access_token_is_refreshed_once_and_stored_for_every_process(oauth: Wizard) -> None:
    await _consent(oauth, decision="allow")
    await oauth.choose_administration()
    await oauth.state.refresh_settings(force=True)
    settings = oauth.state.settings
    old_access = settings.moneybird_api_token.get_secret_value()
    oauth.moneybird.oauth.revoke_access(old_access)  # as if it expired

    refresher = token_refresher(settings)
    assert refresher is not None
    async with MoneybirdClient.from_settings(
        settings, transport=clients.transports.moneybird, on_unauthorized=refresher
    ) as client:
        administrations = await client.list_administrations()

    assert [a.id for a in administrations] == [oauth.moneybird.administration_id]
    stored = await oauth.stored()
    assert stored["MONEYBIRD_API_TOKEN"] != old_access
    assert stored["MONEYBIRD_API_TOKEN"] in oauth.moneybird.oauth.access_tokens
    assert oauth.moneybird.oauth.token_requests == ["authorization_code", "refresh_token"]


async def test_an_answer_brought_back_in_another_session_is_refused(oauth: Wizard) -> None:
    started = await oauth.post("/admin/setup/moneybird/connect")
    state = query_of(leaving_for(started))["state"]
    await asyncio.sleep(1.05)  # a session is its sign-in second, signed: the other one signs in later
    async with httpx.AsyncClient(transport=oauth.transport, base_url=WOOBIRD_URL) as other:
        assert (await other.post("/admin/login", data={"token": ADMIN_TOKEN})).status_code == 303
        answer = await other.get("/admin/setup/moneybird/callback", params={"code": "stolen", "state": state})

    assert answer.status_code == 422
    assert "started in another session" in answer.text
    assert await oauth.stored_besides_address() == {}
    assert oauth.moneybird.oauth.token_requests == []


@pytest.mark.parametrize("pasted", ["x" * 5000, "two words", "line\nbreak"])
async def test_something_that_is_no_token_is_refused_before_moneybird_is_asked(
    wizard: Wizard, pasted: str
) -> None:
    wizard.moneybird.reset_requests()

    answer = await wizard.post("/admin/setup/moneybird/token", {"token": pasted})

    assert answer.status_code == 422
    assert "that is not a Moneybird API token" in answer.text
    assert wizard.moneybird.calls() == 0
    assert await wizard.stored_besides_address() == {}


async def test_another_sessions_answer_leaves_the_owners_authorization_usable(oauth: Wizard) -> None:
    started = await oauth.post("/admin/setup/moneybird/connect")
    state = query_of(leaving_for(started))["state"]
    await asyncio.sleep(1.05)  # a session is its sign-in second, signed: the other one signs in later
    async with httpx.AsyncClient(transport=oauth.transport, base_url=WOOBIRD_URL) as other:
        assert (await other.post("/admin/login", data={"token": ADMIN_TOKEN})).status_code == 303
        spent = await other.get(
            "/admin/setup/moneybird/callback", params={"error": "access_denied", "state": state}
        )
    assert spent.status_code == 422

    back, _ = await _consent(oauth, decision="allow", started=started)

    assert back.status_code == 303, back.text
    assert "MONEYBIRD_API_TOKEN" in await oauth.stored()


async def test_an_answer_without_code_or_error_leaves_the_authorization_usable(oauth: Wizard) -> None:
    started = await oauth.post("/admin/setup/moneybird/connect")
    state = query_of(leaving_for(started))["state"]
    incomplete = await oauth.web.get("/admin/setup/moneybird/callback", params={"state": state})
    assert incomplete.status_code == 422

    back, _ = await _consent(oauth, decision="allow", started=started)

    assert back.status_code == 303, back.text
    assert oauth.moneybird.oauth.token_requests == ["authorization_code"]


async def test_moneybirds_redirect_uri_is_the_confirmed_address_never_the_host_header(oauth: Wizard) -> None:
    started = await oauth.post("/admin/setup/moneybird/connect", headers={"host": "evil.example"})

    redirect_uri = query_of(leaving_for(started))["redirect_uri"]

    assert redirect_uri == WOOBIRD_URL + "/admin/setup/moneybird/callback"
