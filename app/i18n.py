"""What people read, in their language: the message catalogs, the one money and the one date format.

English is the source language: every message id is the English text, with named parameters
(`%(order)s`), and `app/locale/nl/LC_MESSAGES/messages.po` holds the Dutch. The catalogs are read
from the `.po` files when first needed, so a checkout, the Docker image and a Heroku build all
translate from the repository's own files without a compile step.

The web pages follow the browser (its Accept-Language, or the switch in the header, kept in a
cookie); alerts, the month report and the CLI follow the LANGUAGE setting. Log lines stay English:
they are for developers and log services, and never pass through here.
"""

from __future__ import annotations

import gettext as _gettext
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

Language = Literal["nl", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("nl", "en")
DEFAULT_LANGUAGE: Final[Language] = "nl"
SOURCE_LANGUAGE: Final[Language] = "en"
# The switch in the dashboard's header; remembered for a year, read by every page.
LANGUAGE_COOKIE: Final = "woobird_language"
LANGUAGE_COOKIE_SECONDS: Final = 365 * 24 * 3600
LANGUAGE_NAMES: Final[dict[Language, str]] = {"nl": "Nederlands", "en": "English"}
_BY_CODE: Final[dict[str, Language]] = {language: language for language in LANGUAGES}
LOCALE_DIR: Final = Path(__file__).parent / "locale"
# Dates and times are the shop's, as the month report's months are.
TIMEZONE: Final = ZoneInfo("Europe/Amsterdam")
# Python functions whose arguments are message ids, for extraction (app.i18n_catalog): the
# standard gettext names, plus `translate` and `ntranslate` whose first argument is the language.
KEYWORDS: Final[dict[str, tuple[int, ...] | None]] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "Message": None,
    "translate": (2,),
    "ntranslate": (2, 3),
}


def as_language(value: str | None) -> Language:
    """`value` when woobird speaks it, else the default."""
    return _BY_CODE.get(value or "", DEFAULT_LANGUAGE)


@cache
def catalog(language: Language) -> _gettext.NullTranslations:
    """The translations of one language, read once from its `.po` (fuzzy entries left out)."""
    if language == SOURCE_LANGUAGE:
        return _gettext.NullTranslations()
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        messages = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, messages)
    compiled.seek(0)
    return Translations(compiled)


def N_(message: str) -> str:
    """Marks a message id for the catalog where it is defined; it is translated where it is shown."""
    return message


def translate(language: Language, message: str, /, **params: object) -> str:
    """`message` in `language`, its `%(name)s` parameters filled in."""
    return catalog(language).gettext(message) % params


def ntranslate(language: Language, singular: str, plural: str, count: int, /, **params: object) -> str:
    """The singular or plural form for `count` (a parameter too, as `%(count)s`), in `language`."""
    return catalog(language).ngettext(singular, plural, count) % {"count": count, **params}


class Message(str):
    """A text for people that is still translatable: as a `str` it is the English (what JSON answers,
    logs and English readers get, so it goes wherever a string goes), `text(language)` the reader's.
    Raised in HTTPExceptions and carried by refusals, so the page that shows one translates it."""

    __slots__ = ("id", "params")
    id: str
    params: dict[str, object]

    def __new__(cls, id: str, /, **params: object) -> Message:
        message = super().__new__(cls, id % _shown_params(params, SOURCE_LANGUAGE))
        message.id = id
        message.params = params
        return message

    def text(self, language: Language) -> str:
        return translate(language, self.id, **_shown_params(self.params, language))


def _shown_params(params: dict[str, object], language: Language) -> dict[str, object]:
    """Parameters as the reader reads them: a Message translated, a moment as the date filter writes it,
    recorded English (a refusal quoted in an alert) read back."""
    return {
        name: value.text(language)
        if isinstance(value, Message)
        else when(value, language)
        if isinstance(value, date)
        else recorded(value, language)
        if isinstance(value, str) and language != SOURCE_LANGUAGE
        else value
        for name, value in params.items()
    }


def shown(text: str, language: Language) -> str:
    """A Message in `language`; a plain string translated when it is a message id (one marked with
    `N_`) or the English of one with its parameters filled in (what the ledger recorded), else as it
    is (a name, Moneybird's own words)."""
    if isinstance(text, Message):
        return text.text(language)
    exact = catalog(language).gettext(text)
    return exact if exact != text else recorded(text, language)


