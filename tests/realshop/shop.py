"""A real WordPress + WooCommerce, installed headless in a temp folder, for contract tests.

    sources = ShopSources.from_env()          # None when the variables are not set
    with install_shop(sources, woocommerce=sources.woocommerce[0], workdir=tmp) as shop:
        shop.rest.post("/wc/v3/orders", json=...)      # as the shop owner, over the "TLS proxy"
        shop.url, shop.consumer_key, ...               # what woobird is configured with

Where the release trees come from (a `.tar.gz`, `.zip` or folder each):

- `WOOBIRD_TEST_WORDPRESS` — WordPress (top folder `wordpress/`), e.g. wordpress-6.8.3.tar.gz;
- `WOOBIRD_TEST_WOOCOMMERCE` — WooCommerce (top folder `woocommerce/`, built, with `vendor/`);
  several separated by `:` run every real-shop test once per version;
- `WOOBIRD_TEST_MYSQL_URL` — a MariaDB/MySQL server where the rig may create and drop a database
  (default `mysql://root@127.0.0.1:3306`).

Each shop gets its own folder and database, dropped afterwards, and is served by PHP's built-in
server with several workers (woobird reads the REST API while the shop delivers a webhook). The
install follows what WordPress and WooCommerce do when a person clicks through them: `wp_install`,
`activate_plugin`, `WC_Install::install` — each in its own PHP process — then HPOS on, the shop of
`catalogue.py`, and a REST key. WP-Cron is off; `php/watch.php` runs Action Scheduler's queue
whenever an action is due, as a system cron would (`paused()` holds it, as a quiet host does).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from tests.realshop.catalogue import shop_spec

PHP_DIR = Path(__file__).parent / "php"
HOW_TO_RUN = (
    "real-shop tests need WordPress and WooCommerce: set WOOBIRD_TEST_WORDPRESS and WOOBIRD_TEST_WOOCOMMERCE "
    "(a .tar.gz, .zip or folder each; several WooCommerce versions separated by ':') and, if not "
    "mysql://root@127.0.0.1:3306, WOOBIRD_TEST_MYSQL_URL; needs php 8.2 (php-mysql, php-curl, php-xml, "
    "php-mbstring, php-intl, php-zip) — then `make test-shop`"
)
START_TIMEOUT_SECONDS = 60.0
SERVER_WORKERS = 4


class ShopSetupError(RuntimeError):
    """The rig could not install or start the shop; the message carries PHP's own output."""


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Database:
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError(
                f"WOOBIRD_TEST_MYSQL_URL must be mysql://user[:password]@host[:port], not {url!r}"
            )
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
        )


