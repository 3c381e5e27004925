"""`make audit` runs the pinned pip-audit over every pinned requirement (not in CI: no network here)."""

from __future__ import annotations

import re
import shlex

from app.settings import REPO_ROOT


def _target(name: str) -> list[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{name}:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert match, f"no `make {name}`"
    return shlex.split(match[1])


def test_make_audit_audits_every_pinned_requirements_file() -> None:
    command = _target("audit")
    assert command[0].endswith("/pip-audit")
    audited = {command[i + 1] for i, word in enumerate(command) if word == "-r"}
    assert audited == {f"requirements/{path.name}" for path in (REPO_ROOT / "requirements").glob("*.txt")}
    assert {"--strict", "--no-deps", "--disable-pip"} <= set(command)  # the pins as they are, no resolving


def test_pip_audit_is_pinned_for_development() -> None:
    assert "pip-audit" in (REPO_ROOT / "requirements" / "dev.in").read_text(encoding="utf-8").split()
    assert re.search(
        r"^pip-audit==\d", (REPO_ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8"), re.M
    )
