"""What speaking Dutch costs the dashboard: the overview rendered for an `nl` browser against the
same page for an `en` one (the baseline), measured in the same run.

    .venv/bin/python bench/bench_language.py

The Dutch page translates every text through the catalog and reads each recorded refusal back as
the message it was made from (app.i18n.recorded): 80 order rows, each with a refusal recorded in
English, are the worst case of the page (FAILED_LIMIT and RECENT_LIMIT rows). No services needed.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from _common import machine

from app.admin.routes import FAILED_LIMIT, RECENT_LIMIT, TEMPLATES
from app.i18n import LANGUAGE_NAMES, recorded

ROUNDS = 60
REASONS = (
    "Order #{n} was not booked: Moneybird has no active sales-invoice tax rate for the 9 % rate. "
    "To fix: create that tax rate in Moneybird, or "
    'set MONEYBIRD_TAX_RATES={{"9": "<Moneybird tax rate id>"}}.',
    "Moneybird rejected the order: contact_id is invalid (the contact was archived) #{n}",
    "a reason no message makes, as Moneybird or the shop may give one (#{n})",
)


def _row(number: int) -> dict[str, Any]:
    record = SimpleNamespace(
        order_id=number,
        order_number=str(number),
        state="failed",
        order_total=Decimal("1234.56"),
        currency="EUR",
        invoice_number=None,
        invoice_id=None,
        error=REASONS[number % len(REASONS)].format(n=number),
        updated_at=datetime(2026, 12, 7, 9, 30, tzinfo=UTC) + timedelta(minutes=number),
    )
    return {"record": record, "link": None, "retryable": True}


def _context(language: str) -> dict[str, Any]:
    rows = [_row(1000 + n) for n in range(FAILED_LIMIT + RECENT_LIMIT)]
    return {
        "language": language,
        "languages": LANGUAGE_NAMES,
        "here": "/admin",
        "sandbox": False,
        "admin": True,
        "csrf": "0" * 64,
        "findings": [],
        "verified": SimpleNamespace(error=None, on=True, finished=datetime(2026, 12, 7, tzinfo=UTC)),
        "healthy": False,
        "checks": {"redis": {"ok": True, "queue_depth": 3, "ms": 1.2}, "worker": {"ok": True}},
        "last_reconcile": datetime(2026, 12, 7, 10, tzinfo=UTC),
        "counts": {"booked": 120, "failed": 80},
        "lag": None,
        "failed": rows[:FAILED_LIMIT],
        "recent": rows[FAILED_LIMIT:],
        "retried": None,
        "done": None,
    }


def _render_ms() -> dict[str, float]:
    """Median render time per language, the two interleaved round by round (a busy moment of a shared
    machine then slows both alike), after one render of each to compile the template."""
    template = TEMPLATES.env.get_template("overview.html")
    contexts = {language: _context(language) for language in ("en", "nl")}
    timings: dict[str, list[float]] = {language: [] for language in contexts}
    for context in contexts.values():
        template.render(context)
    for _ in range(ROUNDS):
        for language, context in contexts.items():
            started = time.perf_counter()
            template.render(context)
            timings[language].append((time.perf_counter() - started) * 1000)
    return {language: statistics.median(values) for language, values in timings.items()}


def main() -> None:
    print(machine())
    recorded("warm the catalog's patterns", "nl")
    medians = _render_ms()
    english, dutch = medians["en"], medians["nl"]
    rows = FAILED_LIMIT + RECENT_LIMIT
    print(f"overview with {rows} refused orders, median of {ROUNDS} renders")
    print(f"  en (baseline)  {english:7.2f} ms")
    print(f"  nl             {dutch:7.2f} ms   ×{dutch / english:.2f} the English page")


if __name__ == "__main__":
    main()