@dataclass(frozen=True)
class ShopSources:
    wordpress: Path
    woocommerce: tuple[Path, ...]
    database: Database

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ShopSources | None:
        env = os.environ if environ is None else environ
        wordpress = env.get("WOOBIRD_TEST_WORDPRESS", "").strip()
        woocommerce = [part for part in env.get("WOOBIRD_TEST_WOOCOMMERCE", "").split(os.pathsep) if part]
        if not wordpress or not woocommerce:
            return None
        paths = [Path(wordpress), *(Path(part) for part in woocommerce)]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise ShopSetupError(f"not found: {', '.join(missing)} ({HOW_TO_RUN})")
        database = Database.from_url(env.get("WOOBIRD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
        return cls(wordpress=paths[0], woocommerce=tuple(paths[1:]), database=database)


def unpack(source: Path, into: Path, *, top: str) -> Path:
    """Put release tree `source` (archive or folder) at `into/top`; returns that folder."""
    target = into / top
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    elif source.name.endswith(".zip"):
        with zipfile.ZipFile(source) as archive:
            archive.extractall(into)
    else:
        with tarfile.open(source) as archive:
            archive.extractall(into, filter="data")
    if not (target / ("wp-load.php" if top == "wordpress" else "woocommerce.php")).exists():
        raise ShopSetupError(f"{source} does not hold a {top}/ release tree")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wp_config(*, database: Database, name: str, url: str) -> str:
    salts = "\n".join(
        f"define('{key}', '{secrets.token_hex(32)}');"
        for key in (
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        )
    )
    return f"""<?php
define('DB_NAME', '{name}');
define('DB_USER', {json.dumps(database.user)});
define('DB_PASSWORD', {json.dumps(database.password)});
define('DB_HOST', '{database.host}:{database.port}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_HOME', '{url}');
define('WP_SITEURL', '{url}');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_DEBUG', false);
define('FS_METHOD', 'direct');
if (!defined('ABSPATH')) {{
    define('ABSPATH', __DIR__ . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"""


@dataclass
class RealShop:
    """One running shop. `rest` talks to it as its owner would, through a TLS proxy (Basic auth)."""

    root: Path
    url: str
    database: Database
    database_name: str
    consumer_key: str
    consumer_secret: str
    admin_password: str
    facts: dict[str, Any] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _rest: httpx.Client | None = None

    @property
    def woocommerce_version(self) -> str:
        return str(self.facts["woocommerce"])

    @property
    def wordpress_version(self) -> str:
        return str(self.facts["wordpress"])

    @property
    def rest(self) -> httpx.Client:
        if self._rest is None:
            self._rest = httpx.Client(
                base_url=f"{self.url}/wp-json",
                auth=(self.consumer_key, self.consumer_secret),
                headers={"X-Forwarded-Proto": "https"},
                timeout=60,
            )
        return self._rest

    def product_id(self, key: str, variation: str | None = None) -> int:
        product = self.facts["products"][key]
        return int(product["variations"][variation] if variation else product["id"])

    def tax_rate_id(self, key: str) -> int:
        return int(self.facts["tax_rates"][key])

    def php(self, script: str, *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
        """Run one of `php/*.php` in a fresh PHP process (WordPress booted); its last line, as JSON."""
        return run_php(self.root / ".rig" / script, *args, stdin=stdin, timeout=timeout)

    def wp(self, code: str) -> Any:
        """Run PHP `code` inside WordPress (see php/eval.php); what it returns comes back as JSON."""
        return self.php("eval.php", stdin=code)

    def set_prices_include_tax(self, include: bool) -> None:
        response = self.rest.put(
            "/wc/v3/settings/tax/woocommerce_prices_include_tax", json={"value": "yes" if include else "no"}
        )
        response.raise_for_status()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the shop's queue: webhooks wait, as on a host where WP-Cron has not run yet."""
        flag = self.root / ".rig" / "paused"
        flag.touch()
        try:
            yield
        finally:
            flag.unlink(missing_ok=True)

    def run_queue(self) -> None:
        """Run the queue once now (what one cron request does)."""
        self.php("queue.php")

    def log(self) -> str:
        return (self.root.parent / "php-server.log").read_text(errors="replace")


def run_php(script: Path, *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
    completed = subprocess.run(
        ["php", str(script), *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=script.parent,
    )
    out = completed.stdout.decode(errors="replace")
    if completed.returncode != 0:
        error = completed.stderr.decode(errors="replace")
        raise ShopSetupError(
            f"php {script.name} failed ({completed.returncode}): {out[-2000:]} {error[-2000:]}"
        )
    last = next((line for line in reversed(out.splitlines()) if line.strip()), "null")
    try:
        return json.loads(last)
    except ValueError as exc:
        raise ShopSetupError(f"php {script.name} printed no JSON: {out[-2000:]}") from exc


def _database_statement(database: Database, statement: str) -> None:
    code = (
        "$db = new mysqli($argv[1], $argv[2], $argv[3], null, (int) $argv[4]);"
        "if (!$db->query($argv[5])) { fwrite(STDERR, $db->error); exit(1); } echo 'null';"
    )
    completed = subprocess.run(
        ["php", "-r", code, database.host, database.user, database.password, str(database.port), statement],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise ShopSetupError(
            f"MariaDB/MySQL at {database.host}:{database.port} refused {statement!r}: "
            f"{completed.stderr.decode(errors='replace')[-500:]} (is it running? WOOBIRD_TEST_MYSQL_URL)"
        )


def _wait_until_up(shop: RealShop, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if server.poll() is not None:
            raise ShopSetupError(f"php -S exited ({server.returncode}): {shop.log()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{shop.url}/wp-json/", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ShopSetupError(f"the shop did not answer on {shop.url}: {shop.log()[-2000:]}")
        time.sleep(0.2)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started in its own session, and the children it forked."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextlib.contextmanager
def install_shop(sources: ShopSources, *, woocommerce: Path, workdir: Path) -> Iterator[RealShop]:
    """Install, configure and serve one shop; on exit stop it and drop its database and folder."""
    if shutil.which("php") is None:
        raise ShopSetupError(f"php is not installed ({HOW_TO_RUN})")
    workdir.mkdir(parents=True, exist_ok=True)
    root = unpack(sources.wordpress, workdir, top="wordpress")
    unpack(woocommerce, root / "wp-content" / "plugins", top="woocommerce")
    port = free_port()
    shop = RealShop(
        root=root,
        url=f"http://127.0.0.1:{port}",
        database=sources.database,
        database_name=f"woobird_shop_{secrets.token_hex(4)}",
        consumer_key=f"ck_{secrets.token_hex(20)}",
        consumer_secret=f"cs_{secrets.token_hex(20)}",
        admin_password=secrets.token_urlsafe(12),
    )
    (root / "wp-config.php").write_text(
        _wp_config(database=sources.database, name=shop.database_name, url=shop.url)
    )
    (root / ".rig").mkdir()
    for script in PHP_DIR.glob("*.php"):
        shutil.copy(script, root / ".rig" / script.name)
    shutil.copy(PHP_DIR / "router.php", root / "router.php")
    mu_plugins = root / "wp-content" / "mu-plugins"
    mu_plugins.mkdir(exist_ok=True)
    shutil.copy(PHP_DIR / "mu-plugin.php", mu_plugins / "woobird-rig.php")

    _database_statement(sources.database, f"CREATE DATABASE `{shop.database_name}` CHARACTER SET utf8mb4")
    try:
        shop.php("install.php", shop.admin_password)
        shop.php("activate.php")
        spec = shop_spec(consumer_key=shop.consumer_key, consumer_secret=shop.consumer_secret)
        shop.facts = shop.php("setup.php", stdin=json.dumps(spec))
        with (workdir / "php-server.log").open("ab") as log:
            server = subprocess.Popen(
                ["php", "-S", f"127.0.0.1:{port}", "-t", str(root), str(root / "router.php")],
                env={**os.environ, "PHP_CLI_SERVER_WORKERS": str(SERVER_WORKERS)},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                start_new_session=True,  # its workers are its children: stopped with it, as a group
            )
            shop.processes.append(server)
            database = sources.database
            watcher = subprocess.Popen(
                [
                    "php",
                    str(root / ".rig" / "watch.php"),
                    database.host,
                    str(database.port),
                    database.user,
                    database.password,
                    shop.database_name,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                start_new_session=True,
            )
            shop.processes.append(watcher)
        _wait_until_up(shop, server)
        yield shop
    finally:
        if shop._rest is not None:
            shop._rest.close()
        for process in shop.processes:
            _stop_group(process)
        _database_statement(sources.database, f"DROP DATABASE IF EXISTS `{shop.database_name}`")
        shutil.rmtree(workdir, ignore_errors=True)
