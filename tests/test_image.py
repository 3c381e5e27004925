"""The Docker image is the product without its demo: what .dockerignore leaves out is not needed.

The image's code is rebuilt here from the repository by the .dockerignore rules and run as the
image runs it: the web app and the commands load, and the sandbox's commands say it is a feature
of a clone instead of failing with an ImportError. `make run` in a clone keeps the demo
(tests/sandbox/test_demo.py).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app.cli.demo import NOT_SHIPPED
from app.settings_help import SETTING_HELP

ROOT = Path(__file__).resolve().parent.parent
# What the Dockerfile copies into the image.
COPIED = ("app", "workers", "migrations", "alembic.ini", "pyproject.toml", "README.md", "Procfile")


def _ignored(patterns: list[str], relative: str) -> bool:
    """Docker's rule: a pattern matches from the context's root, and a folder it matches takes
    everything below it along."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in patterns)


def _patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and line[0] not in "#!"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("image")
    patterns = _patterns()
    for name in COPIED:
        source = ROOT / name
        if source.is_file():
            shutil.copy2(source, tree / name)
            continue
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not _ignored(patterns, relative):
                (tree / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, tree / relative)
    return tree


def _run(image: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTING_HELP}
    # Without site (-S) the checkout's editable install is not on the path, only the dependencies:
    # the image installs its own copy of the tree, so app/ is this tree's and nothing else.
    env["PYTHONPATH"] = os.pathsep.join([str(image), *site.getsitepackages()])
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=image,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_image_leaves_the_sandbox_and_the_tests_out(image: Path) -> None:
    assert (image / "app" / "main.py").is_file()  # a tree that missed the code would prove nothing
    assert not (image / "app" / "sandbox").exists()
    assert not (image / "tests").exists()


def test_the_image_runs_without_the_sandbox(image: Path) -> None:
    loaded = _run(
        image, "-c", "import app, app.main, app.cli.day_to_day, app.booking.orders; print(app.__file__)"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().startswith(str(image))  # this tree's code, not the checkout's

    demo = _run(image, "-m", "app.cli", "run", "--env-file", str(image / "no.env"))
    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "ImportError" not in demo.stderr + demo.stdout
    assert " ".join(NOT_SHIPPED.split()[:8]) in " ".join((demo.stdout + demo.stderr).split())


def test_package_data_names_files_that_exist() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), (
                f"pyproject.toml names {package}/{pattern}: no such file"
            )
