"""Weak guard tokens refuse to start, naming the setting; the generator makes strong ones."""

from __future__ import annotations

import secrets

import pytest

from app.settings import ConfigurationError
from app.tokens import MIN_TOKEN_CHARS, new_token, weakness
from tests.conftest import ADMIN_TOKEN, WEBHOOK_SECRET, make_settings

WEAK = [
    "a",
    "admin",
    "admin-test-token-51c8e2",  # the old test token: 23 characters
    secrets.token_urlsafe(18),  # 24 random characters: too short to resist an offline search
    "abcd" * 10,  # long, but a repetition
    "0123456789abcdef" * 2,  # as many different characters as hex, but repeated
    "passwordpasswordpasswordpassword",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


@pytest.mark.parametrize("value", WEAK)
@pytest.mark.parametrize("setting", ["admin_token", "woocommerce_webhook_secret", "metrics_token"])
def test_a_weak_guard_token_refuses_to_start_and_is_named(setting: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_settings(**{setting: value})
    assert set(refused.value.problems) == {setting.upper()}
    problem = refused.value.problems[setting.upper()]
    assert "too short" in problem or "too predictable" in problem or "placeholder" in problem
    if len(value) > 5:
        assert value not in str(refused.value)  # the refusal never echoes the secret


def test_admin_token_and_webhook_secret_must_differ() -> None:
    shared = new_token()
    with pytest.raises(ConfigurationError) as refused:
        make_settings(admin_token=shared, woocommerce_webhook_secret=shared)
    assert "the same as" in refused.value.problems["WOOCOMMERCE_WEBHOOK_SECRET"]
    assert "ADMIN_TOKEN" in refused.value.problems["WOOCOMMERCE_WEBHOOK_SECRET"]


def test_metrics_token_must_differ_from_the_admin_token() -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_settings(metrics_token=ADMIN_TOKEN)
    assert "ADMIN_TOKEN" in refused.value.problems["METRICS_TOKEN"]


def test_a_guard_token_may_not_be_the_consumer_secret() -> None:
    secret = "cs_" + secrets.token_hex(20)
    with pytest.raises(ConfigurationError) as refused:
        make_settings(woocommerce_consumer_secret=secret, admin_token=secret)
    assert "WOOCOMMERCE_CONSUMER_SECRET" in refused.value.problems["ADMIN_TOKEN"]


@pytest.mark.parametrize(
    "make",
    [
        new_token,
        lambda: secrets.token_hex(16),  # openssl rand -hex 16: 32 characters, the shortest accepted
        lambda: secrets.token_hex(32),
        lambda: secrets.token_urlsafe(24),
    ],
)
def test_random_tokens_of_the_minimum_length_are_accepted(make: object) -> None:
    assert callable(make)
    for _ in range(200):
        assert weakness(make()) is None


def test_woocommerce_generated_webhook_secrets_are_accepted() -> None:
    # WooCommerce's own: wp_generate_password(50, true, true), letters, digits and symbols.
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_ []{}<>~`+=,.;:/?|"
    for _ in range(200):
        assert weakness("".join(secrets.choice(alphabet) for _ in range(50))) is None


def test_the_generator_is_long_random_and_fresh() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= MIN_TOKEN_CHARS + 10 for token in tokens)


def test_test_settings_use_strong_tokens() -> None:
    settings = make_settings()
    assert weakness(settings.admin_token.get_secret_value()) is None
    assert weakness(WEBHOOK_SECRET) is None
