"""The real shop, once per WooCommerce version per test session (see `shop.py` for the variables)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realshop.checks import BOOKED, report_table
from tests.realshop.orders import place_order, set_status
from tests.realshop.shop import HOW_TO_RUN, RealShop, ShopSources, install_shop
from tests.realshop.stack import Stack, run_woobird, utc_now

SOURCES = ShopSources.from_env()


def _version_id(path: Path | None) -> str:
    if path is None:
        return "no-shop"
    name = path.name.removesuffix(".tar.gz").removesuffix(".zip").removesuffix(".tgz")
    return name.removeprefix("woocommerce-").removeprefix("woocommerce.")


@pytest.fixture(
    scope="session",
    params=list(SOURCES.woocommerce) if SOURCES else [None],
    ids=_version_id,
)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealShop]:
    woocommerce: Path | None = request.param
    if SOURCES is None or woocommerce is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the contract tests against the real shop: {HOW_TO_RUN}")
        pytest.skip(HOW_TO_RUN)
    with install_shop(
        SOURCES, woocommerce=woocommerce, workdir=tmp_path_factory.mktemp("shop") / "site"
    ) as shop:
        yield shop


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
        yield stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked `first_version_only` proves nothing the first version's run has not (the marker
    says why): on the other versions it is skipped, which keeps CI's two shops inside its time."""
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
