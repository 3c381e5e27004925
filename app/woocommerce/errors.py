"""What can go wrong talking to the shop.

WooCommerceError                 base; carries method, path and (when known) the order id
├── WooCommerceTransient         an app.retry.TryAgainLater: the shop will likely answer later
│   ├── timeout / connection error
│   └── 5xx, 429 (`retry_at` from the shop's Retry-After)
└── WooCommerceRejected          the shop answered no; retrying the same request won't help
    ├── WooCommerceAuthError     401/403: consumer key or secret wrong, or key lacks rights
    └── WooCommerceNotFound      404: the order (or refund, webhook) does not exist
"""

from __future__ import annotations

from app.retry import TryAgainLater


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
    pass


class WooCommerceNotFound(WooCommerceRejected):
    pass
