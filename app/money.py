"""Money as a person reads it: two decimals, whatever shape the amount arrived in.

Moneybird answers "64.7" and "0.0", SQLite hands back 36.0, WooCommerce sends "36.00": every log
line, ledger event and screen shows an amount through `money`, so it always reads 64.70.
"""

from __future__ import annotations

from decimal import Decimal


def money(amount: Decimal | int) -> str:
    """`64.70` for Decimal("64.7"): two decimals, no thousands separator (log lines stay parsable)."""
    return f"{Decimal(amount):.2f}"
