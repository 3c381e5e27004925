"""The commands' way into the sandbox demo, and the only product module that imports `app.sandbox`
(tests/test_layout.py holds it to that).

`woobird run` without accounts runs the demo; `status` and `report` in a second terminal read the
running demo's ledger; `plan` without `--reference` plans against the demo's Moneybird
administration. The sandbox is imported only when one of these needs it, and it is a feature of a
clone: the Docker image leaves app/sandbox/ out (.dockerignore), so there these say so instead.
"""

from __future__ import annotations

import importlib.util

from app.cli.support import console, fail, settings_or_exit
from app.i18n import translate
from app.invoicing.reference import AdministrationReference
from app.settings import Settings

NOT_SHIPPED = (
    "the sandbox demo comes with a clone of the repository (git clone, then make run), not with this "
    "installation; set the shop's and Moneybird's accounts to run woobird for real"
)


def sandbox_shipped() -> bool:
    """Whether app/sandbox/ is here: in a clone it is, in the Docker image it is not."""
    return importlib.util.find_spec("app.sandbox") is not None


def run_sandbox() -> int:
    """Web + worker + the fake shop and Moneybird, until Ctrl-C: the exit status."""
    if not sandbox_shipped():
        fail(NOT_SHIPPED)
    from app.sandbox.demo import run_sandbox as run_demo

    return run_demo()


def ledger_settings() -> Settings:
    """The settings, or — with no accounts configured while `woobird run` keeps a sandbox — the
    sandbox's ledger and queue, so `status` and `report` in a second terminal show the demo."""
    settings = settings_or_exit()
    if not sandbox_shipped():
        return settings
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
    if not sandbox_shipped():
        fail(f"{NOT_SHIPPED}; or give the administration's reference data with --reference")
    from app.sandbox.administration import sandbox_reference

    return sandbox_reference()