# A pattern must have at least this many characters of its own to read recorded text back: shorter
# ones ("Order %(order)s") would claim a name or a number that only looks like them. Inside a
# parameter already read back (a rate's description in a refusal) a few characters are enough.
_OWN_CHARACTERS = 12
_OWN_CHARACTERS_INSIDE = 4
_PLACEHOLDER = re.compile(r"%\((\w+)\)([sr])|%%")


@cache
def _recorded_patterns(language: Language) -> tuple[tuple[re.Pattern[str], str, frozenset[str], int], ...]:
    """Each translated message id with parameters as a pattern over its English, most specific first."""
    if language == SOURCE_LANGUAGE:
        return ()
    translations = catalog(language)
    found: list[tuple[int, re.Pattern[str], str, frozenset[str]]] = []
    messages = getattr(translations, "_catalog", {})
    for message_id in messages:
        if not isinstance(message_id, str) or "%(" not in message_id:
            continue
        pattern, own, seen, reprs = [], 0, set(), set()
        position = 0
        for match in _PLACEHOLDER.finditer(message_id):
            literal = message_id[position : match.start()]
            pattern.append(re.escape(literal))
            own += len(literal)
            name = match.group(1)
            if name is None:
                pattern.append("%")
                own += 1
            elif name in seen:
                pattern.append(f"(?P={name})")
            elif match.group(2) == "r":  # a repr: the quoted string, read back with its quotes
                seen.add(name)
                reprs.add(name)
                pattern.append(f"(?P<{name}>'[^']*'|\"[^\"]*\")")
            else:
                seen.add(name)
                pattern.append(f"(?P<{name}>.+?)")
            position = match.end()
        pattern.append(re.escape(message_id[position:]))
        own += len(message_id) - position
        if own >= _OWN_CHARACTERS_INSIDE:
            found.append((own, re.compile("".join(pattern), re.DOTALL), message_id, frozenset(reprs)))
    found.sort(key=lambda item: -item[0])
    return tuple((compiled, message_id, reprs, own) for own, compiled, message_id, reprs in found)


def recorded(text: str, language: Language, *, depth: int = 0) -> str:
    """Text the ledger recorded in English (a refusal, a finding) in `language`: read back as the
    message it was made from, its parameters read the same way; unknown text stays as it is."""
    if depth > 3 or len(text) > 4000:
        return text
    if depth == 0 and text.strip():
        exact = catalog(language).gettext(text)  # a message without parameters, recorded as it is
        if exact != text:
            return exact
    least = _OWN_CHARACTERS if depth == 0 else _OWN_CHARACTERS_INSIDE
    for pattern, message_id, reprs, own in _recorded_patterns(language):
        if own < least:
            break  # most specific first: the rest are shorter still
        match = pattern.fullmatch(text)
        if match is None:
            continue
        params = {
            name: value[1:-1] if name in reprs else _recorded_param(value, language, depth=depth + 1)
            for name, value in match.groupdict().items()
        }
        return catalog(language).gettext(message_id) % params
    return text


def _recorded_param(value: str, language: Language, *, depth: int) -> str:
    exact = catalog(language).gettext(value)
    return exact if exact != value else recorded(value, language, depth=depth)


def said(exc: BaseException) -> str:
    """What an exception says for people: the Message it was raised with, else its text."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)


def money_text(amount: Decimal | int | float, language: Language, *, currency: str | None = "EUR") -> str:
    """`€ 1.234,56` in Dutch, `€1,234.56` in English; any other currency by its own symbol or code."""
    return format_currency(Decimal(str(amount)), currency or "EUR", locale=language)


def when(moment: datetime | date | None, language: Language) -> str:
    """A date as `7 december 2026`, a moment with its time in the shop's zone: `7 december 2026 14:05`."""
    if moment is None:
        return "—"
    if isinstance(moment, datetime):
        return format_datetime(moment.astimezone(TIMEZONE), "d MMMM y HH:mm", locale=language)
    return format_date(moment, "long", locale=language)


def negotiate(accept_language: str | None, *, chosen: str | None, default: Language) -> Language:
    """The language a browser gets: the one chosen with the switch, else the first of Accept-Language's
    (by weight) that woobird speaks, else `default`."""
    if chosen in _BY_CODE:
        return _BY_CODE[chosen]
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "")[:1000].split(",")[:32]):
        tag, _sep, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, position, tag.strip().lower().split("-")[0]))
    for negative_weight, _position, primary in sorted(weighted):
        if negative_weight < 0 and primary in _BY_CODE:
            return _BY_CODE[primary]
    return default


