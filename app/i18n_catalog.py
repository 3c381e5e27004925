"""Keeping the Dutch catalog in step with the code: `python -m app.i18n_catalog` (or `make messages`).

It extracts every message id from the Python code (`_`, `N_`, `Message`, `translate`, `ntranslate`),
the templates (`{% trans %}`, `_()`) and the settings' descriptions, then updates
`app/locale/nl/LC_MESSAGES/messages.po`: new ids arrive untranslated, ids no longer in the code are
dropped, translations of the rest are kept.
The catalog test extracts the same way and fails while the file is stale or a message untranslated.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from app.i18n import KEYWORDS, LANGUAGES, LOCALE_DIR, SOURCE_LANGUAGE
from app.settings import Settings

APP_DIR = Path(__file__).parent
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
# As app.i18n.install sets up the templates' environment: `%(name)s` parameters, whitespace trimmed.
TEMPLATE_OPTIONS = {"**/templates/**.html": {"newstyle_gettext": "true", "trimmed": "true"}}


def extract() -> Catalog:
    """Every message id in the code and the templates, with where it is used."""
    template = Catalog(project="woobird", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        APP_DIR, METHODS, TEMPLATE_OPTIONS, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        template.add(message, None, [(f"app/{filename}", lineno)], auto_comments=comments, context=context)
    # Each setting's one sentence, as the settings page shows it (the README's table stays English).
    for name, field in Settings.model_fields.items():
        if field.description:
            template.add(field.description, None, [("app/settings.py", 0)], auto_comments=[name.upper()])
    return template


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def read_catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as po:
        return read_po(po, locale=language)


def update(language: str) -> list[str]:
    """Bring one language's catalog in step with the code; the message ids still to translate."""
    template = extract()
    path = po_path(language)
    if path.exists():
        translated = read_catalog(language)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        translated = Catalog(locale=language, project="woobird", charset="utf-8")
    # No guessing from similar ids: a wrong guess reads as a finished translation.
    translated.update(template, no_fuzzy_matching=True, update_creation_date=False)
    translated.obsolete.clear()
    with path.open("wb") as po:
        write_po(po, translated, width=110, omit_header=False, sort_output=False)
    return [str(message.id) for message in translated if message.id and not _translated(message.string)]


def _translated(string: object) -> bool:
    """A translation, every plural form of one filled in."""
    return all(string) if isinstance(string, tuple | list) else bool(string)


def main() -> int:
    untranslated: list[str] = []
    for language in LANGUAGES:
        if language != SOURCE_LANGUAGE:
            untranslated += update(language)
    for message in untranslated:
        print(f"untranslated: {message}")  # noqa: T201 - a command for people
    return 1 if untranslated else 0


if __name__ == "__main__":
    sys.exit(main())
