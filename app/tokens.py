"""The secrets woobird itself holds: made with `secrets`, judged before a process starts.

ADMIN_TOKEN, WOOCOMMERCE_WEBHOOK_SECRET and METRICS_TOKEN guard public endpoints. The login is
rate-limited, but a captured webhook signature or session cookie can be attacked offline, where no
limit applies — so a short or guessable secret is refused at start, naming the setting.

"Guessable" is judged by length and by an entropy estimate: the Shannon entropy of the value's own
characters times its length. It undercounts a random token (a 32-character `openssl rand -hex 16`
scores about 115 bits for its 128) and overcounts a pattern, so the bar is set where random
tokens of the minimum length always pass and words and repetitions fail; a value that repeats a
shorter one is refused outright.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from typing import Final

MIN_TOKEN_CHARS: Final = 32
MIN_TOKEN_BITS: Final = 90
# `secrets.token_urlsafe(32)`: 43 characters, 256 random bits.
NEW_TOKEN_BYTES: Final = 32


def new_token() -> str:
    """A fresh token for ADMIN_TOKEN, the webhook secret or METRICS_TOKEN."""
    return secrets.token_urlsafe(NEW_TOKEN_BYTES)


def estimated_bits(value: str) -> float:
    counts = Counter(value)
    length = len(value)
    return -sum(n * math.log2(n / length) for n in counts.values())


def _repeats_a_shorter_value(value: str) -> bool:
    return len(value) > 1 and value in (value + value)[1:-1]


def weakness(value: str) -> str | None:
    """Why `value` is too weak to guard an endpoint, or None when it is strong enough."""
    value = value.strip()
    if len(value) < MIN_TOKEN_CHARS:
        return f"too short ({len(value)} characters, at least {MIN_TOKEN_CHARS})"
    if _repeats_a_shorter_value(value) or estimated_bits(value) < MIN_TOKEN_BITS:
        return "too predictable (repeated or too few different characters)"
    return None
