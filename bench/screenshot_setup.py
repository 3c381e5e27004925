"""Take the README's screenshots of the set-up wizard: every step, clicked through in headless
Chromium against the sandbox's fake shop and fake Moneybird, woobird served over TLS.

    .venv/bin/python -m bench.screenshot_setup [--out docs/] [--language nl]

The browser asks for Dutch by default, as the README's pictures show woobird to Dutch shop owners.

Needs Redis (SCREENSHOT_REDIS_URL, default redis://127.0.0.1:6379/14: the wizard's authorizations
and tasks, and a worker heartbeat, are written there) and Debian's chromium on PATH. The ledger is
a throw-away SQLite file. The walk is the browser test's (tests/setup/browser_walk.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from playwright.async_api import async_playwright

from app.address_guard import TEST_RIG_VARIABLE
from app.constants import WORKER_HEALTH_KEY
from app.main import create_app
from app.queue import connect
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import sample_carts
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import REPO_ROOT, load_settings
from tests.server import serve_in_thread
from tests.setup.browser_walk import BROWSER_LOCALE, walk, worker_alongside
from tests.tls import self_signed

ADMIN_TOKEN = "screenshot-admin-token-4b7d90c1e8a2f5b3d6e9a7c0"
SECRET_KEY = "screenshot-secret-key-9f4c2b7e1d8a6035c4e9b2f7"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


async def shoot_all(out: Path, folder: Path, *, language: str) -> list[Path]:
    database = folder / "woobird.db"
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(command.upgrade, config, "head")
    redis_url = os.environ.get("SCREENSHOT_REDIS_URL", "redis://127.0.0.1:6379/14")
    redis = connect(redis_url)
    await redis.flushdb()
    await redis.set(WORKER_HEALTH_KEY, b"demo worker", ex=600)
    shop, moneybird = ShopSandbox(), MoneybirdSandbox()
    for cart in sample_carts(datetime.now(UTC) - timedelta(days=3)):
        shop.add_order(cart)
    taken: list[Path] = []
    with (
        serve_in_thread(create_shop_app(shop)) as shop_url,
        serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
    ):
        shop.url = shop_url
        # The fake shop listens on this machine, which the wizard refuses but for the rig's own shops.
        os.environ[TEST_RIG_VARIABLE] = shop_url.removeprefix("http://")
        settings = load_settings(
            _env_file=None,
            admin_token=ADMIN_TOKEN,
            secret_key=SECRET_KEY,
            database_url=f"sqlite:///{database}",
            redis_url=redis_url,
            moneybird_api_url=moneybird_url + "/api/v2",
            moneybird_oauth_url=moneybird_url + "/oauth",
            moneybird_client_id=moneybird.oauth.client_id,
            moneybird_client_secret=moneybird.oauth.client_secret,
            log_level="WARNING",
        )
        with serve_in_thread(create_app(settings), tls=self_signed(folder / "tls")) as woobird_url:
            moneybird.oauth.redirect_uri = woobird_url + "/admin/setup/moneybird/callback"
            async with async_playwright() as playwright:
                chromium = shutil.which("chromium")
                if chromium is None:
                    raise SystemExit("needs Debian's chromium on PATH (apt-get install chromium)")
                browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                context = await browser.new_context(
                    ignore_https_errors=True,
                    viewport={"width": 1100, "height": 800},
                    locale=BROWSER_LOCALE[language],
                )
                page = await context.new_page()

                async def shoot(name: str) -> None:
                    path = out / f"{name}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    taken.append(path)

                since = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
                async with worker_alongside(settings, redis):
                    await walk(
                        page,
                        woobird_url=woobird_url,
                        admin_token=ADMIN_TOKEN,
                        shop_url=shop_url,
                        preview_history_since=since,
                        shoot=shoot,
                        language=language,
                    )
                await page.goto(f"{woobird_url}/admin/settings")  # each setting's source, the changes
                await shoot("settings-sources")
                await browser.close()
    await redis.flushdb()
    await redis.aclose()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--language", choices=sorted(BROWSER_LOCALE), default="nl")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for path in asyncio.run(shoot_all(args.out, Path(folder), language=args.language)):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
