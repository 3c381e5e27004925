"""What can go wrong talking to the shop.

WooCommerceError                 base; carries method, path and (when known) the order id
├── WooCommerceTransient         an app.retry.TryAgainLater: the shop will likely answer later
│   ├── timeout / connection error
│   └── 5xx, 429 (`retry_at` from the shop's Retry-After)
└── WooCommerceRejected          the shop answered no; retrying the same request won't help
    ├── WooCommerceAuthError     401/403, with `problem` saying which: the shop saw no key at all,
    │                            does not know the key, the secret (signature) is wrong, the
    │                            clocks differ, or the key may not do this
    └── WooCommerceNotFound      404: the order (or refund, webhook) does not exist
"""

from __future__ import annotations

from typing import Literal

from app.retry import TryAgainLater

# Why the shop said no, in the order `woobird check` reports them.
AuthProblem = Literal["not_authenticated", "unknown_key", "wrong_secret", "clock", "no_rights"]


class WooCommerceError(RuntimeError):
    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status


class WooCommerceTransient(WooCommerceError, TryAgainLater):
    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.retry_at = retry_at


class WooCommerceRejected(WooCommerceError):
    def __init__(
        self, message: str, *, method: str, path: str, status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.code = code


class WooCommerceAuthError(WooCommerceRejected):
    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        problem: AuthProblem,
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path, status=status, code=code)
        self.problem: AuthProblem = problem


class WooCommerceNotFound(WooCommerceRejected):
    pass
