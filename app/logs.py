"""Log lines a person reads in `heroku logs`: one line per event, order and Moneybird ids in it.

Secrets never reach a log line, and customer data only as a masked e-mail: the redaction is a
processor in the chain, so a careless `log.info(..., token=...)` is caught too. Every value is
bounded and scrubbed (app.redaction) before it is rendered, tracebacks included — and tracebacks
never show local variables, which would print the settings and every request's parameters.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from app.redaction import bound, mask_email, scrub

_SECRET_KEYS = re.compile(r"token|secret|password|authorization|api_key|consumer", re.IGNORECASE)
_PERSONAL_KEYS = re.compile(r"^(email|phone|address|billing|shipping|customer|name|firstname|lastname)$")
# A traceback is ours, but quotes exception messages that may carry outside text.
TRACEBACK_LIMIT = 20_000

__all__ = ["ScrubRecords", "configure_logging", "mask_email", "redact"]


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in list(event):
        value = event[key]
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif _PERSONAL_KEYS.match(key) and not isinstance(value, int | float | bool):
            event[key] = mask_email(bound(str(value))) if key == "email" else "[personal]"
        elif key == "exception" and isinstance(value, str):
            event[key] = scrub(value, limit=TRACEBACK_LIMIT)
        elif isinstance(value, str):
            event[key] = scrub(value)
        elif not isinstance(value, int | float | bool | None) and key != "exc_info":
            event[key] = scrub(str(value))
    return event


def _access_path(path: str) -> str:
    """Uvicorn's access log prints the full URL: the path only, since a query carries what no log may keep
    (Moneybird's OAuth `code`, a credential someone pasted into a URL)."""
    return scrub(path.partition("?")[0])


class ScrubRecords(logging.Filter):
    """The standard library's lines (uvicorn, arq, SQLAlchemy) are bounded and scrubbed like ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3:
            # The access formatter unpacks its arguments: keep them, scrub the path.
            record.args = (*args[:2], _access_path(str(args[2])), *args[3:])
        else:
            record.msg = scrub(record.getMessage())
            record.args = None
        return True


def _scrub_standard_logging() -> None:
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "arq")]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if not any(isinstance(f, ScrubRecords) for f in handler.filters):
            handler.addFilter(ScrubRecords())


def configure_logging(*, level: str = "INFO", fmt: str = "console", sandbox: bool = False) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, so they are scrubbed like every other value.
        structlog.processors.format_exc_info,
        redact,
    ]
    if sandbox:
        processors.insert(0, lambda _l, _m, e: {**e, "sandbox": True})
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(),
                sort_keys=False,
                exception_formatter=structlog.dev.plain_traceback,
            )
        )
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
    _scrub_standard_logging()
