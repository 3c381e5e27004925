"""`woobird plan ORDER.json`: the dry-run table."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from app.cli.plan import plan_command, render_plan
from app.invoicing.plan import PlanOptions, PlanRefused, plan_invoice
from app.sandbox import administration as sb
from app.sandbox.administration import sandbox_reference
from tests.invoicing.reference_carts import order, order_document

app = typer.Typer()
app.command()(plan_command)


@pytest.fixture(autouse=True)
def _no_configured_ids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MONEYBIRD_TAX_RATES", "MONEYBIRD_LEDGER_ACCOUNT_ID", "INVOICE_EXACT_VAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"order-{name}.json"
    path.write_text(json.dumps(order_document(name)), encoding="utf-8")
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_prints_lines_vat_per_rate_and_totals(tmp_path: Path) -> None:
    code, output = _run(str(_write(tmp_path, "c")))
    assert code == 0
    assert "WooCommerce #1255" in output
    assert "Korting welkom10, korting5 (21% btw)" in output
    assert "-9.16" in output
    # VAT per rate: shop, Moneybird per line, difference, Moneybird per rate, difference.
    vat_row = next(line for line in output.splitlines() if "9% btw" in line and "3.67" in line)
    assert vat_row.count("3.67") == 3
    totals_row = next(
        line for line in output.splitlines() if "112.66" in line and "│" in line and "off by" not in line
    )
    assert totals_row.count("112.66") == 3
    assert "2 × 26.705" in output


def test_refused_order_prints_the_reason_and_fails(tmp_path: Path) -> None:
    refs = tmp_path / "reference.json"
    refs.write_text(
        json.dumps(
            {
                "administration_id": "1",
                "tax_rates": [
                    {"id": "11", "name": "21% btw", "percentage": "21.0", "tax_rate_type": "sales_invoice"},
                    {"id": "12", "name": "9% btw", "percentage": "9.0", "tax_rate_type": "purchase_invoice"},
                ],
            }
        ),
        encoding="utf-8",
    )
    code, output = _run(str(_write(tmp_path, "b")), "--reference", str(refs))
    assert code == 1
    assert "was not booked" in output
    assert "9 % rate" in output
    assert "MONEYBIRD_TAX_RATES" in output


def test_tax_rate_option_and_exact_vat_flag(tmp_path: Path) -> None:
    code, output = _run(
        str(_write(tmp_path, "a")), "--tax-rates", json.dumps({"21.0": sb.SALES_21}), "--exact-vat"
    )
    assert code == 0
    assert "36.00" in output


def test_unreadable_order_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, output = _run(str(broken))
    assert code == 2
    assert "Cannot plan" in output


def test_render_plan_shows_the_rounding_line_and_its_note() -> None:
    odd = order("a").model_copy(update={"total": Decimal("36.01")})
    plan = plan_invoice(odd, reference=sandbox_reference(), options=PlanOptions())
    console = Console(record=True, width=200)
    render_plan(plan, odd, console, reference=sandbox_reference())
    text = console.export_text()
    rounding_row = next(line for line in text.splitlines() if "Afronding" in line)
    assert "0.01" in rounding_row
    assert "rounding" in rounding_row
    assert "differs from its lines by 0.01" in text
    assert "Moneybird default" in text


def test_render_plan_of_a_refusal() -> None:
    refusal = PlanRefused(1041, "something is missing", "set SOMETHING", order_number="1041")
    console = Console(record=True, width=200)
    render_plan(refusal, order("a"), console)
    assert "Order #1041 was not booked: something is missing. To fix: set SOMETHING." in console.export_text()
