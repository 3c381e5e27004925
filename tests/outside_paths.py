"""`make lint` fails when a test names a file outside the repository.

The suite must pass from a clone at any path on any machine, so no test or benchmark may read an
absolute path of this machine (`/work/…`, `/home/…`, `/tmp/…`) or climb out of the clone
(`../shared`). Data a test needs is vendored into `tests/` with its source noted; the real shop is
found through environment variables. Python files are checked string by string (so URL paths such
as `/wp-json/…` or `/workflows.json` pass), every other text file line by line.

Usage: `python -m tests.outside_paths tests bench` — prints each offence as `file:line: text` and
exits 1 when there is one.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

# Top-level folders that only ever mean a place on one machine's disk.
_ROOTS = "work|home|tmp|usr|opt|var|etc|srv|mnt|media|root|Users|private|Volumes|shared|data|scratch|nix|snap"
_ABSOLUTE = re.compile(rf"^(?:~|/(?:{_ROOTS}))(?:/|$)|^[A-Za-z]:[\\/]")
_CLIMB = re.compile(r"\.\.[\\/]+(?:\.\.[\\/]+)*shared\b")
# In text that is not Python, an absolute path is one not glued to a host name or another path.
_ABSOLUTE_IN_TEXT = re.compile(rf"(?<![\w.:/~-])/(?:{_ROOTS})/")
_TEXT_SUFFIXES = {".json", ".md", ".txt", ".ini", ".cfg", ".toml", ".yaml", ".yml", ".sh", ".php", ".html"}
_SKIPPED_DIRS = {"__pycache__", ".hypothesis", ".pytest_cache"}


def offences_in_python(source: str) -> Iterator[tuple[int, str]]:
    tree = ast.parse(source)
    docstrings = {id(node) for node in _docstrings(tree)}
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue  # prose about paths is not a path
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("utf-8", "replace") if isinstance(node.value, bytes) else node.value
            reason = _string_offence(text)
            if reason:
                yield node.lineno, reason


def _docstrings(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                yield first.value


def _string_offence(text: str) -> str | None:
    if _CLIMB.search(text):
        return f"climbs out of the repository: {text[:80]!r}"
    if _ABSOLUTE.search(text.strip()):
        return f"absolute path of one machine: {text[:80]!r}"
    return None


def offences_in_text(source: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(source.splitlines(), start=1):
        if _CLIMB.search(line):
            yield number, f"climbs out of the repository: {line.strip()[:80]!r}"
        elif _ABSOLUTE_IN_TEXT.search(line):
            yield number, f"absolute path of one machine: {line.strip()[:80]!r}"


def offences(path: Path) -> Iterator[tuple[int, str]]:
    if path.suffix == ".py":
        yield from offences_in_python(path.read_text(encoding="utf-8"))
    elif path.suffix in _TEXT_SUFFIXES:
        yield from offences_in_text(path.read_text(encoding="utf-8", errors="replace"))


def files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not _SKIPPED_DIRS.intersection(path.parts):
                yield path


def main(argv: list[str]) -> int:
    found = 0
    for path in files([Path(arg) for arg in argv or ["tests"]]):
        for line, reason in offences(path):
            print(f"{path}:{line}: {reason}")
            found += 1
    if found:
        print(
            f"{found} path(s) outside the repository: vendor the data into tests/ (with its source), "
            "or find it through an environment variable"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
