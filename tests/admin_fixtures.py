"""The admin console under test: the app on a read model, signing in as a browser does
(the sign-in form's cookie and token), and the CSRF token of a signed-in page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from starter.web.admin_pages import PUBLIC

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
KEY = "admin-test-key-" + "k" * 40
PASSWORD = "correct horse battery"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    """The app's clock (``create_app(now=...)``); tests move it."""

    at: datetime = field(default=NOW)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


@asynccontextmanager
async def browser(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does (no redirects followed)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, next_path: str = "/admin"
) -> httpx.Response:
    """Open the sign-in form and post it (the response: 303 when it worked)."""
    form = await client.get("/admin/login", params={"next": next_path})
    assert form.status_code == 200, form.text
    return await client.post(
        "/admin/login",
        data={
            "username": username,
            "password": password,
            "next": next_path,
            "csrf_token": csrf_of(form.text),
        },
    )


async def page_token(client: httpx.AsyncClient, path: str = "/admin") -> str:
    """The CSRF token of a signed-in page (its sign-out form has one)."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def admin_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route under ``/admin`` (those added later too), the
    public ones (the sign-in form, the style sheet) left out."""
    for route in iter_route_contexts(app.routes):
        path = route.path
        if not path or not (path == "/admin" or path.startswith("/admin/")):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD" and (method, path) not in PUBLIC:
                yield method, path


def filled(path: str, **values: Any) -> str:
    """``path`` with each ``{name}`` replaced (by ``values[name]``, else ``x-1``)."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: str(values.get(m.group(1), "x-1")), path)
