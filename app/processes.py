"""Running woobird's processes on one machine: the Procfile's web and worker under honcho.

`woobird run` starts them for real accounts, the sandbox demo starts them beside the fakes; on
Heroku and Fly the platform reads the same Procfile, so a laptop runs what production runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.settings import REPO_ROOT


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for web and worker: ours, plus the venv's bin on PATH (uvicorn, arq)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def procfile_commands() -> dict[str, str]:
    from honcho.environ import parse_procfile

    procfile = parse_procfile((REPO_ROOT / "Procfile").read_text(encoding="utf-8"))
    return {name: str(command) for name, command in procfile.processes.items()}


def start_processes(
    env: dict[str, str], *, names: tuple[str, ...], cwd: Path, extra: dict[str, str] | None = None
) -> int:
    """Run the Procfile's processes (and any extra commands) under honcho until one stops.

    `cwd` decides which .env file the processes read: the one `run` looked at, or (sandbox) none.
    """
    from honcho.manager import Manager

    commands = procfile_commands()
    manager = Manager()
    for name in names:
        manager.add_process(name, commands[name], env=env, cwd=str(cwd))
    for name, command in (extra or {}).items():
        manager.add_process(name, command, env=env, cwd=str(cwd))
    manager.loop()
    return int(manager.returncode or 0)
