"""Log lines a person reads in `heroku logs`: one line per event, order and Moneybird ids in it.

Secrets never reach a log line, and customer data only as a masked e-mail: the redaction is a
processor in the chain, so a careless `log.info(..., token=...)` is caught too.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

_SECRET_KEYS = re.compile(r"token|secret|password|authorization|api_key|consumer", re.IGNORECASE)
_PERSONAL_KEYS = re.compile(r"^(email|phone|address|billing|shipping|customer|name|firstname|lastname)$")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


def mask_email(text: str) -> str:
    """`jan.jansen@example.nl` → `j…@example.nl`: enough to recognise, not enough to harvest."""
    return _EMAIL.sub(lambda m: f"{m[1]}…@{m[2]}", text)


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in list(event):
        value = event[key]
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif _PERSONAL_KEYS.match(key) and not isinstance(value, int | float | bool):
            event[key] = mask_email(str(value)) if key == "email" else "[personal]"
        elif isinstance(value, str):
            event[key] = mask_email(value)
    return event


def configure_logging(*, level: str = "INFO", fmt: str = "console", sandbox: bool = False) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    if sandbox:
        processors.insert(0, lambda _l, _m, e: {**e, "sandbox": True})
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), sort_keys=False)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # arq's worker installs its own handler; without this every arq line is printed twice.
    arq_logger = logging.getLogger("arq")
    if arq_logger.handlers:
        arq_logger.propagate = False
    for noisy in ("httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
