"""Mutation testing of woobird's core with mutmut: how many deliberate small breaks the tests notice.

`make mutation` (or `.venv/bin/python bench/mutation.py [GROUP ...] [--jobs N]`) mutates each group
of modules in a copy of the checkout's files of its own (`.mutation/<group>/`), against that
group's own fast tests, so that every mutant runs only the tests that can notice it and two
groups never share a `mutants/` directory. Groups and their tests are in GROUPS below; mutmut
itself narrows further: each mutant runs only the selected tests that call the mutated function,
fastest first, up to the first failure.

A run goes on from the last one: mutmut keeps each mutant's verdict until its function changes,
and new tests are added to its map of which test calls what. After adding tests for survivors,
`--survivors` runs the group's surviving mutants again; `--fresh` starts over. `--only GLOB`
runs only mutants whose name matches (`'app.booking.ledger.*'`: one file; with `--survivors`, only
those survivors), and `--sample SHARE`
a random share of each module's mutants (`--seed`), for groups too big to run whole.

Printed, and written with every surviving mutant's diff to `.mutation/report.md`: per module the
mutants killed, survived, not run yet and the share killed of those run. A mutant no selected test
runs counts as survived; a timeout or a mutant mypy-style checks reject counts as killed (mutmut's
own rule).

The tests get a `redis-server` of their own on a free port (so a test run of yours at the same
time cannot kill a mutant by accident); PostgreSQL cases are left out (SQLite tests the same
code). It is a benchmark, not part of `make test` or CI: the whole run takes hours on two cores.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".mutation"
MUTMUT = Path(sys.executable).parent / "mutmut"

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), folded into two outcomes.
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
SURVIVED = {"survived", "no tests", "suspicious"}


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]  # globs, relative to the repository
    tests: tuple[str, ...]  # pytest paths (node ids or `-k`-free paths) that exercise them
    goal: float


GROUPS: dict[str, Group] = {
    "invoicing": Group(("app/invoicing/*",), ("tests/invoicing", "tests/cli/test_plan.py"), 0.90),
    "webhooks": Group(
        ("app/webhooks.py",),
        (
            "tests/test_webhooks.py",
            "tests/test_bad_input.py",
            "tests/test_metrics.py",
            "tests/test_delivery_lag.py",
        ),
        0.90,
    ),
    "booking": Group(
        ("app/booking/*", "app/runtime.py", "app/jobs.py"),
        (
            "tests/booking",
            "tests/test_metrics.py",
            "tests/test_workers.py",
            "tests/test_settings_store.py",
            "tests/admin",
            "tests/cli",
        ),
        0.80,
    ),
    "moneybird": Group(
        ("app/moneybird/client.py", "app/moneybird/ratelimit.py"),
        ("tests/moneybird",),
        0.80,
    ),
}

# Every group: no PostgreSQL duplicates, no slow real-process or browser tests (they run the
# checkout's code, not the mutant), no tests that only measure time.
PYTEST_ARGS = [
    "-p",
    "no:cacheprovider",
    "-m",
    "not chaos and not browser",
    "-k",
    "not postgresql and not three_processes",
]


def tracked_files() -> list[str]:
    """The checkout's files as git knows them (committed or not), without the ignored ones."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (REPO / name).is_file()]


