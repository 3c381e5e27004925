"""Run a module (`uvicorn`, `arq`, `workers`) as `python -m`, counting its SQL statements.

    python bench/_counted.py uvicorn --factory app.main:create_app …

Every statement any SQLAlchemy engine of the process sends is counted (`before_cursor_execute`),
and the running count is written to $BENCH_SQL_COUNT_FILE twice a second, so the benchmark reads
it from outside at the start and end of its window. Not a benchmark itself.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_count = 0


def _counted(*_: Any) -> None:
    global _count
    _count += 1


def _write_forever(path: Path) -> None:
    stop = threading.Event()
    while not stop.wait(0.5):
        path.write_text(str(_count))


def main() -> None:
    event.listen(Engine, "before_cursor_execute", _counted)
    threading.Thread(
        target=_write_forever, args=(Path(os.environ["BENCH_SQL_COUNT_FILE"]),), daemon=True
    ).start()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