# Machine words shown to people (order states, health checks, finding kinds, where a setting
# comes from): the key as stored, the message id as shown. Keys not listed are shown as they are.
WORDS: Final[dict[str, str]] = {
    "queued": N_("queued"),
    "booking": N_("booking"),
    "booked": N_("booked"),
    "awaiting_payment": N_("awaiting payment"),
    "credited": N_("credited"),
    "failed": N_("failed"),
    "skipped": N_("skipped"),
    "started": N_("started"),
    "sent": N_("sent"),
    "payment": N_("payment"),
    "invoice": N_("invoice"),
    "credit": N_("credit"),
    "backfill": N_("backfill"),
    "fingerprint": N_("fingerprint"),
    "webhook": N_("webhook"),
    "retry": N_("retry"),
    "order updated": N_("order updated"),
    "before_since": N_("before SYNC_SINCE"),
    "contact": N_("contact"),
    "invoice_creating": N_("creating the invoice"),
    "invoice_created": N_("invoice created"),
    "invoice_sent": N_("invoice sent"),
    "paying": N_("booking the payment"),
    "paid": N_("payment booked"),
    "marking_paid": N_("marking the order paid"),
    "open_invoice": N_("open invoice"),
    "moneybird_push": N_("Moneybird's push"),
    "settle_failed": N_("settling the payment failed"),
    "configuration": N_("configuration"),
    "exhausted": N_("gave up retrying"),
    "mismatch": N_("total differs"),
    "order": N_("order"),
    "refund": N_("refund"),
    "rejected": N_("rejected by Moneybird"),
    "shop": N_("shop"),
    "redis": N_("Redis"),
    "database": N_("database"),
    "backlog": N_("backlog"),
    "worker": N_("worker"),
    "reconcile": N_("reconciliation"),
    "order_changed": N_("order changed"),
    "invoice_deleted": N_("invoice deleted"),
    "invoice_changed": N_("invoice changed"),
    "invoice_reopened": N_("invoice reopened"),
    "email_changed": N_("e-mail changed"),
    "contact_replaced": N_("contact replaced"),
    "payment_mismatch": N_("payment differs"),
    "open_invoice_credited": N_("open invoice credited"),
    "environment": N_("environment"),
    "wizard": N_("wizard"),
    "default": N_("default"),
    "set": N_("set"),
    "cleared": N_("cleared"),
    "running": N_("running"),
    "done": N_("done"),
    "interrupted": N_("interrupted"),
    "cancelling": N_("stopping"),
    "cancelled": N_("stopped"),
    "created": N_("to create"),
    "adopted": N_("adopted"),
    "without_sku": N_("without SKU"),
    "refused": N_("refused"),
    "would_book": N_("would be booked"),
    "waiting": N_("waiting"),
    "not_in_range": N_("outside the period"),
}


def word(key: str, language: Language) -> str:
    message = WORDS.get(key)
    return key.replace("_", " ") if message is None else translate(language, message)


def _language_of(context: Context) -> Language:
    return as_language(context.get("language"))


def install(env: Environment) -> None:
    """Jinja2's i18n extension (`{% trans %}`, `_()`) and the `money`, `when` and `word` filters,
    each in the language of the page's context (`language`)."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True

    @pass_context
    def gettext(context: Context, message: str) -> str:
        return catalog(_language_of(context)).gettext(message)

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, count: int) -> str:
        return catalog(_language_of(context)).ngettext(singular, plural, count)

    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    filters: dict[str, Callable[..., Any]] = {
        "money": pass_context(
            lambda context, amount, currency="EUR": (
                "—" if amount is None else money_text(amount, _language_of(context), currency=currency)
            )
        ),
        "when": pass_context(lambda context, moment: when(moment, _language_of(context))),
        # A percentage or a count as the reader writes it: 5,5 in Dutch; no trailing zeros (21, not 21.0).
        "number": pass_context(
            lambda context, value: format_decimal(
                Decimal(str(value)).normalize(), locale=_language_of(context)
            )
        ),
        "word": pass_context(lambda context, key: word(str(key), _language_of(context))),
        "shown": pass_context(lambda context, text: shown(text, _language_of(context))),
    }
    env.filters.update(filters)
