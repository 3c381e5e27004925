"""Log lines carry no secret in any format: not in values, not in tracebacks, not from the stdlib."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from app.logs import ScrubRecords, configure_logging
from app.settings import Settings, load_settings
from tests.conftest import make_settings

REDIS_PASSWORD = "r3dis-Pa55word"
DB_PASSWORD = "db-Pa55word-9"
HOOK_PATH_SECRET = "xoxb8Sekrit"
SMTP_LOGIN = "mailer-login@example.nl"
# A value no redaction rule would catch on its own: only printing local variables would show it.
LOCAL_VALUE = "plain-local-value-visible-only-with-locals"


@pytest.fixture(params=["console", "json"])
def log_format(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    yield str(request.param)
    with capsys.disabled():
        configure_logging(level="INFO", fmt="console")


def _credentialed_settings() -> Settings:
    return make_settings(
        redis_url=f"rediss://:{REDIS_PASSWORD}@redis.example:6380/0",
        database_url=f"postgres://woobird:{DB_PASSWORD}@db.example/woobird",
        alert_webhook_url=f"https://hooks.slack.test/services/T0/B0/{HOOK_PATH_SECRET}",
        smtp_username=SMTP_LOGIN,
    )


def _fail(settings: Settings) -> None:
    local_value = LOCAL_VALUE
    request_parameters = {"consumer_secret": settings.woocommerce_consumer_secret}
    raise RuntimeError(f"reconciliation failed after {len(local_value) + len(request_parameters)} tries")


def test_tracebacks_show_no_local_variables(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt=log_format)
    settings = _credentialed_settings()
    try:
        _fail(settings)
    except RuntimeError:
        structlog.get_logger("woobird.worker").exception("reconcile failed")
    output = capsys.readouterr().err
    assert "reconciliation failed after" in output  # the traceback is there …
    assert "_fail" in output
    for leak in (LOCAL_VALUE, REDIS_PASSWORD, DB_PASSWORD, HOOK_PATH_SECRET, SMTP_LOGIN):
        assert leak not in output  # … its locals are not


def test_settings_never_show_credentials_in_their_repr() -> None:
    settings = _credentialed_settings()
    shown = repr(settings) + str(settings)
    for leak in (REDIS_PASSWORD, DB_PASSWORD, HOOK_PATH_SECRET, SMTP_LOGIN):
        assert leak not in shown
    assert "redis.example" in shown  # where it points is still there to read
    # … while every client still connects with the whole URL.
    assert REDIS_PASSWORD in settings.redis_url
    assert DB_PASSWORD in settings.database_url


def test_a_malformed_url_setting_is_named_without_its_password() -> None:
    refused = None
    try:
        load_settings(_env_file=None, redis_url=f"http://:{REDIS_PASSWORD}@redis.example:6379")
    except Exception as exc:  # ConfigurationError
        refused = str(exc)
    assert refused is not None
    assert "REDIS_URL" in refused
    assert REDIS_PASSWORD not in refused


def test_logged_values_are_bounded_and_scrubbed(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt=log_format)
    structlog.get_logger("woobird.webhook").warning(
        "webhook rejected",
        source="https://evil.test/" + "A" * 1_000_000,
        error=f"redirected to http://shop.test/x?consumer_secret=cs_{'7' * 40}",
    )
    output = capsys.readouterr().err
    assert len(output) < 10_000
    assert "cs_777" not in output


def test_standard_library_lines_are_scrubbed_too() -> None:
    record = logging.LogRecord(
        "sqlalchemy.engine",
        logging.ERROR,
        __file__,
        1,
        "connection to %s failed",
        (f"postgresql://woobird:{DB_PASSWORD}@db.example/woobird",),
        None,
    )
    assert ScrubRecords().filter(record)
    assert DB_PASSWORD not in record.getMessage()
    assert "db.example/woobird" in record.getMessage()


def test_configure_logging_puts_the_filter_on_every_handler() -> None:
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        configure_logging(level="INFO", fmt="console")
        assert any(isinstance(f, ScrubRecords) for f in handler.filters)
    finally:
        root.removeHandler(handler)
