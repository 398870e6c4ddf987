"""The admin JSON API's authentication (``starter.web.admin_api_auth``) on SQLite and
PostgreSQL: HTTP Basic with an admin user's name and password, 401 with the Basic
challenge whatever is wrong, the console's sign-in rate limit (429), viewers reading but
never writing (403), verified credentials remembered briefly and forgotten at a password
change; and a walk over every ``/api/v1/admin`` route of the app (those added later
too): without credentials each is 401, as a viewer each write is 403 (and the reads
that are an admin's only, the users, too)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr
from sqlalchemy import func, select

from activities.settings import Settings
from activities.web_models import LoginAttempt
from starter.web import admin_users
from starter.web.admin_api_auth import VERIFIED_FOR
from starter.web.admin_api_users import ADMIN_ONLY_READS
from starter.web.admin_auth import MAX_FAILURES_PER_NAME
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD, Clock
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
PREFIX = "/api/v1/admin"
CHALLENGE = 'Basic realm="cartkeeper admin"'
#: a value for each path parameter of the admin API's routes
PATH_VALUES = {
    "shop_id": "shop-1",
    "cart_id": "cart-1",
    "number": "1",
    "letter": "G",
    "method_id": "courier",
    "sku": "mug",
    "prefix": "0123456789ab",
}


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class AdminApi:
    app: FastAPI
    http: httpx.AsyncClient
    sessions: Any
    clock: Clock


def app_on(database: ScratchDatabase, tmp_path: Path, clock: Clock, **changes: Any) -> FastAPI:
    async def no_temporal() -> Any:
        raise ConnectionRefusedError("these tests need no Temporal")

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("e" * 40),
        **changes,
    )
    return create_app(
        settings,
        temporal_client_factory=no_temporal,
        session_factory=database.session_factory,
        now=clock,
    )


@asynccontextmanager
async def client_of(app: FastAPI, address: str = "10.1.2.3") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@asynccontextmanager
async def admin_api_on(
    database: ScratchDatabase, tmp_path: Path, **changes: Any
) -> AsyncIterator[AdminApi]:
    """The app on ``database`` (no Temporal; ``changes`` to its settings), with the admin
    ``ann`` and the viewer ``vic``."""
    clock = Clock()
    app = app_on(database, tmp_path, clock, **changes)
    await admin_users.add_user(database.session_factory, "ann", PASSWORD, role="admin")
    await admin_users.add_user(database.session_factory, "vic", PASSWORD, role="viewer")
    async with client_of(app) as http:
        yield AdminApi(app, http, database.session_factory, clock)


@pytest.fixture
async def api(db: ScratchDatabase, tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api_on(db, tmp_path) as made:
        yield made


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


async def failures_of(sessions: Any, username: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == username)
        )
    return int(count or 0)


# --------------------------------------------------------------------------- credentials


async def test_missing_or_wrong_credentials_are_401_with_the_basic_challenge(
    api: AdminApi,
) -> None:
    url = f"{PREFIX}/shops/shop-1/statuses"
    ok = await api.http.get(url, headers=basic("ann"))
    assert ok.status_code == 200, ok.text
    assert (await api.http.get(url, headers=basic("ANN"))).status_code == 200  # names: any case

    answers = []
    for headers in (
        {},
        {"Authorization": "Bearer ck_0123456789ab_" + "x" * 43},
        {"Authorization": "Basic"},
        {"Authorization": "Basic not base64 at all!"},
        {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"ann:\xff\xfe").decode()},
        basic("ann\x00", "wrong password"),  # a name no user has, nor PostgreSQL stores
        basic("ann", "wrong password"),
        basic("nobody", "wrong password"),
        basic("", ""),
    ):
        response = await api.http.get(url, headers=headers)
        refused(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"] == CHALLENGE, headers
        answers.append(response.json()["error"]["message"])
    # a wrong password and an unknown user are told apart by nothing
    assert answers[-3] == answers[-2]
    assert await failures_of(api.sessions, "ann") == 1
    assert await failures_of(api.sessions, "ann?") == 1
    assert await failures_of(api.sessions, "nobody") == 1


async def test_the_sign_in_limit_is_the_consoles(api: AdminApi) -> None:
    url = f"{PREFIX}/api-keys"
    for _ in range(MAX_FAILURES_PER_NAME):
        refused(
            await api.http.get(url, headers=basic("ann", "not the password")),
            401,
            "unauthenticated",
        )
    limited = await api.http.get(url, headers=basic("ann"))  # the right password, too late
    refused(limited, 429, "too_many_login_attempts")
    assert int(limited.headers["Retry-After"]) > 0
    # the refused attempt counts too (an attempt is recorded before it is judged)
    assert await failures_of(api.sessions, "ann") == MAX_FAILURES_PER_NAME + 1
    # the console counts them too
    async with client_of(api.app, "10.1.2.3") as browser:
        form = await browser.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        page = await browser.post(
            "/admin/login",
            data={"username": "ann", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert page.status_code == 429
    # another user from elsewhere is not limited; the window passes
    async with client_of(api.app, "10.9.9.9") as other:
        assert (await other.get(url, headers=basic("vic"))).status_code == 200
    api.clock.advance(timedelta(minutes=16))
    assert (await api.http.get(url, headers=basic("ann"))).status_code == 200
    assert await failures_of(api.sessions, "ann") == 0  # a success clears them


async def test_viewers_read_and_admins_write(api: AdminApi) -> None:
    url = f"{PREFIX}/shops/shop-1/shipping-methods"
    method = {"method_id": "courier", "name": "Courier", "cost": 490, "currency": "EUR"}
    assert (await api.http.get(url, headers=basic("vic"))).status_code == 200
    refused(await api.http.post(url, json=method, headers=basic("vic")), 403, "forbidden")
    assert (await api.http.get(url, headers=basic("vic"))).json() == {"methods": []}
    made = await api.http.post(url, json=method, headers=basic("ann"))
    assert made.status_code == 201, made.text
    await admin_users.add_user(api.sessions, "bea", PASSWORD, role="admin")  # never none
    await admin_users.set_role(api.sessions, "ann", "viewer")  # read at every request
    refused(await api.http.delete(f"{url}/courier", headers=basic("ann")), 403, "forbidden")
    assert len((await api.http.get(url, headers=basic("vic"))).json()["methods"]) == 1


async def test_verified_credentials_are_remembered_until_the_password_changes(
    api: AdminApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = admin_users.verify_password

    async def counted(*args: Any, **kwargs: Any) -> Any:
        verified.append(args[1])
        return await real(*args, **kwargs)

    monkeypatch.setattr(admin_users, "verify_password", counted)
    url = f"{PREFIX}/shops/shop-1/order-numbering"
    for _ in range(5):
        assert (await api.http.get(url, headers=basic("ann"))).status_code == 200
    assert verified == ["ann"]  # one argon2 verification for the burst
    refused(await api.http.get(url, headers=basic("ann", "guess " * 2)), 401, "unauthenticated")
    assert len(verified) == 2  # a wrong password is never taken from the cache

    api.clock.advance(VERIFIED_FOR + timedelta(seconds=1))
    assert (await api.http.get(url, headers=basic("ann"))).status_code == 200
    assert len(verified) == 3  # remembered no longer than VERIFIED_FOR

    await admin_users.change_password(api.sessions, "ann", "a new long passphrase")
    refused(await api.http.get(url, headers=basic("ann")), 401, "unauthenticated")
    assert (
        await api.http.get(url, headers=basic("ann", "a new long passphrase"))
    ).status_code == 200

    await admin_users.add_user(api.sessions, "bea", PASSWORD, role="admin")  # never none
    await admin_users.remove_user(api.sessions, "ann")
    refused(
        await api.http.get(url, headers=basic("ann", "a new long passphrase")),
        401,
        "unauthenticated",
    )


# --------------------------------------------------------------------------- every route


#: reads that only Temporal can answer (there is none here)
TEMPORAL_READS = {PREFIX + "/shops/{shop_id}/digest/schedule"}


def api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route under ``/api/v1/admin``, those added later too."""
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith(PREFIX + "/"):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method, path


