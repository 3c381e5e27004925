"""The dashboard in the browser's language: Dutch for an `nl` browser, English for `en`, the header's
switch remembered over both, amounts and dates as each language writes them, `<html lang>` right."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis

from app.i18n import LANGUAGE_COOKIE
from app.settings import Settings
from tests.admin.conftest import BOOKED_ID, FAILED_ID, app_with_admin, sign_in
from tests.conftest import make_settings

DUTCH = {"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


async def test_the_overview_in_dutch(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = (await client.get("/admin", headers=DUTCH)).text
    assert '<html lang="nl">' in page
    for dutch in ("Overzicht", "Maandrapport", "Instellingen", "Uitloggen", "Recente bestellingen"):
        assert dutch in page
    assert "Geen mislukte bestellingen." not in page  # there is one
    assert f'data-order="{FAILED_ID}" data-state="failed"' in page
    assert ">mislukt</span>" in page
    assert ">geboekt</span>" in page
    assert "€\xa036,00" in page  # the booked order's total, as Dutch writes it
    assert "€\xa018,75" in page
    assert "Opnieuw proberen" in page
    # The refusal the ledger recorded in English, read back in Dutch; Moneybird's own words kept.
    assert "Moneybird weigerde de bestelling: tax_rate_id: is not active (xq7-marker)" in page
    for english in ("Recent orders", "Sign out", "Paid by customer", "36.00"):
        assert english not in page


async def test_the_overview_in_english(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    page = (await client.get("/admin", headers=ENGLISH)).text
    assert '<html lang="en">' in page
    assert "Recent orders" in page
    assert "€36.00" in page
    assert ">booked</span>" in page
    assert "Recente bestellingen" not in page


async def test_a_browser_asking_for_neither_gets_the_language_setting(
    sqlite_url: str, redis: ArqRedis
) -> None:
    settings = make_settings(database_url=sqlite_url, language="nl")
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            login = await client.get("/admin/login", headers={"Accept-Language": "fr-FR,de;q=0.8"})
    assert '<html lang="nl">' in login.text
    assert "Beheertoken" in login.text


async def test_the_order_page_and_report_in_dutch(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    order = (await client.get(f"/admin/orders/{BOOKED_ID}", headers=DUTCH)).text
    assert f"<title>Bestelling {BOOKED_ID} · woobird</title>" in order
    assert "2 november 2026 10:30" in order  # paid 09:30 UTC: Amsterdam time, Dutch month
    assert "Btw per btw-tarief in Moneybird" in order
    assert "€\xa06,25" in order
    # The ledger's events, recorded in English, read back in Dutch.
    assert "geboekt als 2026-0041, totaal 36.00" in order
    assert "verstuurd (Handmatig) als 2026-0041" in order
    report = (await client.get("/admin/report", params={"month": "2026-11"}, headers=DUTCH)).text
    assert "Maandrapport 2026-11" in report
    assert "Totalen van geboekte bestellingen" in report
    assert ">niet geboekt<" in report  # the failed order, as a difference
    assert "€\xa036,00" in report
    english = (await client.get("/admin/report", params={"month": "2026-11"}, headers=ENGLISH)).text
    assert "Totals of booked orders" in english
    assert "€36.00" in english
    assert ">not booked<" in english


async def test_refusals_are_shown_in_the_pages_language(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    wrong = await client.post("/admin/login", data={"token": "x" * 40}, headers=DUTCH)
    assert wrong.status_code == 401
    assert "dat is niet het beheertoken" in wrong.text
    await sign_in(client, settings)
    missing = await client.get("/admin/orders/999999", headers=DUTCH)
    assert missing.status_code == 404
    assert "bestelling 999999 staat niet in het logboek van woobird" in missing.text
    as_json = await client.get("/admin/orders/999999", headers={**DUTCH, "Accept": "application/json"})
    assert as_json.json() == {"detail": "order 999999 is not in the ledger"}  # machines read English


async def test_the_switch_is_remembered_over_the_browsers_language(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_in(client, settings)
    switched = await client.post("/admin/language", data={"language": "en", "back": "/admin/report"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/admin/report"
    assert client.cookies[LANGUAGE_COOKIE] == "en"
    page = (await client.get("/admin", headers=DUTCH)).text
    assert '<html lang="en">' in page
    assert "Recent orders" in page
    await client.post("/admin/language", data={"language": "nl", "back": "/admin"})
    page = (await client.get("/admin", headers=ENGLISH)).text
    assert '<html lang="nl">' in page
    assert "Recente bestellingen" in page


async def test_the_switch_is_on_every_page_and_goes_back_only_into_the_dashboard(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    login = (await client.get("/admin/login", headers=DUTCH)).text
    assert 'action="/admin/language"' in login
    assert 'name="back" value="/admin/login"' in login
    for back in ("https://evil.example/admin", "//evil.example", "/admin/../..//evil", "/elsewhere"):
        answer = await client.post("/admin/language", data={"language": "nl", "back": back})
        assert answer.headers["location"] == "/admin", back
    unknown = await client.post("/admin/language", data={"language": "xx", "back": "/admin"})
    assert unknown.status_code == 303
    assert LANGUAGE_COOKIE not in unknown.headers.get("set-cookie", "")


async def test_the_settings_page_in_dutch(sqlite_url: str, redis: ArqRedis) -> None:
    settings = make_settings(database_url=sqlite_url)
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://woobird.test") as client:
            await sign_in(client, settings)
            page = (await client.get("/admin/settings", headers=DUTCH)).text
    assert "Een omgevingsvariabele gaat altijd voor" in page
    assert "ingesteld (verborgen)" in page  # ADMIN_TOKEN
    assert "Mailserver voor e-mailmeldingen." in page  # SMTP_HOST's description
    assert "Mail server for alert e-mails." not in page
    assert ">omgeving</span>" in page or ">standaard</span>" in page
