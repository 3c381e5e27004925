"""The shape of the code: no import cycle in app/, and the sandbox behind its boundary.

The import graph comes from grimp, which reads every import statement of every module — at module
level and inside functions — so a cycle hidden by a function-local import counts. Imports under
`if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import graphlib

import grimp
import pytest

SANDBOX = "app.sandbox"
# Who may import the sandbox from the product: the CLI's way into the demo. Tests and bench/
# scripts are outside app/ and may use it freely.
SANDBOX_IMPORTERS = frozenset({"app.cli.demo"})
# The processes a deployment runs: they must never load the sandbox, not even through a chain.
PROCESSES = ("app.main", "workers.settings")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    built = grimp.build_graph("app", "workers", cache_dir=None, exclude_type_checking_imports=True)
    # A graph that missed the code would prove nothing.
    assert {"app.sandbox.demo", "app.sync.orders", "workers.settings"} <= built.modules
    return built


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
