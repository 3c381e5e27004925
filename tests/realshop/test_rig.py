"""The rig itself: the shop it installs is the one the issue describes, headless and offline."""

from __future__ import annotations

import pytest

from tests.realshop.shop import RealShop

pytestmark = pytest.mark.realshop


def test_the_shop_is_installed_with_hpos_and_the_dutch_tax_rates(shop: RealShop) -> None:
    assert shop.facts["hpos"] is True
    rates = shop.rest.get("/wc/v3/taxes", params={"per_page": 100}).json()
    assert sorted((rate["country"], rate["rate"], rate["class"]) for rate in rates) == [
        ("BE", "21.0000", "standard"),
        ("DE", "19.0000", "standard"),
        ("NL", "0.0000", "zero-rate"),
        ("NL", "21.0000", "standard"),
        ("NL", "9.0000", "reduced-rate"),
    ]
    status = shop.rest.get("/wc/v3/system_status").json()
    assert status["environment"]["version"] == shop.woocommerce_version
    assert status["environment"]["wp_version"] == shop.wordpress_version
