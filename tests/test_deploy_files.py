"""The VPS deployment (docker-compose.yml) runs what the Procfile runs, restarts what stops, checks what
it starts, and lets nothing but Caddy be reached from outside."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.constants import WORKER_JOB_COMPLETION_WAIT_SECONDS
from app.settings import REPO_ROOT

APP_SERVICES = ("migrate", "web", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return document


def _procfile() -> dict[str, str]:
    lines = (REPO_ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _words(command: str) -> str:
    return " ".join(command.replace("$$", "$").split())


def test_the_processes_run_the_procfiles_commands(compose: dict[str, Any]) -> None:
    procfile = _procfile()
    services = compose["services"]
    assert _words(services["worker"]["command"]) == procfile["worker"]
    assert _words(services["migrate"]["command"]) == procfile["release"]
    # The web process through a shell, for $PORT, as the Dockerfile's CMD runs it.
    assert _words(services["web"]["command"]) == f'sh -c "exec {procfile["web"]}"'


def test_every_long_running_service_restarts_and_is_checked(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            assert service["restart"] == "no"  # it runs once, before web and worker
            continue
        assert service["restart"] == "unless-stopped", name
        if name != "caddy":
            assert service["healthcheck"]["test"], name


def test_web_and_worker_start_after_the_database_is_migrated(compose: dict[str, Any]) -> None:
    for name in ("web", "worker"):
        needs = compose["services"][name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"


def test_only_caddy_is_reachable_from_outside(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"caddy"}
    assert re.search(r"--to web:8000\b", compose["services"]["caddy"]["command"])
    # So the one forwarded hop web believes is Caddy's.
    assert compose["services"]["web"]["environment"]["TRUSTED_PROXY"] == "heroku"


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert not {"ADMIN_TOKEN", "SECRET_KEY", "WOOCOMMERCE_CONSUMER_SECRET"} & set(environment)
        assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]  # from .env, refusing when unset
        assert compose["services"][name]["env_file"] == ".env"


def test_the_worker_has_time_to_finish_its_bookings(compose: dict[str, Any]) -> None:
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) > WORKER_JOB_COMPLETION_WAIT_SECONDS


def test_the_readme_shows_the_compose_deployment() -> None:
    readme = Path(REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker compose up -d" in readme
    assert "WOOBIRD_DOMAIN" in readme
