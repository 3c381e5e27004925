"""No credential in any text woobird writes: URLs lose queries and userinfo, secrets their values.

The patterns see outside input (a webhook's headers, a shop's error text), so each must be linear:
the adversarial inputs below take well under a second each, where the quadratic e-mail mask this
replaced took minutes for 256 KiB (and held the web process's event loop all that time).
"""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.redaction import REDACTED, TEXT_LIMIT, mask_email, safe_url, scrub

KEY = "ck_" + secrets.token_hex(20)
SECRET = "cs_" + secrets.token_hex(20)


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        (f"the shop redirected to 'http://shop.test/wp-json/wc/v3/orders/1?consumer_key={KEY}'", KEY),
        (f"redirected to http://shop.test/x?a=1&consumer_secret={SECRET}#top", SECRET),
        ("Redis unreachable: rediss://:s3cret-Pa55@redis.example:6380/0", "s3cret-Pa55"),
        ("database postgres://woobird:db-Pa55word@db.example/woobird?sslmode=require", "db-Pa55word"),
        ("https://user:hunter2@hooks.example/x", "hunter2"),
        ("Authorization: Bearer mb-7f3e9a0c1d2e3f40", "mb-7f3e9a0c1d2e3f40"),
        ("Authorization: Basic Y2tfMTIzOmNzXzQ1Ng==", "Y2tfMTIzOmNzXzQ1Ng=="),
        (f'{{"consumer_key": "{KEY}", "other": 1}}', KEY),
        ('{"password":"hunter2"}', "hunter2"),
        ("smtp login failed: password=letmein123", "letmein123"),
        ("webhook_secret: short-one", "short-one"),
        (f"the key {KEY} has no write rights", KEY),
        ("token " + "7d1f0c9a2b3e4d5f" * 4, "7d1f0c9a2b3e4d5f" * 4),  # a Moneybird-style 64-hex token
        (
            "admin token " + "q8Zr2_TkV9xLp0Wm3NbY6cJd1HsGf4Ae7uQo5iRy",
            "q8Zr2_TkV9xLp0Wm3NbY6cJd1HsGf4Ae7uQo5iRy",
        ),
    ],
)
def test_credentials_never_survive_scrubbing(text: str, leak: str) -> None:
    cleaned = scrub(text)
    assert leak not in cleaned
    assert REDACTED in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "order 1042 booked as invoice 496081523381896487 (contact 496081410950432183)",
        "reconciliation has not succeeded since 2026-03-02T10:15:00+00:00",
        "VAT 21 % differs by €0.02 on invoice 2026-0041",
        "the signature does not match the body (wrong secret, or the body was altered)",
        "Moneybird answered 422: tax_rate_id is not active",
        "http://shop.test/wp-json/wc/v3/orders/1042",
    ],
)
def test_ordinary_messages_are_left_as_they_are(text: str) -> None:
    assert scrub(text) == text


def test_urls_keep_scheme_host_and_path() -> None:
    assert safe_url(f"https://ck:{SECRET}@shop.test/wp-json/wc/v3/orders/7?consumer_secret={SECRET}") == (
        "https://[redacted]@shop.test/wp-json/wc/v3/orders/7?[redacted]"
    )


def test_email_addresses_are_masked() -> None:
    assert scrub("contact jan.jansen@example.nl is archived") == "contact j…@example.nl is archived"


def test_every_text_is_bounded() -> None:
    assert len(scrub("x" * 5_000_000)) <= TEXT_LIMIT + 10
    assert len(scrub("x" * 50_000, limit=100)) <= 110


ADVERSARIAL = {
    "address characters without @": "a" * 262_144,
    "dotted address characters": "a." * 131_072,
    "many @": "x@" * 131_072,
    "schemes": "ab://" * 52_428,
    "url without a slash": "http://" + "a" * 262_144,
    "credential names": " token:" * 37_449,
    "long token run": "aB3" * 87_381,
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_patterns_are_linear_on_adversarial_input(text: str) -> None:
    # Unbounded on purpose: the bound is a second defence, the patterns must not need it.
    scrub(text, limit=len(text))
    mask_email(text)


@given(
    before=st.text(max_size=80),
    after=st.text(max_size=80),
    secret=st.from_regex(r"[A-Za-z0-9]{20,40}", fullmatch=True),
)
def test_a_query_secret_never_survives_whatever_surrounds_it(before: str, after: str, secret: str) -> None:
    text = f"{before} http://shop.test/orders?consumer_secret={secret} {after}"
    assert f"consumer_secret={secret}" not in scrub(text, limit=10_000)
