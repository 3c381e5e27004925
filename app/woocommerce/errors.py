"""What can go wrong talking to the shop.

WooCommerceError                 base; carries method, path and (when known) the order id
├── WooCommerceTransient         worth another try later: the shop will likely answer
│   ├── timeout / connection error
│   └── 5xx, 429
└── WooCommerceRejected          the shop answered no; retrying the same request won't help
    ├── WooCommerceAuthError     401/403: consumer key or secret wrong, or key lacks rights
    └── WooCommerceNotFound      404: the order (or refund, webhook) does not exist
"""

from __future__ import annotations


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
    pass


class WooCommerceNotFound(WooCommerceRejected):
    pass
