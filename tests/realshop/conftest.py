"""The real shop, once per WooCommerce version per test session (see `shop.py` for the variables)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.realshop.checks import BOOKED, report_table
from tests.realshop.orders import place_order, set_status
from tests.realshop.shop import HOW_TO_RUN, RealShop, ShopSources, install_shop
from tests.realshop.stack import Stack, run_woobird, utc_now

SOURCES = ShopSources.from_env()
# The per-version woobirds (`stack`) still running: the two-shop tests stop them first.
RUNNING: list[Stack] = []


def _version_id(path: Path | None) -> str:
    if path is None:
        return "no-shop"
    name = path.name.removesuffix(".tar.gz").removesuffix(".zip").removesuffix(".tgz")
    return name.removeprefix("woocommerce-").removeprefix("woocommerce.")


class ShopInstalls:
    """Each WooCommerce version installed at most once per session and kept until its end, so the
    per-version tests and the two-shop test (which needs both shops at once) share the installs."""

    def __init__(self, sources: ShopSources, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.sources = sources
        self.tmp_path_factory = tmp_path_factory
        self.shops: dict[Path, RealShop] = {}
        self.exits = contextlib.ExitStack()

    def get(self, woocommerce: Path) -> RealShop:
        if woocommerce not in self.shops:
            workdir = self.tmp_path_factory.mktemp(f"shop-{_version_id(woocommerce)}") / "site"
            self.shops[woocommerce] = self.exits.enter_context(
                install_shop(self.sources, woocommerce=woocommerce, workdir=workdir)
            )
        return self.shops[woocommerce]


def _skip_without_shops(why: str = HOW_TO_RUN) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the contract tests against the real shop: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def shop_installs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopInstalls]:
    if SOURCES is None:
        _skip_without_shops()
    installs = ShopInstalls(SOURCES, tmp_path_factory)
    with installs.exits:
        yield installs


@pytest.fixture(
    scope="session",
    params=list(SOURCES.woocommerce) if SOURCES else [None],
    ids=_version_id,
)
def shop(request: pytest.FixtureRequest) -> RealShop:
    woocommerce: Path | None = request.param
    if SOURCES is None or woocommerce is None:
        _skip_without_shops()
    installs: ShopInstalls = request.getfixturevalue("shop_installs")
    return installs.get(woocommerce)


@pytest.fixture
def two_shops(request: pytest.FixtureRequest) -> tuple[RealShop, RealShop]:
    """The first two WooCommerce versions, both running (installed once per session, see
    `ShopInstalls`)."""
    if SOURCES is None:
        _skip_without_shops()
    if len(SOURCES.woocommerce) < 2:
        _skip_without_shops(
            "two shops at once need two WooCommerce versions in WOOBIRD_TEST_WOOCOMMERCE, separated by ':'"
        )
    installs: ShopInstalls = request.getfixturevalue("shop_installs")
    # The per-version tests are done (these run last): their woobirds would read the shops too.
    for stack in RUNNING:
        for process in stack.processes:
            process.stop()
    return installs.get(SOURCES.woocommerce[0]), installs.get(SOURCES.woocommerce[1])


@pytest.fixture(scope="session")
def history(shop: RealShop) -> list[dict[str, Any]]:
    """Orders paid before woobird was installed: `woobird backfill` books them, nothing else does."""
    shop.set_prices_include_tax(True)
    placed = [
        set_status(shop, place_order(shop, items=[("mug", 1)], email="oud.klant@example.com"), "completed"),
        set_status(
            shop,
            place_order(shop, items=[("tea", 2)], email="oud.klant@example.com", shipping="flat_nl"),
            "completed",
        ),
    ]
    time.sleep(1.1)  # SYNC_SINCE has whole seconds: the next order is paid after it
    return placed


@pytest.fixture(scope="session")
def stack(
    shop: RealShop, history: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with run_woobird(shop, workdir=tmp_path_factory.mktemp("woobird"), since=utc_now()) as stack:
        RUNNING.append(stack)
        try:
            yield stack
        finally:
            RUNNING.remove(stack)


@pytest.hookimpl(trylast=True)  # after pytest groups the tests by shop
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked `first_version_only` proves nothing the first version's run has not (the marker
    says why): on the other versions it is skipped, which keeps CI's two shops inside its time.

    The two-shop tests run last: they delete both shops' webhooks and stop the per-version tests'
    woobirds (which would otherwise run until the session ends)."""
    together = [item for item in items if "two_shops" in getattr(item, "fixturenames", ())]
    items[:] = [item for item in items if item not in together] + together
    first = SOURCES.woocommerce[0] if SOURCES else None
    for item in items:
        marker = item.get_closest_marker("first_version_only")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or callspec.params.get("shop") in (first, None):
            continue
        why = marker.args[0] if marker.args else "the same on every version"
        item.add_marker(pytest.mark.skip(reason=f"run on {_version_id(first)} only: {why}"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if BOOKED:
        terminalreporter.write_sep(
            "-", "orders booked from the real shop (WooCommerce's numbers vs Moneybird's)"
        )
        for line in report_table():
            terminalreporter.write_line(line)
