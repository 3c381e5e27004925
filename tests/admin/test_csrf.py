"""Every form post under /admin refuses a missing or wrong CSRF token, and declares the one check.

The routes are read from the app itself, so a form route added later is covered without being
listed here; only the sign-in form (there is no session yet to tie a token to) is exempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.admin.auth import COOKIE_NAME, csrf_token
from app.admin.guard import CsrfChecked
from app.main import create_app
from app.settings import Settings
from tests.admin.conftest import sign_in

# Forms a browser posts before signing in: the sign-in itself, and the header's language switch (on
# the sign-in page too), which acts on no session and sets only the browser's own language cookie.
NO_SESSION_YET = frozenset({"/admin/login", "/admin/language"})
REFUSAL = "the form is stale or was not sent from the"


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI 0.165 keeps an included router whole (its routes carry the router's prefix).
        included: APIRouter | None = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def form_routes(app: FastAPI) -> list[APIRoute]:
    routes = [
        route
        for route in _api_routes(app.routes)
        if "POST" in (route.methods or ())
        and route.path.startswith("/admin")
        and route.path not in NO_SESSION_YET
    ]
    assert len(routes) >= 12, [route.path for route in routes]  # a list that missed the routes proves nothing
    return routes


def _checks(dependant: Dependant) -> bool:
    return isinstance(dependant.call, CsrfChecked) or any(_checks(sub) for sub in dependant.dependencies)


def _url(route: APIRoute) -> str:
    return re.sub(r"\{[^}]+\}", "1", route.path)


def test_every_form_route_declares_the_csrf_check(settings: Settings) -> None:
    unchecked = [route.path for route in form_routes(create_app(settings)) if not _checks(route.dependant)]
    assert not unchecked, f"form routes without CsrfChecked: {unchecked}"


async def test_every_form_route_refuses_a_missing_or_wrong_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_in(client, settings)
    wrong = csrf_token(settings, "another session")
    app: FastAPI = client._transport.app  # type: ignore[attr-defined]
    for route in form_routes(app):
        for form in ({}, {"csrf": ""}, {"csrf": wrong}):
            response = await client.post(_url(route), data=form)
            assert response.status_code == 403, (route.path, form, response.status_code)
            assert REFUSAL in response.text, (route.path, form)


async def test_the_right_token_passes_the_check(client: httpx.AsyncClient, settings: Settings) -> None:
    await sign_in(client, settings)
    response = await client.post(
        "/admin/findings/987654/done", data={"csrf": csrf_token(settings, client.cookies[COOKIE_NAME])}
    )
    assert response.status_code == 404  # past the check, to the route's own answer