def prepare(name: str, group: Group, *, fresh: bool) -> Path:
    """The checkout's files copied afresh, with the group's mutmut configuration in pyproject.toml.

    mutmut's `mutants/` (its mutated copy and each mutant's verdict) is kept unless `fresh`: mutmut
    itself re-mutates a function that changed and forgets its verdict. It does not refresh the
    files it does not mutate, so those are removed here and copied again by mutmut.
    """
    copy = WORK / name
    kept = copy / "mutants"
    if fresh:
        shutil.rmtree(copy, ignore_errors=True)
    for entry in copy.iterdir() if copy.is_dir() else ():
        if entry != kept:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if kept.is_dir():
        for source in (kept / "app").rglob("*"):
            relative = source.relative_to(kept).as_posix()
            mutated = any(
                fnmatch.fnmatch(relative.removesuffix(".meta").removesuffix(".spans"), g)
                for g in group.modules
            )
            if source.is_file() and not mutated:
                source.unlink()
    for file in tracked_files():
        target = copy / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / file, target)
    config = {
        "source_paths": ["app/"],
        "only_mutate": list(group.modules),
        "also_copy": ["workers/", "migrations/", "alembic.ini", "README.md"],
        "pytest_add_cli_args": PYTEST_ARGS,
        "pytest_add_cli_args_test_selection": list(group.tests),
        # A mutant mypy --strict rejects (a None where a str must be) is killed without a test run.
        "type_check_command": ["mypy", "--output", "json", "--no-warn-unused-ignores", "app", "workers"],
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    pyproject = copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    text = text.split("\n[tool.mutmut]")[0]  # the checkout's own section, if any, is replaced
    pyproject.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return copy


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away redis-server for the mutants' tests; yields its URL without a database."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("redis-server did not start: is it installed (apt install redis-server)?")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def all_mutants(copy: Path, group: Group) -> dict[str, list[str]]:
    """module file → the names of its mutants, as mutmut names them (without running anything)."""
    script = (
        "import glob, json, sys\n"
        "from pathlib import Path\n"
        "from mutmut.mutation.file_mutation import mutate_file_contents\n"
        "from mutmut.utils.format_utils import get_mutant_name\n"
        "found = {}\n"
        "for pattern in sys.argv[1:]:\n"
        "    for file in sorted(glob.glob(pattern)):\n"
        "        if file.endswith('.py'):\n"
        "            code = Path(file).read_text(encoding='utf-8')\n"
        "            names = mutate_file_contents(file, code).mutant_names\n"
        "            found[file] = [get_mutant_name(Path(file), name) for name in names]\n"
        "print(json.dumps(found))\n"
    )
    listing = subprocess.run(
        [sys.executable, "-c", script, *group.modules], cwd=copy, check=True, capture_output=True, text=True
    ).stdout
    found: dict[str, list[str]] = json.loads(listing)
    return found


def sample(copy: Path, group: Group, *, share: float, seed: int) -> list[str]:
    """A random `share` of every module's mutants (at least one each): the module's mix, smaller."""
    chosen: list[str] = []
    draw = random.Random(seed)
    for names in all_mutants(copy, group).values():
        if names:
            chosen += draw.sample(names, max(1, round(share * len(names))))
    return sorted(chosen)


def run_mutmut(copy: Path, *, jobs: int, redis_url: str, names: list[str]) -> None:
    # mypy for mutmut's type-check filter is found on PATH, as `mypy`.
    own = ("TEST_REDIS_URL", "MONEYBIRD_TEST_REDIS_URL", "CLI_TEST_REDIS_URL", "DEMO_TEST_REDIS_URL")
    env = dict(
        {key: value for key, value in os.environ.items() if key not in own},
        PYTHONDONTWRITEBYTECODE="1",
        WOOBIRD_MAX_EXAMPLES="30",  # property tests draw 30 examples per mutant (tests/examples.py)
        TEST_REDIS_SERVER=redis_url,
        PATH=f"{MUTMUT.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    started = time.monotonic()
    with (copy / "mutmut.log").open("wb") as log:
        result = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(jobs), *names],
            cwd=copy,
            env=env,
            stdout=log,
            stderr=log,
        )
    if result.returncode != 0:
        tail = (copy / "mutmut.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"mutmut failed in {copy} (exit {result.returncode}):\n{tail}")
    print(f"  {copy.name}: mutmut ran for {(time.monotonic() - started) / 60:.1f} min", flush=True)


def status_names() -> dict[int | None, str]:
    from mutmut.stats import status_by_exit_code

    return dict(status_by_exit_code)


def outcomes(copy: Path) -> dict[str, dict[str, str]]:
    """module → mutant name → 'killed', 'survived' or 'not run', from mutmut's .meta files."""
    names = status_names()
    found: dict[str, dict[str, str]] = {}
    for meta in sorted((copy / "mutants").rglob("*.py.meta")):
        module = meta.relative_to(copy / "mutants").as_posix().removesuffix(".meta")
        data = json.loads(meta.read_text(encoding="utf-8"))
        for mutant, code in data.get("exit_code_by_key", {}).items():
            status = names.get(code, "suspicious")
            if status in KILLED:
                found.setdefault(module, {})[mutant] = "killed"
            elif status in SURVIVED:
                found.setdefault(module, {})[mutant] = "survived"
            else:
                found.setdefault(module, {})[mutant] = "not run"
    return found


def diffs(copy: Path, mutants: list[str]) -> dict[str, str]:
    """Each mutant's change as `-`/`+` lines, read by mutmut in one process (`mutmut show` each)."""
    script = (
        "import json, sys\n"
        "from mutmut.__main__ import find_mutant\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "names = json.loads(sys.stdin.read())\n"
        "print(json.dumps({n: get_diff_for_mutant(n, path=find_mutant(n).path) for n in names}))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=copy, input=json.dumps(mutants), capture_output=True, text=True
    )
    if shown.returncode != 0:
        return dict.fromkeys(mutants, "(mutmut could not show it)")
    found: dict[str, str] = json.loads(shown.stdout.strip().splitlines()[-1])
    return {
        mutant: "\n".join(
            line for line in text.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
        )
        for mutant, text in found.items()
    }


def chosen_mutants(copy: Path, group: Group, args: argparse.Namespace) -> list[str] | None:
    """The mutants to run by name; [] when there is nothing to run, None for mutmut's own choice."""
    if args.survivors:
        return [
            m
            for found in outcomes(copy).values()
            for m, outcome in found.items()
            if outcome == "survived" and (not args.only or any(fnmatch.fnmatch(m, g) for g in args.only))
        ]
    if args.sample is not None:
        done = {
            m for found in outcomes(copy).values() for m, outcome in found.items() if outcome != "not run"
        }
        return [m for m in sample(copy, group, share=args.sample, seed=args.seed) if m not in done]
    return list(args.only) or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "groups", nargs="*", metavar="GROUP", help=f"any of {', '.join(GROUPS)} (default: all)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants at once (their tests share one Redis)")
    parser.add_argument("--report-only", action="store_true", help="summarise the last run again")
    parser.add_argument("--fresh", action="store_true", help="forget every verdict of the last run")
    parser.add_argument("--survivors", action="store_true", help="run only the last run's survivors again")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB", help="mutant names to run")
    parser.add_argument(
        "--sample", type=float, metavar="SHARE", help="run this share of each module's mutants"
    )
    parser.add_argument("--seed", type=int, default=12, help="the random sample's seed")
    args = parser.parse_args()
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    if args.sample is not None and not 0 < args.sample <= 1:
        parser.error("--sample is a share of the mutants, more than 0 and at most 1")
    chosen = args.groups or list(GROUPS)
    rows: list[tuple[str, str, Counter[str]]] = []
    survivors: list[str] = []
    for name in chosen:
        group = GROUPS[name]
        copy = WORK / name
        if not args.report_only:
            print(
                f"== {name}: mutating {', '.join(group.modules)} against {' '.join(group.tests)}", flush=True
            )
            prepare(name, group, fresh=args.fresh)
            names = chosen_mutants(copy, group, args)
            if names == []:
                print(f"  {name}: no mutant to run", flush=True)
            else:
                with private_redis() as redis_url:
                    run_mutmut(copy, jobs=args.jobs, redis_url=redis_url, names=names or [])
        found = outcomes(copy)
        for module, results in found.items():
            rows.append((name, module, Counter(results.values())))
        surviving = sorted(
            m for results in found.values() for m, outcome in results.items() if outcome == "survived"
        )
        for mutant, change in diffs(copy, surviving).items() if surviving else ():
            survivors.append(f"### {mutant}\n\n```diff\n{change}\n```\n")
    table = [
        "| group | module | killed | survived | not run | killed % of run |",
        "|---|---|---|---|---|---|",
    ]

    def line(name: str, module: str, counts: Counter[str]) -> str:
        killed, survived = counts["killed"], counts["survived"]
        share = f"{killed / (killed + survived):.1%}" if killed + survived else "—"
        return f"| {name} | {module} | {killed} | {survived} | {counts['not run']} | {share} |"

    table += [line(name, module, counts) for name, module, counts in rows]
    for name in chosen:
        together = sum((counts for group, _, counts in rows if group == name), Counter[str]())
        table.append(line(f"**{name}**", f"all ({GROUPS[name].goal:.0%} goal)", together))
    print("\n".join(table))
    WORK.mkdir(exist_ok=True)
    report = WORK / "report.md"
    report.write_text(
        "# Mutation testing\n\n"
        + "\n".join(table)
        + f"\n\n## Surviving mutants ({len(survivors)})\n\n"
        + "\n".join(survivors),
        encoding="utf-8",
    )
    print(f"report with every survivor: {report.relative_to(REPO)}")


if __name__ == "__main__":
    main()
