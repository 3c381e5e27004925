"""The set-up wizard in Dutch for a Dutch browser: its steps, its refusals and how to fix them, in
Moneybird's and WooCommerce's own Dutch words."""

from __future__ import annotations

from app.i18n import LANGUAGE_COOKIE
from tests.setup.conftest import SHOP_URL, Wizard
from tests.setup.test_later_steps import _form, through_moneybird

DUTCH = {"Accept-Language": "nl-NL,nl;q=0.9"}


async def test_the_shop_step_and_its_refusal_in_dutch(wizard: Wizard) -> None:
    wizard.web.cookies.set(LANGUAGE_COOKIE, "nl", path="/admin")
    page = (await wizard.web.get("/admin/setup/shop")).text
    assert '<html lang="nl">' in page
    assert "1. Koppel je WooCommerce-winkel" in page
    assert "Adres van de winkel" in page
    assert "WooCommerce → Instellingen → Geavanceerd → REST API" in page
    for step in ("Producten", "Boekhouding", "Eerdere bestellingen", "Installeren"):
        assert f". {step}</a>" in page
    back = await wizard.approve_on_the_shop(
        await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL}), decision="deny"
    )
    assert back.status_code == 422
    assert "de toegang is geweigerd op de pagina van WooCommerce" in back.text
    assert "access was denied" not in back.text


async def test_a_missing_tax_rate_is_explained_in_dutch(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    administration = wizard.moneybird.administration()
    del administration.tax_rates[wizard.moneybird.tax_rate_id(9)]

    page = await wizard.web.get("/admin/setup/bookkeeping", headers=DUTCH)
    saved = await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text), headers=DUTCH)

    assert "4. Boekhouding" in page.text
    assert "Omzet-grootboekrekeningen" in page.text
    assert "Huisstijl" in page.text
    assert "tarief verlegde btw (0 %)" in page.text
    assert "(9 %) heeft geen btw-tarief in Moneybird" in page.text
    assert "Ga in Moneybird naar Instellingen → Btw-tarieven → Nieuw btw-tarief" in page.text
    assert saved.status_code == 422
    assert "heeft geen btw-tarief in Moneybird" in saved.text


async def test_the_moneybird_and_history_steps_in_dutch(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    moneybird = (await wizard.web.get("/admin/setup/moneybird", headers=DUTCH)).text
    assert "3. Koppel Moneybird" in moneybird
    assert "facturen aanmaken, versturen en hun betaling registreren" in moneybird
    assert "Welke administratie?" in moneybird
    history = (await wizard.web.get("/admin/setup/history", headers=DUTCH)).text
    assert "Vanaf wanneer moet woobird bestellingen boeken?" in history
    assert "Boek vanaf nu" in history
    future = await wizard.post("/admin/setup/history", {"action": "preview", "since": "2999-01-01"})
    assert "lies in the future" in future.text  # the English browser of the fixture
    dutch = await wizard.web.post(
        "/admin/setup/history",
        data={"csrf": await wizard.csrf(), "action": "preview", "since": "2999-01-01"},
        headers=DUTCH,
    )
    assert dutch.status_code == 400
    assert "de datum vanaf wanneer te boeken ligt in de toekomst" in dutch.text


async def test_the_settings_change_log_names_who_in_dutch(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    dutch = (await wizard.web.get("/admin/settings", headers=DUTCH)).text
    english = (await wizard.web.get("/admin/settings")).text
    assert "installatiewizard (beheersessie, " in dutch
    assert ">ingesteld<" in dutch
    assert "set-up wizard (admin session, " in english
