"""The lint check that keeps the suite inside the repository catches what it must and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import outside_paths

# Built from parts, so this file does not trip the check it tests.
SHARED = "/".join(["", "work", "shared", "reference", "wc-orders"])
CLIMB = "/".join(["..", "shared", "woocommerce", "wordpress-6.8.3.tar.gz"])


@pytest.mark.parametrize(
    "line",
    [
        f'ORDERS = Path("{SHARED}")',
        f'open("{CLIMB}")',
        f'HOME = "{"/".join(["", "home", "someone", "fixtures.json"])}"',
        f'BLOB = b"{SHARED}/a.json"',
        'WINDOWS = r"C:\\\\Users\\\\me\\\\orders.json"',
    ],
)
def test_a_test_naming_a_path_outside_the_repository_fails_lint(tmp_path: Path, line: str) -> None:
    offender = tmp_path / "tests" / "test_offender.py"
    offender.parent.mkdir()
    offender.write_text(f'"""A test."""\n\nimport json\n{line}\n')
    assert outside_paths.main([str(tmp_path / "tests")]) == 1
    assert [number for number, _ in outside_paths.offences(offender)] == [4]


def test_a_fixture_file_naming_a_machine_path_fails_lint(tmp_path: Path) -> None:
    fixture = tmp_path / "order.json"
    fixture.write_text(f'{{\n  "note": "copied from {SHARED}/a.json"\n}}\n')
    assert [number for number, _ in outside_paths.offences(fixture)] == [2]


def test_url_paths_relative_paths_and_prose_pass(tmp_path: Path) -> None:
    clean = tmp_path / "test_clean.py"
    clean.write_text(
        f'"""Reads nothing from {CLIMB}: the data is vendored."""\n'
        'WORKFLOWS = "/workflows.json"\n'
        'ORDERS = "/wp-json/wc/v3/orders"\n'
        'URL = "http://127.0.0.1:8010/home/x"\n'
        'HERE = "tests/fixtures/realshop/10.0.2/orders.json"\n'
    )
    recorded = tmp_path / "order.json"
    recorded.write_text('{"href": "http:\\/\\/127.0.0.1:8123\\/wp-json\\/wc\\/v3\\/orders\\/12"}\n')
    assert list(outside_paths.offences(clean)) == []
    assert list(outside_paths.offences(recorded)) == []
    assert outside_paths.main([str(tmp_path)]) == 0
