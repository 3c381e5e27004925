"""The shape of the code: no import cycle in app/, the layers kept apart, the sandbox behind its boundary.

The import graph comes from grimp, which reads every import statement of every module — at module
level, inside functions and under `if TYPE_CHECKING:` — so a cycle hidden by a function-local or a
type-only import counts: a type a lower module names from a higher one is a dependency all the same.
"""

from __future__ import annotations

import graphlib
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = "app.sandbox"
# Who may import the sandbox from the product: the CLI's way into the demo. Tests and bench/
# scripts are outside app/ and may use it freely.
SANDBOX_IMPORTERS = frozenset({"app.cli.demo"})
# The processes a deployment runs: they must never load the sandbox, not even through a chain.
PROCESSES = ("app.main", "workers.settings")
# What a package may import from the rest of app/ (its own modules always): the layers, bottom up.
# The invoice plan is pure arithmetic over an order and the administration's reference data: no
# settings, no SQL, no client, no clock; its refusals are messages (app.i18n, which imports nothing of
# app/). The schema says what is stored and nothing else.
ONLY_IMPORTS = {
    "app.invoicing": ("app.constants", "app.i18n", "app.woocommerce.models"),
    "app.schema": ("app.db", "app.constants"),
    "app.queue": ("app.constants",),
}
ABOVE_THE_VENDORS = (
    "app.booking",
    "app.runtime",
    "app.jobs",
    "app.schema",
    "app.setup",
    "app.admin",
    "app.cli",
)
# What a package must never import: the vendors' clients know nothing of the booking engine or its
# interfaces, the booking engine nothing of the dashboard or the command line.
NEVER_IMPORTS = {
    "app.moneybird": ABOVE_THE_VENDORS,
    "app.woocommerce": ABOVE_THE_VENDORS,
    "app.booking": ("app.admin", "app.cli"),
    "app.setup": ("app.admin", "app.cli"),
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    built = grimp.build_graph("app", "workers", cache_dir=None, exclude_type_checking_imports=False)
    # A graph that missed the code would prove nothing.
    assert {"app.sandbox.demo", "app.booking.orders", "workers.settings"} <= built.modules
    # …and one that left out the type-only imports would miss the cycles they close.
    assert built.get_import_details(importer="app.moneybird.reference", imported="app.moneybird.client")
    return built


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imports_of(graph: grimp.ImportGraph, package: str) -> set[tuple[str, str]]:
    """(importer, imported) for every import from inside `package` to a module of app/ outside it."""
    modules = {package, *graph.find_descendants(package)} if package in graph.modules else set()
    return {
        (importer, imported)
        for importer in modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.split(".")[0] == "app" and not _inside(imported, package)
    }


@pytest.mark.parametrize("package", sorted(ONLY_IMPORTS))
def test_a_lower_layer_imports_only_what_lies_below(graph: grimp.ImportGraph, package: str) -> None:
    allowed = ONLY_IMPORTS[package]
    imports = _imports_of(graph, package)
    assert imports or package in graph.modules, f"{package} is not in the graph"
    wrong = sorted(
        f"{importer} imports {imported} ({_line(graph, importer, imported)})"
        for importer, imported in imports
        if not any(_inside(imported, below) for below in allowed)
    )
    assert not wrong, f"{package} may import only {allowed}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(NEVER_IMPORTS))
def test_a_layer_never_imports_one_above(graph: grimp.ImportGraph, package: str) -> None:
    above = NEVER_IMPORTS[package]
    wrong = sorted(
        f"{importer} imports {imported} ({_line(graph, importer, imported)})"
        for importer, imported in _imports_of(graph, package)
        if any(_inside(imported, higher) for higher in above)
    )
    assert not wrong, f"{package} must not import {above}:\n" + "\n".join(wrong)


def _line(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)


def test_no_import_cycle_in_app(graph: grimp.ImportGraph) -> None:
    modules = {module for module in graph.modules if module.split(".")[0] == "app"}
    edges = {module: graph.find_modules_directly_imported_by(module) & modules for module in modules}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        cycle: list[str] = error.args[1]
        # graphlib lists the cycle against the direction of the imports: each one is imported by the next.
        steps = [
            f"  {importer} imports {imported} ({_line(graph, importer, imported)})"
            for imported, importer in zip(cycle, cycle[1:], strict=False)
        ]
        pytest.fail("import cycle in app/:\n" + "\n".join(steps))


def test_only_the_cli_demo_imports_the_sandbox(graph: grimp.ImportGraph) -> None:
    sandbox = {SANDBOX, *graph.find_descendants(SANDBOX)}
    importers: dict[str, set[str]] = {}
    for module in graph.modules - sandbox:
        imported = graph.find_modules_directly_imported_by(module) & sandbox
        if imported:
            importers[module] = imported
    outside = {
        f"{importer} imports {target} ({_line(graph, importer, target)})"
        for importer, targets in importers.items()
        if importer not in SANDBOX_IMPORTERS
        for target in targets
    }
    assert not outside, "only app.cli.demo may import the sandbox:\n" + "\n".join(sorted(outside))
    stale = SANDBOX_IMPORTERS - set(importers)
    assert not stale, f"these no longer import the sandbox; drop them from SANDBOX_IMPORTERS: {stale}"


@pytest.mark.parametrize("process", PROCESSES)
def test_web_and_worker_never_load_the_sandbox(graph: grimp.ImportGraph, process: str) -> None:
    chain = graph.find_shortest_chain(importer=process, imported=SANDBOX, as_packages=True)
    assert chain is None, f"{process} reaches the sandbox: {' → '.join(chain or ())}"


def test_the_readmes_code_map_names_files_that_exist() -> None:
    """Each file the README's code map names is there: a bare name is in the folder named before it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Code map\n", 1)[1].split("\n## ", 1)[0]
    named = 0
    for row in (line for line in section.splitlines() if line.startswith("| ") and "`" in line):
        folder = ""
        for token in re.findall(r"`([^`]+)`", row):
            if "/" in token:
                path = token
                folder = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
            elif token.endswith(".py"):
                path = folder + token
            else:
                continue
            assert (ROOT / path).exists(), f"the code map names {path}, which does not exist ({row})"
            named += 1
    assert named > 60  # a map that lost its rows would prove nothing
