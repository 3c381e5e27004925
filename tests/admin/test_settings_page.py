"""`/admin/settings` shows where each setting comes from, never a credential a URL carries: an incoming
webhook's path is its secret, and a database or Redis URL may hold a password in its userinfo or query."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis

from app.admin.settings_page import shown_value
from app.settings import Settings
from tests.admin.conftest import app_with_admin, sign_in

SLACK_SECRET = "B07Q3LZ9K1M/xoxSecretPathPart4f8e2a91"
DB_PASSWORD = "pg-pass-8c41e7d2b9"
DB_QUERY_PASSWORD = "pg-query-pass-5a93f0c6"
REDIS_PASSWORD = "redis-pass-2d7b91e4c3"
CREDENTIALED = {
    "alert_webhook_url": f"https://hooks.slack.com/services/T0123ABCD/{SLACK_SECRET}",
    "database_url": f"postgresql://woobird:{DB_PASSWORD}@db.internal:5432/woobird?password={DB_QUERY_PASSWORD}",
    "redis_url": f"rediss://default:{REDIS_PASSWORD}@redis.internal:6380/0?ssl_cert_reqs=none",
    "moneybird_oauth_url": "https://moneybird.com/oauth?client_secret=mb-oauth-secret-6e2f",
}
NEVER_SHOWN = (
    SLACK_SECRET,
    "xoxSecretPathPart",
    DB_PASSWORD,
    DB_QUERY_PASSWORD,
    REDIS_PASSWORD,
    "ssl_cert_reqs",
    "mb-oauth-secret",
    "woobird:",
    "default:",
)


async def test_the_settings_page_prints_no_userinfo_query_or_webhook_path(
    settings: Settings, redis: ArqRedis, seeded: object
) -> None:
    app = app_with_admin(settings)
    async with app.router.lifespan_context(app):
        state = app.state.woobird
        # What the page would show on a deployment configured so; the app itself runs on the test's services.
        state.settings = state.settings.model_copy(update=CREDENTIALED)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://woobird.test"
        ) as client:
            await sign_in(client, settings)
            page = (await client.get("/admin/settings")).text

    for secret in NEVER_SHOWN:
        assert secret not in page, secret
    assert "hooks.slack.com" in page  # recognisable, as a masked secret is
    assert "db.internal:5432/woobird" in page
    assert "redis.internal:6380/0" in page


def test_a_url_is_shown_without_userinfo_query_or_fragment(settings: Settings) -> None:
    odd = settings.model_copy(
        update={"public_url": "https://user:pw@woobird.example.nl:8443/base?token=t0k3n#frag-secret"}
    )

    shown = shown_value(odd, "public_url")

    assert shown.startswith("https://")
    assert "woobird.example.nl:8443/base" in shown
    for hidden in ("user", "pw", "t0k3n", "frag-secret", "token="):
        assert hidden not in shown
