"""What can go wrong talking to the shop.

WooCommerceError                 base; carries method, path and (when known) the order id
├── WooCommerceTransient         worth another try later: the shop will likely answer
│   ├── timeout / connection error
│   └── 5xx, 429
└── WooCommerceRejected          the shop answered no; retrying the same request won't help
    ├── WooCommerceAuthError     401/403, with `problem` saying which: the shop saw no key at all,
    │                            does not know the key, the secret (signature) is wrong, the
    │                            clocks differ, or the key may not do this
    └── WooCommerceNotFound      404: the order (or refund, webhook) does not exist
"""

from __future__ import annotations

from typing import Literal

# Why the shop said no, in the order `woobird check` reports them.
AuthProblem = Literal["not_authenticated", "unknown_key", "wrong_secret", "clock", "no_rights"]


class WooCommerceError(RuntimeError):
    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status


class WooCommerceTransient(WooCommerceError):
    pass


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
