"""The message catalogs and the reader's formats: every message has its Dutch, the catalog is current
with the code, no template shows text outside it, and amounts and dates read as each language writes them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment
from jinja2.lexer import TOKEN_NAME, TOKEN_STRING, Token

from app.delivery_lag import seconds_text
from app.i18n import (
    LANGUAGES,
    SOURCE_LANGUAGE,
    WORDS,
    Message,
    catalog,
    install,
    money_text,
    negotiate,
    ntranslate,
    recorded,
    shown,
    translate,
    when,
    word,
)
from app.i18n_catalog import extract, read_catalog
from app.schema import FindingKind, OrderState, OrderStep
from app.settings import ConfigurationError
from tests.conftest import make_settings

APP = Path(__file__).resolve().parent.parent / "app"
TEMPLATES = sorted(APP.glob("**/templates/*.html"))
TRANSLATED = [language for language in LANGUAGES if language != SOURCE_LANGUAGE]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# Names that read the same in every language: the product, the services, code and settings.
SAME_IN_EVERY_LANGUAGE = {"woobird", "Moneybird", "WooCommerce", "ms", "EUR"}


def _ids(found: object) -> set[str | tuple[str, ...]]:
    return {message.id for message in found if message.id}  # type: ignore[attr-defined]


def _text(value: object) -> str:
    return value if isinstance(value, str) else " ".join(map(str, value))  # type: ignore[call-overload]


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_has_its_translation(language: str) -> None:
    untranslated = [
        message.id
        for message in read_catalog(language)
        if message.id
        and (
            message.fuzzy
            or not (message.string if isinstance(message.string, str) else all(message.string or ()))
        )
    ]
    assert untranslated == [], f"{language}: translate these in app/locale/{language}/LC_MESSAGES/messages.po"


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_catalog_is_current_with_the_code(language: str) -> None:
    in_code, in_catalog = _ids(extract()), _ids(read_catalog(language))
    assert sorted(map(_text, in_code - in_catalog)) == [], "new messages: run `make messages`"
    assert sorted(map(_text, in_catalog - in_code)) == [], "messages the code no longer has: `make messages`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_parameter(language: str) -> None:
    for message in read_catalog(language):
        if not message.id:
            continue
        wanted = set(_PLACEHOLDER.findall(_text(message.id)))
        strings = [message.string] if isinstance(message.string, str) else list(message.string or ())
        for string in strings:
            # A singular may leave the count out ("the last delivery"); no form may invent one.
            assert set(_PLACEHOLDER.findall(string)) <= wanted, (message.id, string)
            if isinstance(message.id, str):
                assert set(_PLACEHOLDER.findall(string)) == wanted, (message.id, string)


class _ShownText(HTMLParser):
    """The text a person sees in a template's HTML (what Jinja leaves of it), attributes read aloud too."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"style", "code", "script"}:
            self._hidden += 1
        for name, value in attrs:
            if name in {"aria-label", "title", "placeholder", "alt"} and value and "://" not in value:
                self.handle_data(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "code", "script"}:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words += [
                w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", data) if w not in SAME_IN_EVERY_LANGUAGE
            ]