def filled(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "x-1"), path)


async def test_every_route_refuses_without_credentials_and_viewers_never_write(
    api: AdminApi,
) -> None:
    routes = list(api_routes(api.app))
    methods = {method for method, _path in routes}
    assert len(routes) >= 30 and {"GET", "POST", "PATCH", "PUT", "DELETE"} <= methods
    wrong = await api.http.get(f"{PREFIX}/api-keys", headers=basic("vic", "wrong password"))
    refused(wrong, 401, "unauthenticated")
    for method, path in routes:
        url = filled(path)
        anonymous = await api.http.request(method, url, json={})
        refused(anonymous, 401, "unauthenticated")
        assert anonymous.headers["WWW-Authenticate"] == CHALLENGE, (method, path)
        as_viewer = await api.http.request(method, url, headers=basic("vic"), json={})
        if method == "GET" and path in ADMIN_ONLY_READS:
            refused(as_viewer, 403, "forbidden")
        elif method == "GET" and path in TEMPORAL_READS:
            refused(as_viewer, 503, "temporal_unavailable")
        elif method == "GET":
            assert as_viewer.status_code not in (401, 403, 405), (method, path, as_viewer.text)
            assert as_viewer.status_code < 500, (method, path, as_viewer.text)
        else:
            refused(as_viewer, 403, "forbidden")
        # unreadable bodies are coded refusals, never a 500 (no Temporal here: 503 at most)
        for body in (b"not json", b"[1, 2]", b'{"unknown": true}'):
            odd = await api.http.request(
                method,
                url,
                headers={**basic("ann"), "Content-Type": "application/json"},
                content=body,
            )
            assert odd.status_code != 500, (method, path, body, odd.text)
            if odd.status_code >= 400:
                assert odd.json()["error"]["code"], (method, path, body, odd.text)


async def test_a_bad_action_is_refused_for_what_it_is_while_temporal_is_down(
    api: AdminApi,
) -> None:
    """Without Temporal an admin's action is still checked first: a bad one gets its own
    4xx (it would be refused anyway), a good one 503 ``temporal_unavailable``."""
    url = f"{PREFIX}/carts/shop-1/c-1/confirm"
    long_note = await api.http.post(url, json={"note": "x" * 1001}, headers=basic("ann"))
    control = await api.http.post(url, json={"note": "a\x1b[2J"}, headers=basic("ann"))
    status = await api.http.post(url, json={"status": "V"}, headers=basic("ann"))
    for response in (long_note, control, status):
        assert response.status_code == 422, (response.status_code, response.text)
        assert response.json()["error"]["code"] != "temporal_unavailable"
    refused(
        await api.http.post(url, json={"note": "called"}, headers=basic("ann")),
        503,
        "temporal_unavailable",
    )
