"""The admin API's users of the console and of this API (``starter.web.admin_users``, as
``cartkeeper users list|add|passwd|remove``). Admins only: a viewer is refused even the
list (403 ``forbidden``).

    GET    /api/v1/admin/users                       every user, never a password
    POST   /api/v1/admin/users                       add one (201)
    PUT    /api/v1/admin/users/{username}/password   a new password; their sessions end
    DELETE /api/v1/admin/users/{username}            remove one; their sessions end

**Passwords are never kept in the clear, nor as a quick hash.** Only their argon2 hash
is stored (``admin_users``). An ``Idempotency-Key`` keeps a fingerprint of the request:
for these routes the password in it is replaced by an HMAC with the deployment's secret
key, so the idempotency records hold no hash of a password that could be guessed at
offline. Answers hold a user's name, role and times, never a password or its hash.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from starter.web import admin_users
from starter.web.admin_api_auth import Caller
from starter.web.admin_api_calls import (
    PREFIX,
    AdminCall,
    JsonBody,
    Reader,
    Writer,
    admin_router,
    answers,
)
from starter.web.admin_auth import keys_of
from starter.web.admin_users import Account
from starter.web.api_errors import ApiError, WebErrorCode

log = logging.getLogger("cartkeeper.web.admin_api")


async def admins_only(account: Caller) -> Account:
    """The calling user, who must be an admin (reads too)."""
    if not account.can_act:
        raise ApiError(
            WebErrorCode.FORBIDDEN,
            f"{account.username} is a viewer: only an admin can see or change users",
        )
    return account


router = admin_router("admin: users")
router.dependencies.append(Depends(admins_only))

#: the reads (``GET``) that refuse viewers
ADMIN_ONLY_READS = frozenset({f"{PREFIX}/users"})

Username = Annotated[
    str, Path(max_length=100, description="The user's name (any case).", examples=["vic"])
]
_USER_EXAMPLE = {
    "username": "vic",
    "role": "viewer",
    "created_at": "2026-11-30T09:00:00+00:00",
    "updated_at": "2026-11-30T09:00:00+00:00",
}


class NewUser(JsonBody):
    username: str = Field(
        description="1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or"
        " digit; kept in lower case."
    )
    password: str = Field(description="8-1024 characters.")
    role: str = Field(default=admin_users.ADMIN, description="`admin` acts, `viewer` reads.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "vic", "password": "a long passphrase", "role": "viewer"}]
        }
    )


class NewPassword(JsonBody):
    password: str = Field(description="8-1024 characters.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "another passphrase"}]})


def user_json(account: Account) -> dict[str, Any]:
    return {
        "username": account.username,
        "role": account.role,
        "created_at": account.created_at.isoformat(),
        "updated_at": account.updated_at.isoformat(),
    }


def fingerprint(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the idempotency record's digest takes it: the password as an HMAC."""
    password = body.get("password")
    if not isinstance(password, str):
        return body
    return {**body, "password": keys_of(request).token("admin-api-password", password)}


@router.get(
    "/users",
    summary="List users",
    description="Every user of the console and of this API by name, with their role and"
    " times; never a password or its hash. Admins only (a viewer: 403 `forbidden`).",
    responses=answers("The users", {"users": [_USER_EXAMPLE]}),
)
async def list_users(call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        return {"users": [user_json(a) for a in await admin_users.list_users(call.sessions)]}

    return await call.read(work)


@router.post(
    "/users",
    status_code=201,
    summary="Add a user",
    description="A new user (as `cartkeeper users add`): `admin` acts, `viewer` reads."
    " Refused: `user_exists` 409; `invalid_username`, `invalid_password`, `invalid_role`"
    " 422.",
    responses=answers("The new user", _USER_EXAMPLE, 201),
)
async def add_user(call: Writer, body: NewUser) -> Response:
    async def work() -> dict[str, Any]:
        account = await admin_users.add_user(
            call.sessions, body.username, body.password, role=body.role, now=call.context.now()
        )
        log.info("%s added user %s (%s)", call.username, account.username, account.role)
        return user_json(account)

    return await _write(call, body.model_dump(mode="json"), work, status=201)


@router.put(
    "/users/{username}/password",
    summary="Set a user's password",
    description="As `cartkeeper users passwd`: every session of the user ends (the"
    " console's; this API takes only the new password from now). 404 `user_not_found`;"
    " 422 `invalid_password`, `invalid_username`.",
    responses=answers("The user", _USER_EXAMPLE),
)
async def set_password(username: Username, call: Writer, body: NewPassword) -> Response:
    async def work() -> dict[str, Any]:
        account = await admin_users.change_password(
            call.sessions, username, body.password, now=call.context.now()
        )
        log.info("%s set the password of user %s", call.username, account.username)
        return user_json(account)

    return await _write(call, body.model_dump(mode="json"), work)


@router.delete(
    "/users/{username}",
    summary="Remove a user",
    description="As `cartkeeper users remove`: their sessions end at their next request;"
    " carts' journals keep their name. 404 `user_not_found`; 409 `last_admin` (the only"
    " admin: add another first); 422 `invalid_username`.",
    responses=answers("The removed user's name", {"username": "vic", "removed": True}),
)
async def remove_user(username: Username, call: Writer) -> Response:
    async def work() -> dict[str, Any]:
        name = admin_users.check_username(username)
        await admin_users.remove_user(call.sessions, name)
        log.info("%s removed user %s", call.username, name)
        return {"username": name, "removed": True}

    return await call.write(None, work)


async def _write(
    call: AdminCall,
    body: dict[str, Any],
    work: Callable[[], Awaitable[Any]],
    *,
    status: int = 200,
) -> Response:
    return await call.write(fingerprint(call.request, body), work, status=status)
