"""The admin console's foundation on SQLite and PostgreSQL: the user store (argon2
hashes, rehash, epochs), signing in and out, the session cookie and its flags, CSRF on
every form, the sign-in rate limit, and every ``/admin`` route refusing anyone not signed
in, and viewers acting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import func, select, update

from activities.db import write_session
from activities.settings import Settings
from activities.web_models import AdminUser, LoginAttempt
from starter.web import admin_users
from starter.web.admin_auth import (
    MAX_FAILURES_PER_ADDRESS,
    MAX_FAILURES_PER_NAME,
    SESSION_COOKIE,
    SESSION_LIFETIME,
)
from starter.web.admin_users import UserRefused
from starter.web.app import create_app
from tests.admin_fixtures import (
    NOW,
    PASSWORD,
    Clock,
    admin_routes,
    browser,
    csrf_of,
    filled,
    page_token,
    sign_in,
)
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_links import FakeSignaller

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def make_app(db: ScratchDatabase, tmp_path: Path, clock: Clock, **settings: Any) -> FastAPI:
    return create_app(
        Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
            secret_key=SecretStr("s" * 40),
            **settings,
        ),
        signaller=FakeSignaller(),
        session_factory=db.session_factory,
        now=clock,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(db: ScratchDatabase, tmp_path: Path, clock: Clock) -> FastAPI:
    await admin_users.add_user(db.session_factory, "ann", PASSWORD, role="admin", now=NOW)
    await admin_users.add_user(db.session_factory, "vic", PASSWORD, role="viewer", now=NOW)
    return make_app(db, tmp_path, clock)


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, Any]:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            morsel = SimpleCookie(header)[name]
            return {key: morsel[key] for key in morsel if morsel[key]} | {"value": morsel.value}
    raise AssertionError(f"no {name} cookie set: {response.headers.get_list('set-cookie')}")


# --------------------------------------------------------------------------- the user store


async def test_users_are_added_listed_and_verified(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    added = await admin_users.add_user(sessions, "Ann.Admin", PASSWORD, role="admin", now=NOW)
    assert (added.username, added.role) == ("ann.admin", "admin")
    await admin_users.add_user(sessions, "bob", PASSWORD, role="viewer", now=NOW)
    assert [(u.username, u.role) for u in await admin_users.list_users(sessions)] == [
        ("ann.admin", "admin"),
        ("bob", "viewer"),
    ]
    async with sessions() as session:
        stored = await session.scalar(
            select(AdminUser.password_hash).where(AdminUser.username == "bob")
        )
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert (await admin_users.verify_password(sessions, "ANN.ADMIN", PASSWORD)) == added
    assert await admin_users.verify_password(sessions, "ann.admin", PASSWORD + "x") is None
    assert await admin_users.verify_password(sessions, "nobody", PASSWORD) is None
    assert await admin_users.verify_password(sessions, "not a name!", PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "password", "role", "code"),
    [
        ("", PASSWORD, "admin", "invalid_username"),
        ("-ann", PASSWORD, "admin", "invalid_username"),
        ("ann smith", PASSWORD, "admin", "invalid_username"),
        ("a" * 65, PASSWORD, "admin", "invalid_username"),
        ("ann<b>", PASSWORD, "admin", "invalid_username"),
        ("ann", "short", "admin", "invalid_password"),
        ("ann", " " * 12, "admin", "invalid_password"),
        ("ann", "x" * 1025, "admin", "invalid_password"),
        ("ann", PASSWORD, "root", "invalid_role"),
    ],
)
async def test_invalid_users_are_refused(
    db: ScratchDatabase, username: str, password: str, role: str, code: str
) -> None:
    with pytest.raises(UserRefused) as refused:
        await admin_users.add_user(db.session_factory, username, password, role=role, now=NOW)
    assert refused.value.code == code
    assert await admin_users.list_users(db.session_factory) == []


async def test_the_only_admin_is_never_removed_nor_demoted(db: ScratchDatabase) -> None:
    """Else the console would have nobody who can act; with two admins removing each
    other at once, one of them stays."""
    sessions = db.session_factory
    await admin_users.add_user(sessions, "ann", PASSWORD, role="admin", now=NOW)
    await admin_users.add_user(sessions, "vic", PASSWORD, role="viewer", now=NOW)
    for call in (
        admin_users.remove_user(sessions, "ann"),
        admin_users.set_role(sessions, "ann", "viewer", now=NOW),
    ):
        with pytest.raises(UserRefused) as last:
            await call
        assert last.value.code == "last_admin"
    await admin_users.set_role(sessions, "ann", "admin", now=NOW)  # staying admin is fine
    await admin_users.remove_user(sessions, "vic")  # a viewer may go
    await admin_users.add_user(sessions, "bea", PASSWORD, role="admin", now=NOW)
    outcomes = await asyncio.gather(
        admin_users.remove_user(sessions, "ann"),
        admin_users.remove_user(sessions, "bea"),
        return_exceptions=True,
    )
    refusals = [o for o in outcomes if isinstance(o, UserRefused)]
    assert [r.code for r in refusals] == ["last_admin"], outcomes
    assert [a.role for a in await admin_users.list_users(sessions)] == ["admin"]


async def test_a_name_is_one_user_and_unknown_users_are_refused(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await admin_users.add_user(sessions, "ann", PASSWORD, now=NOW)
    with pytest.raises(UserRefused) as taken:
        await admin_users.add_user(sessions, "ANN", PASSWORD + "2", now=NOW)
    assert taken.value.code == "user_exists"
    for call in (
        admin_users.change_password(sessions, "bob", PASSWORD, now=NOW),
        admin_users.remove_user(sessions, "bob"),
    ):
        with pytest.raises(UserRefused) as missing:
            await call
        assert missing.value.code == "user_not_found"


async def test_a_new_password_grows_the_epoch_and_replaces_the_old(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    added = await admin_users.add_user(sessions, "ann", PASSWORD, now=NOW)
    changed = await admin_users.change_password(sessions, "ann", "another passphrase", now=NOW)
    assert changed.session_epoch == added.session_epoch + 1
    assert await admin_users.verify_password(sessions, "ann", PASSWORD) is None
    assert await admin_users.verify_password(sessions, "ann", "another passphrase") == changed


async def test_a_hash_with_older_parameters_is_replaced_at_sign_in(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    added = await admin_users.add_user(sessions, "ann", PASSWORD, now=NOW)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with write_session(sessions) as session:
        await session.execute(update(AdminUser).values(password_hash=weak))
    assert admin_users.hasher().check_needs_rehash(weak)
    found = await admin_users.verify_password(sessions, "ann", PASSWORD)
    # the same password: sessions go on
    assert found is not None and found.session_epoch == added.session_epoch
    async with sessions() as session:
        stored = await session.scalar(select(AdminUser.password_hash))
    assert stored is not None and stored != weak
    assert not admin_users.hasher().check_needs_rehash(stored)
    assert await admin_users.verify_password(sessions, "ann", PASSWORD) is not None


# --------------------------------------------------------------------------- signing in


async def test_sign_in_sets_a_session_cookie_and_goes_where_asked(app: FastAPI) -> None:
    async with browser(app) as client:
        response = await sign_in(client, "ann", next_path="/admin/carts?state=locked")
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/carts?state=locked"
        cookie = cookie_attributes(response, SESSION_COOKIE)
        assert cookie["httponly"] is True and cookie["samesite"] == "lax"
        assert cookie["path"] == "/admin" and "secure" not in cookie
        assert int(cookie["max-age"]) == int(SESSION_LIFETIME.total_seconds())
        dashboard = await client.get("/admin")
        assert dashboard.status_code == 200
        assert "ann" in dashboard.text and 'action="/admin/logout"' in dashboard.text
        assert "default-src 'none'" in dashboard.headers["content-security-policy"]
        assert "cdn" not in dashboard.text.lower()
        style = await client.get("/admin/assets/admin.css")
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_the_cookie_is_secure_over_https_or_behind_an_https_url(
    db: ScratchDatabase, tmp_path: Path, clock: Clock
) -> None:
    await admin_users.add_user(db.session_factory, "ann", PASSWORD, now=NOW)
    async with browser(make_app(db, tmp_path, clock), "https://testserver") as client:
        cookie = cookie_attributes(await sign_in(client, "ann"), SESSION_COOKIE)
        assert cookie["secure"] is True and cookie["httponly"] is True
        assert (await client.get("/admin")).status_code == 200
    proxied = make_app(db, tmp_path, clock, public_url="https://shop.example")
    async with browser(proxied) as client:
        response = await client.get("/admin/login")
        assert cookie_attributes(response, "cartkeeper_login")["secure"] is True


async def test_next_is_only_ever_a_path_of_the_console(app: FastAPI) -> None:
    for target in (
        "https://evil.example/admin",
        "//evil.example/admin",
        "/\\evil.example",
        "/api/v1/x",
    ):
        async with browser(app) as client:
            response = await sign_in(client, "ann", next_path=target)
            assert response.status_code == 303
            assert response.headers["location"] == "/admin", target


async def test_a_wrong_password_is_refused_without_a_session(
    app: FastAPI, db: ScratchDatabase
) -> None:
    async with browser(app) as client:
        for name in ("ann", "nobody"):
            response = await sign_in(client, name, PASSWORD + "!")
            assert response.status_code == 401
            assert "Wrong user name or password." in response.text
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
        assert (await client.get("/admin")).status_code == 303
    async with db.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(LoginAttempt)) == 2


async def test_the_sign_in_form_needs_its_own_token(app: FastAPI) -> None:
    async with browser(app) as client:
        no_form = await client.post("/admin/login", data={"username": "ann", "password": PASSWORD})
        assert no_form.status_code == 403
        await client.get("/admin/login")  # the form's cookie, but a forged token
        forged = await client.post(
            "/admin/login", data={"username": "ann", "password": PASSWORD, "csrf_token": "x" * 64}
        )
        assert forged.status_code == 403
        assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
        assert (await client.get("/admin")).status_code == 303


async def test_failed_sign_ins_are_limited_per_name_and_per_address(
    app: FastAPI, clock: Clock
) -> None:
    async with browser(app) as client:
        for name in ("ann", "nobody"):  # an unknown name is limited the same way
            for _ in range(MAX_FAILURES_PER_NAME):
                assert (await sign_in(client, name, "wrong password")).status_code == 401
            limited = await sign_in(client, name, PASSWORD)  # even the right password
            assert limited.status_code == 429, name
            assert "too_many_login_attempts" in limited.text
            assert limited.headers["retry-after"] == "900"
            assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
    async with browser(app) as client:
        # another name from the same address is still allowed, up to the address's limit
        assert (await sign_in(client, "vic")).status_code == 303
    async with browser(app) as client:
        clock.advance(timedelta(minutes=16))
        assert (await sign_in(client, "ann")).status_code == 303


async def test_a_parallel_burst_of_sign_ins_is_limited_too(app: FastAPI) -> None:
    """Each attempt is recorded before its password is checked: 30 wrong passwords at the
    same moment do not all see the count from before them."""
    async with browser(app) as client:
        form = await client.get("/admin/login")
        token = csrf_of(form.text)

        async def attempt() -> int:
            response = await client.post(
                "/admin/login",
                data={
                    "username": "ann",
                    "password": "wrong",
                    "next": "/admin",
                    "csrf_token": token,
                },
            )
            return response.status_code

        codes = await asyncio.gather(*(attempt() for _ in range(30)))
    assert codes.count(401) <= MAX_FAILURES_PER_NAME, codes
    assert codes.count(429) >= 30 - MAX_FAILURES_PER_NAME, codes


async def test_failed_sign_ins_from_one_address_are_limited(app: FastAPI) -> None:
    async with browser(app) as client:
        for i in range(MAX_FAILURES_PER_ADDRESS):
            assert (await sign_in(client, f"guess-{i}", "wrong password")).status_code == 401
        assert (await sign_in(client, "ann")).status_code == 429


# --------------------------------------------------------------------------- sessions


async def test_a_new_password_ends_older_sessions(app: FastAPI, db: ScratchDatabase) -> None:
    async with browser(app) as old, browser(app) as other:
        assert (await sign_in(old, "ann")).status_code == 303
        assert (await sign_in(other, "vic")).status_code == 303
        await admin_users.change_password(db.session_factory, "ann", "a new passphrase", now=NOW)
        ended = await old.get("/admin/carts")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/admin/login?next=/admin/carts"
        assert (await other.get("/admin")).status_code == 200  # another user's goes on
        assert (await sign_in(old, "ann")).status_code == 401
        assert (await sign_in(old, "ann", "a new passphrase")).status_code == 303
        assert (await old.get("/admin")).status_code == 200


async def test_a_removed_users_session_ends(app: FastAPI, db: ScratchDatabase) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        token = await page_token(client)
        await admin_users.add_user(db.session_factory, "bea", PASSWORD, role="admin", now=NOW)
        await admin_users.remove_user(db.session_factory, "ann")
        assert (await client.get("/admin")).status_code == 303
        gone = await client.post("/admin/logout", data={"csrf_token": token})
        assert gone.status_code == 401


async def test_signing_out_ends_a_copy_of_the_cookie(app: FastAPI) -> None:
    async with browser(app) as client, browser(app) as thief:
        assert (await sign_in(client, "ann")).status_code == 303
        thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE], path="/admin")
        assert (await thief.get("/admin")).status_code == 200
        token = await page_token(client)
        assert (await client.post("/admin/logout", data={"csrf_token": token})).status_code == 303
        assert (await thief.get("/admin")).status_code == 303


async def test_a_user_added_again_does_not_take_back_old_sessions(
    app: FastAPI, db: ScratchDatabase
) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303
        await admin_users.remove_user(db.session_factory, "vic")
        await admin_users.add_user(db.session_factory, "vic", "another passphrase", role="admin")
        assert (await client.get("/admin")).status_code == 303


async def test_odd_numbers_in_the_address_are_refused_not_failed(app: FastAPI) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        nines = "9" * 5000
        for path in (
            "/admin/carts?limit=%C2%B2",
            f"/admin/carts?limit={nines}",
            f"/admin/orders/shop-a/{nines}",
            "/admin/orders/shop-a/%C2%B2",
            f"/admin/orders?number={nines}",
            f"/admin/outbox?before={nines}",
            f"/admin/outbox/{nines}",
        ):
            response = await client.get(path)
            assert response.status_code in (200, 400, 404), (path, response.status_code)


async def test_a_session_ends_after_its_lifetime(app: FastAPI, clock: Clock) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        clock.advance(SESSION_LIFETIME - timedelta(seconds=1))
        assert (await client.get("/admin")).status_code == 200
        clock.advance(timedelta(seconds=2))
        assert (await client.get("/admin")).status_code == 303


async def test_a_changed_cookie_is_no_session(app: FastAPI) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303
        value = client.cookies[SESSION_COOKIE]
        # the same claims with the role of another user cannot be made without the key
        client.cookies.set(
            SESSION_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/admin"
        )
        assert (await client.get("/admin")).status_code == 303


async def test_sign_out_needs_the_token_and_ends_the_session(app: FastAPI) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        token = await page_token(client)
        assert (await client.post("/admin/logout")).status_code == 403
        assert (
            await client.post("/admin/logout", data={"csrf_token": "0" * 64})
        ).status_code == 403
        assert (await client.get("/admin")).status_code == 200  # nothing happened
        out = await client.post("/admin/logout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/admin/login"
        login = await client.get("/admin/login")
        assert "Signed out." in login.text
        assert (await client.get("/admin")).status_code == 303


async def test_a_token_of_another_session_is_refused(app: FastAPI) -> None:
    async with browser(app) as ann, browser(app) as vic:
        assert (await sign_in(ann, "ann")).status_code == 303
        assert (await sign_in(vic, "vic")).status_code == 303
        foreign = await page_token(vic)
        assert foreign != await page_token(ann)
        assert (await ann.post("/admin/logout", data={"csrf_token": foreign})).status_code == 403


# --------------------------------------------------------------------------- every route


async def test_every_admin_route_refuses_anyone_not_signed_in(app: FastAPI) -> None:
    routes = list(admin_routes(app))
    assert ("GET", "/admin") in routes and ("POST", "/admin/logout") in routes
    assert len([r for r in routes if r[0] == "POST"]) >= 5, routes
    async with browser(app) as client:
        for method, path in routes:
            url = filled(path)
            if method == "GET":
                response = await client.get(url, params={"q": "1"})
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"].startswith("/admin/login?next=/admin")
            else:
                response = await client.request(method, url, data={"csrf_token": "x", "note": "n"})
                assert response.status_code in (401, 403), (method, path, response.status_code)
                assert "text/html" in response.headers["content-type"]


async def test_a_viewer_reads_but_cannot_act(app: FastAPI) -> None:
    routes = list(admin_routes(app))
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303
        for method, path in routes:
            url = filled(path)
            if method == "GET":
                response = await client.get(url)  # placeholders: a page, or "not found"
                assert response.status_code in (200, 400, 404), (path, response.status_code)
            elif path != "/admin/logout":
                token = await page_token(client)
                response = await client.request(
                    method, url, data={"csrf_token": token, "note": "viewer", "status": "P"}
                )
                assert response.status_code == 403, (method, path, response.status_code)
                assert "only an admin" in response.text


async def test_an_admin_passes_the_same_routes(app: FastAPI) -> None:
    """The refusals above come from the session and the role, not from the routes."""
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        token = await page_token(client)
        for method, path in admin_routes(app):
            if method == "POST" and path != "/admin/logout":
                response = await client.post(filled(path), data={"csrf_token": token})
                # an action with nothing to act on is refused by the action (a flash on
                # the redirect, or a page), never by the console's guard, never a 500
                status = response.status_code
                assert status not in (401, 403) and status < 500, (path, status, response.text)
                if path.startswith("/admin/carts/"):  # no such cart, and no Temporal here
                    assert status == 303, (path, status)
                    assert response.headers["location"] == "/admin/carts/x-1/x-1"


async def test_the_sign_in_page_escapes_what_it_is_given(app: FastAPI) -> None:
    async with browser(app) as client:
        form = await client.get("/admin/login", params={"next": '/admin/"><script>x</script>'})
        assert "<script>x" not in form.text
        response = await client.post(
            "/admin/login",
            data={"username": "<b>x</b>", "password": "p" * 9, "csrf_token": csrf_of(form.text)},
        )
        assert response.status_code == 401 and "<b>x</b>" not in response.text
