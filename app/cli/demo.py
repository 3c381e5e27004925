"""The commands' way into the sandbox demo, and the only product module that imports `app.sandbox`
(tests/test_layout.py holds it to that).

`woobird run` without accounts runs the demo; `status` and `report` in a second terminal read the
running demo's ledger; `plan` without `--reference` plans against the demo's Moneybird
administration. The sandbox is imported only when one of these needs it.
"""

from __future__ import annotations

from app.cli.support import console, settings_or_exit
from app.i18n import translate
from app.invoicing.reference import AdministrationReference
from app.settings import Settings


def run_sandbox() -> int:
    """Web + worker + the fake shop and Moneybird, until Ctrl-C: the exit status."""
    from app.sandbox.demo import run_sandbox as run_demo

    return run_demo()


def ledger_settings() -> Settings:
    """The settings, or — with no accounts configured while `woobird run` keeps a sandbox — the
    sandbox's ledger and queue, so `status` and `report` in a second terminal show the demo."""
    settings = settings_or_exit()
    from app.sandbox.demo import sandbox_settings_overrides

    overrides = sandbox_settings_overrides()
    if not overrides:
        return settings
    console.print(
        "[bold magenta]SANDBOX[/] —",
        translate(settings.language, "no accounts are configured: reading the sandbox demo's ledger"),
    )
    return settings.model_copy(update=overrides)


def demo_reference() -> AdministrationReference:
    """The reference data of a fresh Dutch Moneybird administration, as the demo's Moneybird has it."""
    from app.sandbox.administration import sandbox_reference

    return sandbox_reference()
