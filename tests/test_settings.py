"""Misconfiguration refuses to start and names the setting; platform URLs work as given."""

from __future__ import annotations

import pytest

from app.queue import connect, redis_settings
from app.settings import ConfigurationError, load_settings, normalise_database_url, parse_rate_limit
from tests.conftest import make_settings


def test_missing_secrets_are_named_with_their_fix() -> None:
    settings = load_settings(_env_file=None, woocommerce_url="https://shop.example.nl")
    with pytest.raises(ConfigurationError) as refused:
        settings.require_complete()
    problems = refused.value.problems
    assert set(problems) == {
        "WOOCOMMERCE_CONSUMER_KEY",
        "WOOCOMMERCE_CONSUMER_SECRET",
        "WOOCOMMERCE_WEBHOOK_SECRET",
        "MONEYBIRD_API_TOKEN",
        "MONEYBIRD_ADMINISTRATION_ID",
        "ADMIN_TOKEN",
    }
    assert "REST API" in problems["WOOCOMMERCE_CONSUMER_KEY"]
    assert "MONEYBIRD_API_TOKEN" in str(refused.value)


@pytest.mark.parametrize(
    "placeholder", ["changeme", "your-webhook-secret", "<secret>", "xxxx", "ck_your_key"]
)
def test_placeholder_secrets_refuse_to_start(placeholder: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_settings(woocommerce_webhook_secret=placeholder)
    assert "placeholder" in refused.value.problems["WOOCOMMERCE_WEBHOOK_SECRET"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("moneybird_rate_limit", "lots"),
        ("moneybird_administration_id", "my-shop"),
        ("woocommerce_url", "shop.example.nl"),
        ("redis_url", "http://localhost:6379"),
        ("database_url", "mysql://root@localhost/woobird"),
        ("moneybird_tax_rates", {"21": "not-an-id"}),
        ("reconcile_interval_seconds", 5),
    ],
)
def test_malformed_values_are_named(setting: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_settings(**{setting: value})
    assert setting.upper() in refused.value.problems


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/d", "postgresql+asyncpg://u:p@db.example:5432/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
        ("sqlite:////var/lib/woobird.db", "sqlite+aiosqlite:////var/lib/woobird.db"),
        ("sqlite:///woobird.db", "sqlite+aiosqlite:///woobird.db"),
    ],
)
def test_platform_database_urls_become_driver_urls(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_heroku_redis_with_its_self_signed_certificate_is_accepted() -> None:
    url = "rediss://:secret@ec2-1-2-3-4.compute-1.amazonaws.com:6380"
    assert redis_settings(url).ssl_cert_reqs == "none"
    assert redis_settings(url, tls_verify=True).ssl_cert_reqs == "required"
    pool_kwargs = connect(url).connection_pool.connection_kwargs
    assert pool_kwargs["ssl_cert_reqs"] == "none"


def test_statuses_and_rate_limit_read_as_people_write_them() -> None:
    settings = make_settings(sync_order_statuses="completed, wc-processing", moneybird_rate_limit="150/300")
    assert settings.sync_order_statuses == ["completed", "processing"]
    assert parse_rate_limit(settings.moneybird_rate_limit) == (150, 300.0)
    assert make_settings(moneybird_tax_rates={"21.0": "123", "de:19": "456"}).moneybird_tax_rates == {
        "21": "123",
        "DE:19": "456",
    }
