"""LOG_FORMAT=json: one JSON object per line, with order and Moneybird ids, and no secrets or e-mails."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from app.logs import configure_logging


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    yield capsys
    with capsys.disabled():  # bind the real stderr again, not the capture that closes after the test
        configure_logging(level="INFO", fmt="console")


def _configure() -> None:
    # Inside the test: the logger binds sys.stderr, which capsys replaces only while the test runs.
    configure_logging(level="INFO", fmt="json")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def test_json_lines_carry_order_and_moneybird_ids(json_logs: pytest.CaptureFixture[str]) -> None:
    _configure()
    structlog.get_logger("woobird.booking").info(
        "order booked", order_id=1042, invoice_id="496081523381896487", contact_id="496081410950432183"
    )
    (line,) = _lines(json_logs)
    assert line["event"] == "order booked"
    assert line["order_id"] == 1042
    assert line["invoice_id"] == "496081523381896487"  # Moneybird ids stay strings
    assert line["contact_id"] == "496081410950432183"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_json_lines_redact_secrets_and_mask_emails(json_logs: pytest.CaptureFixture[str]) -> None:
    _configure()
    structlog.get_logger("woobird.web").warning(
        "careless line",
        order_id=7,
        admin_token="plain-words-as-a-token",
        moneybird_api_token="mb-test-token-7f3e9a",
        email="jan.jansen@example.nl",
        error="Moneybird said: contact jan.jansen@example.nl is archived",
    )
    raw = json_logs.readouterr().err
    for secret in ("plain-words-as-a-token", "mb-test-token-7f3e9a", "jan.jansen@example.nl"):
        assert secret not in raw
    line = json.loads(raw.strip().splitlines()[-1])
    assert line["admin_token"] == "[redacted]"
    assert line["email"] == "j…@example.nl"
    assert line["error"] == "Moneybird said: contact j…@example.nl is archived"
    assert line["order_id"] == 7
