"""Take the README's screenshot of /admin: the real app, a demo ledger, headless Chromium.

    .venv/bin/python -m bench.screenshot_dashboard [--out docs/dashboard.png] [--page /admin] [--language nl]

The browser asks for Dutch by default, as the README's pictures show woobird to Dutch shop owners.

Needs Redis (SCREENSHOT_REDIS_URL, default redis://127.0.0.1:6379/14; only the worker heartbeat
and demo delivery lags are written there) and Debian's chromium at /usr/bin/chromium. The ledger
is a throw-away SQLite file seeded by tests.ledger_rows.seed_demo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import cast

from alembic import command
from alembic.config import Config
from playwright.sync_api import sync_playwright

from app.admin.routes import router as admin_router
from app.constants import DELIVERY_LAG_KEY, WORKER_HEALTH_KEY
from app.db import create_engine, session_factory
from app.main import create_app
from app.queue import connect
from app.settings import REPO_ROOT, Settings, load_settings
from app.tokens import new_token
from tests.ledger_rows import seed_demo
from tests.server import serve_in_thread
from tests.setup.browser_walk import BROWSER_LOCALE

ADMIN_TOKEN = new_token()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _settings(database: Path) -> Settings:
    return load_settings(
        _env_file=None,
        woocommerce_url="https://shop.example.nl",
        woocommerce_consumer_key="ck_demo_" + "0" * 32,
        woocommerce_consumer_secret="cs_demo_" + "0" * 32,
        woocommerce_webhook_secret=new_token(),
        moneybird_api_token="demo-moneybird-token-77",
        moneybird_administration_id="123456789012345678",
        admin_token=ADMIN_TOKEN,
        redis_url=os.environ.get("SCREENSHOT_REDIS_URL", "redis://127.0.0.1:6379/14"),
        database_url=f"sqlite:///{database}",
        log_level="WARNING",
    ).require_complete()


async def _prepare(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await seed_demo(session_factory(engine))
    finally:
        await engine.dispose()
    redis = connect(settings.redis_url)
    try:
        # A demo has no worker; show the heartbeat a running one would leave.
        await redis.set(WORKER_HEALTH_KEY, b"demo worker", ex=120)
        # …and the deliveries of a shop that runs its queue from a system cron.
        await redis.delete(DELIVERY_LAG_KEY)
        now = time.time()
        for index, lag in enumerate((0.8, 1.2, 0.6, 2.4, 1.1, 0.9, 1.6, 0.7, 1.3, 1.0, 3.1, 0.9)):
            await cast(Awaitable[int], redis.lpush(DELIVERY_LAG_KEY, f"{now - 600 * index:.3f} {lag:.3f}"))
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "dashboard.png")
    parser.add_argument("--page", default="/admin")
    parser.add_argument("--language", choices=sorted(BROWSER_LOCALE), default="nl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "demo.db"
        config = Config(str(REPO_ROOT / "alembic.ini"))
        config.attributes["database_url"] = f"sqlite+aiosqlite:///{database}"
        command.upgrade(config, "head")
        settings = _settings(database)
        asyncio.run(_prepare(settings))
        app = create_app(settings)
        if not any(getattr(route, "path", "").startswith("/admin") for route in app.routes):
            app.include_router(admin_router)
        started = time.perf_counter()
        with serve_in_thread(app) as base_url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page(
                viewport={"width": 1280, "height": 900},
                device_scale_factor=1,
                locale=BROWSER_LOCALE[args.language],
            )
            page.goto(f"{base_url}/admin/login")
            page.fill("input[name=token]", ADMIN_TOKEN)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{base_url}/admin")
            if args.page != "/admin":
                page.goto(f"{base_url}{args.page}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