def _outside_the_catalog(source: str) -> list[str]:
    without_trans = re.sub(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", " ", source, flags=re.S)
    html = re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", " ", without_trans, flags=re.S)
    parser = _ShownText()
    parser.feed(html)
    return parser.words


def _prose_strings(source: str) -> list[str]:
    """String literals in template expressions that read as words for people, not inside `_()`."""
    tokens: list[Token] = list(Environment(extensions=["jinja2.ext.i18n"]).lex(source))  # type: ignore[arg-type]
    found = []
    for index, (_line, kind, value) in enumerate(tokens):
        if kind != TOKEN_STRING or " " not in value or not re.search(r"[A-Za-z]{2}", value):
            continue
        call = [t for t in tokens[max(0, index - 3) : index] if t[1] not in {"whitespace"}]
        if not any(t[1] == TOKEN_NAME and t[2] in {"_", "gettext", "ngettext"} for t in call):
            found.append(value[1:-1])
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_templates_show_no_text_outside_the_catalog(template: Path) -> None:
    source = template.read_text()
    assert _outside_the_catalog(source) == [], "wrap it in {% trans %} or _()"
    assert _prose_strings(source) == [], "wrap it in _()"


def test_the_template_check_finds_bare_text() -> None:
    assert _outside_the_catalog('<p>Book them</p><button aria-label="Retry it">{{ _("x") }}</button>') == [
        "Book",
        "them",
        "Retry",
        "it",
    ]
    assert _outside_the_catalog("<p>{% trans %}Book them{% endtrans %} <code>woobird run</code></p>") == []
    assert _prose_strings('{{ x if y else "not yet" }}{{ _("fine words") }}') == ["not yet"]


def test_every_state_kind_and_step_people_read_has_its_words() -> None:
    for key in [*OrderState, *FindingKind, *OrderStep]:
        assert key.value in WORDS, key
        for language in TRANSLATED:
            assert word(key.value, language) != WORDS[key.value] or key.value in {"contact"}, key


def test_amounts_in_each_readers_convention() -> None:
    assert money_text(Decimal("1234.56"), "nl") == "€\xa01.234,56"
    assert money_text(Decimal("1234.56"), "en") == "€1,234.56"
    assert money_text(Decimal("-5"), "nl") == "€\xa0-5,00"
    assert money_text(Decimal("0.5"), "en", currency="USD") == "$0.50"


def test_seconds_in_each_readers_convention() -> None:
    assert (seconds_text(3.14, "nl"), seconds_text(3.14, "en"), seconds_text(3.14)) == (
        "3,1 s",
        "3.1 s",
        "3.1 s",
    )
    assert seconds_text(95, "nl") == "95 s"


def test_dates_in_each_readers_convention() -> None:
    assert when(date(2026, 12, 7), "nl") == "7 december 2026"
    assert when(date(2026, 12, 7), "en") == "December 7, 2026"
    # A moment in the shop's time: 23:30 UTC on 6 December is 00:30 on the 7th in Amsterdam.
    assert when(datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "nl") == "7 december 2026 00:30"
    assert when(None, "en") == "—"


def test_messages_translate_with_their_parameters() -> None:
    assert translate("nl", "Order %(order)s", order=1041) == "Bestelling 1041"
    assert translate("en", "Order %(order)s", order=1041) == "Order 1041"
    assert ntranslate("nl", "%(count)s attempt", "%(count)s attempts", 1) == "1 poging"
    assert ntranslate("nl", "%(count)s attempt", "%(count)s attempts", 2) == "2 pogingen"
    nested = Message("waiting (%(state)s)", state=Message("queued"))
    assert (str(nested), nested.text("nl")) == ("waiting (queued)", "wachtend (in de wachtrij)")


def test_the_dutch_catalog_uses_moneybirds_and_woocommerces_words() -> None:
    dutch = catalog("nl")
    assert dutch.gettext("Tax rate") == "Btw-tarief"
    assert dutch.gettext("refund") == "terugbetaling"
    assert dutch.gettext("Order") == "Bestelling"
    assert "creditfactuur" in dutch.gettext("credit invoice %(credit)s differs from the refund")


@pytest.mark.parametrize(
    ("accept", "chosen", "expected"),
    [
        ("en-US,en;q=0.9,nl;q=0.8", None, "en"),
        ("de-DE, nl;q=0.5, en;q=0.4", None, "nl"),
        ("nl-BE", None, "nl"),
        ("fr, de", None, "en"),  # none spoken: the default
        ("en;q=0, nl;q=0.1", None, "nl"),  # q=0 means "not this one"
        ("en;q=abc, nl", None, "nl"),
        (None, None, "en"),
        ("en", "nl", "nl"),  # the switch wins over the browser
        ("nl", "xx", "nl"),  # an unknown choice is ignored
        ("x" * 5000, None, "en"),
    ],
)
def test_the_browsers_language(accept: str | None, chosen: str | None, expected: str) -> None:
    assert negotiate(accept, chosen=chosen, default="en") == expected


def test_language_setting_defaults_to_dutch_and_refuses_others_naming_it() -> None:
    assert make_settings(language="NL").language == "nl"
    # GNU gettext's own LANGUAGE, as a desktop sets it: its first language woobird speaks.
    assert make_settings(language="de_DE.UTF-8:en_GB:nl").language == "en"
    assert make_settings(language="nl_BE").language == "nl"
    with pytest.raises(ConfigurationError) as refused:
        make_settings(language="de")
    assert "LANGUAGE" in str(refused.value)
    assert "nl, en" in str(refused.value)


def test_the_default_language_is_dutch() -> None:
    from app.settings import Settings

    assert Settings.model_fields["language"].default == "nl"


def test_templates_format_money_with_the_one_filter() -> None:
    for template in TEMPLATES:
        assert '"%.2f"' not in template.read_text(), template.name


def test_filters_render_in_the_pages_language() -> None:
    env = Environment()
    install(env)
    page = env.from_string(
        '{{ _("Order") }} {{ amount|money }} {{ day|when }} {{ "booked"|word }} '
        "{{ rate|number }} {{ 21.0|number }}"
    )
    values = {"amount": Decimal("1234.5"), "day": date(2026, 12, 7), "rate": Decimal("5.50")}
    assert page.render(language="nl", **values) == "Bestelling €\xa01.234,50 7 december 2026 geboekt 5,5 21"
    assert page.render(language="en", **values) == "Order €1,234.50 December 7, 2026 booked 5.5 21"


def test_the_catalogs_are_package_data() -> None:
    """The Docker image and a wheel install woobird from its package: the `.po` files must travel."""
    import tomllib
    from fnmatch import fnmatch

    pyproject = tomllib.loads((APP.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["app"]
    catalogs = [path.relative_to(APP).as_posix() for path in APP.glob("locale/*/LC_MESSAGES/*.po")]
    assert catalogs
    for catalog_path in catalogs:
        assert any(fnmatch(catalog_path, pattern) for pattern in patterns), catalog_path


_IN_FSTRING = re.compile(r"""\bf(["'])[^"'\n]*\{\s*(?:_|N_|translate|ntranslate|Message)\(""")


def test_no_message_hides_inside_an_f_string() -> None:
    """Extraction cannot see into an f-string: a message there would never reach the catalog."""
    hidden = [
        f"{path.relative_to(APP.parent)}:{number}"
        for path in sorted(APP.glob("**/*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _IN_FSTRING.search(line)
    ]
    assert hidden == []
    assert _IN_FSTRING.search("""console.print(f"[green]{_('All is well')}[/]")""")


def test_recorded_english_is_read_back_as_its_message() -> None:
    refusal = (
        "Order #1204 was not booked: Moneybird has no active sales-invoice tax rate for the 9 % rate. "
        "To fix: create that tax rate in Moneybird, or "
        'set MONEYBIRD_TAX_RATES={"9": "<Moneybird tax rate id>"}.'
    )
    assert recorded(refusal, "nl") == (
        "Bestelling #1204 is niet geboekt: Moneybird heeft geen actief btw-tarief voor verkoopfacturen "
        "voor het tarief van 9 %. Oplossing: maak dat btw-tarief aan in Moneybird, of stel "
        'MONEYBIRD_TAX_RATES={"9": "<id van het btw-tarief in Moneybird>"} in.'
    )
    assert recorded(refusal, "en") == refusal
    # A quoted parameter keeps its quotes once, what Moneybird said stays in its words.
    assert recorded("ledger account '42' is not one of the administration's", "nl") == (
        "grootboekrekening '42' hoort niet bij de administratie"
    )
    assert recorded("Moneybird rejected the order: contact_id is invalid", "nl") == (
        "Moneybird weigerde de bestelling: contact_id is invalid"
    )


def test_text_that_is_no_message_stays_as_it_is() -> None:
    for text in ("Jan Jansen", "Order 12", "Korting 10%", "2026-0041", "booked as", "x" * 5000):
        assert recorded(text, "nl") == text
        assert shown(text, "nl") == text
    # A message id as a whole is translated; the same words inside other text are not.
    assert shown("Contact", "nl") == "Contact"
    assert shown("No failed orders.", "nl") == "Geen mislukte bestellingen."
    assert shown("No failed orders. Really", "nl") == "No failed orders. Really"


def test_why_an_order_is_not_booked_reads_in_dutch_from_the_ledger() -> None:
    from app.booking.intake import qualify
    from app.i18n import recorded
    from app.woocommerce.models import OrderHeader

    since = datetime(2026, 12, 1, tzinfo=UTC)
    unpaid = OrderHeader.model_validate(
        {"id": 7, "status": "completed", "date_modified_gmt": "2026-12-07T10:00:00", "date_paid_gmt": None}
    )
    waiting = OrderHeader.model_validate(
        {"id": 8, "status": "on-hold", "date_modified_gmt": "2026-12-07T10:00:00", "date_paid_gmt": None}
    )
    # The ledger keeps the English; the dashboard reads it back in the reader's language.
    not_paid = str(qualify(unpaid, statuses=["completed"], since=since).reason)
    on_hold = str(qualify(waiting, statuses=["completed"], since=since).reason)
    assert not_paid == "not paid (date_paid is empty)"
    assert recorded(not_paid, "nl") == "niet betaald (date_paid is leeg)"
    assert recorded(on_hold, "nl") == "status 'on-hold' staat niet in SYNC_ORDER_STATUSES (completed)"
    assert recorded(on_hold, "en") == on_hold
