"""Who calls the admin JSON API (``/api/v1/admin``), and what they may do.

**Credentials.** Scripts and tools send HTTP Basic: an admin user's name and password
(``cartkeeper users add``), checked against the console's users (``admin_users``) under
the console's sign-in rate limit (``admin_auth.sign_in_allowed``: failures are recorded
in ``login_attempts`` per user name and per client address; past the limit the password
is not even tried: 429 ``too_many_login_attempts`` with ``Retry-After``). No credentials,
unreadable ones or a wrong name or password: 401 ``unauthenticated`` with
``WWW-Authenticate: Basic realm="cartkeeper admin"``, the same answer whether the user
exists or not.

**Roles.** ``guard`` is a dependency of every router of the API (``admin_router``): a
GET (or HEAD) needs any user, anything else the role ``admin`` (a viewer gets 403
``forbidden``). A route added later is covered without doing anything.

**Verified credentials are remembered briefly.** argon2 costs a tenth of a second on
purpose; a script's burst of calls should not pay it on every call. A successful check
is remembered in the process for ``VERIFIED_FOR`` under (user, SHA-256 of the password,
the user's ``session_epoch``). The user is still read from the database at every request
(their role, their epoch): a removed user is refused at once, and a password change
(the epoch grows) ends the remembered check. A check remembered is not a sign-in
attempt: it goes on while the name is over the limit (it proved the password before).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from starter.web import admin_users
from starter.web.admin_auth import LOGIN_WINDOW, sign_in_allowed
from starter.web.admin_users import Account
from starter.web.api_errors import ApiError, WebErrorCode
from starter.web.deps import Context, WebContext

log = logging.getLogger("cartkeeper.web.admin_api")

REALM = "cartkeeper admin"
CHALLENGE = f'Basic realm="{REALM}"'
#: how long a verified name and password are taken without hashing again
VERIFIED_FOR = timedelta(seconds=60)
#: verified credentials remembered at most (the oldest are forgotten first)
MAX_VERIFIED = 1024
#: longer ``Authorization`` values are not read (a password has at most 1024 characters)
MAX_CREDENTIALS = 4096
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``app.state``'s attribute holding the app's ``VerifiedCredentials``
STATE_ATTRIBUTE = "admin_api_verified"


@asynccontextmanager
async def database() -> AsyncIterator[None]:
    """The read model failing: 503 ``database_unavailable``, in JSON (the app's own
    handler answers the e-mail links' HTML page)."""
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        log.error("the read model is unavailable: %r", error)
        raise ApiError(
            WebErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable: try again"
        ) from None


# --------------------------------------------------------------------------- the header


def read_basic(header: str | None) -> HTTPBasicCredentials | None:
    """The name and password of an ``Authorization: Basic`` header (UTF-8), or ``None``
    when there is none or it cannot be read."""
    if not header or len(header) > MAX_CREDENTIALS:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64, or not UTF-8
        return None
    username, separator, password = decoded.partition(":")
    if not separator:
        return None
    return HTTPBasicCredentials(username=username, password=password)


class _Basic(HTTPBasic):
    """HTTP Basic as the OpenAPI document names it; read by ``read_basic`` (FastAPI's
    own answers an unreadable header with a body of its own, not the API's error)."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        return read_basic(request.headers.get("Authorization"))


_basic = _Basic(
    auto_error=False,
    realm=REALM,
    scheme_name="AdminBasic",
    description="An admin user's name and password (`cartkeeper users add`). Viewers may"
    " read (GET); every other method needs the role admin.",
)


# --------------------------------------------------------------------------- the cache


class VerifiedCredentials:
    """Credentials verified lately: (user, SHA-256 of the password, session epoch) ->
    until when they are taken without hashing. ``lifetime``: ``VERIFIED_FOR``."""

    def __init__(self, lifetime: timedelta = VERIFIED_FOR, size: int = MAX_VERIFIED) -> None:
        self.lifetime = lifetime
        self.size = size
        self._until: OrderedDict[tuple[str, str, int], datetime] = OrderedDict()

    def fresh(self, key: tuple[str, str, int], now: datetime) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if not now < until <= now + self.lifetime:  # over (or the clock went back)
            del self._until[key]
            return False
        return True

    def remember(self, key: tuple[str, str, int], now: datetime) -> None:
        self._until[key] = now + self.lifetime
        self._until.move_to_end(key)
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def __len__(self) -> int:
        return len(self._until)


def verified_credentials(request: Request) -> VerifiedCredentials:
    """The app's cache (made by ``admin_api.install``; made here if it is missing)."""
    found = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(found, VerifiedCredentials):
        found = VerifiedCredentials()
        setattr(request.app.state, STATE_ATTRIBUTE, found)
    return found


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- checks


def unauthenticated(message: str) -> ApiError:
    return ApiError(WebErrorCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": CHALLENGE})


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(
    request: Request, context: WebContext, username: str, password: str
) -> Account:
    """The user these credentials are (see the module's doc), or ``ApiError``."""
    name = username.strip()
    now = context.now()
    cache = verified_credentials(request)
    digest = _digest(password)
    account = await admin_users.get_user(context.sessions, name)
    if account is not None and cache.fresh((account.username, digest, account.session_epoch), now):
        return account
    address = _client_address(request)
    # the limits count a name that could never be a user too (control characters, which
    # PostgreSQL cannot store, as "?")
    counted = "".join(char if char.isprintable() else "?" for char in name)
    if not await sign_in_allowed(context, counted, address):
        log.warning("admin API: too many failed sign-ins for %r or from %s", counted[:64], address)
        minutes = int(LOGIN_WINDOW.total_seconds() // 60)
        raise ApiError(
            WebErrorCode.TOO_MANY_ATTEMPTS,
            f"too many failed sign-ins for this user or from this address: wait {minutes} minutes",
            headers={"Retry-After": str(int(LOGIN_WINDOW.total_seconds()))},
        )
    found = await admin_users.verify_password(context.sessions, name, password, now=now)
    if found is None:
        log.info("admin API: failed sign-in for %r from %s", counted[:64], address)
        raise unauthenticated("wrong user name or password")
    await admin_users.clear_failures(context.sessions, found.username)
    cache.remember((found.username, digest, found.session_epoch), now)
    return found


async def guard(
    request: Request,
    context: Context,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Account:
    """The calling user; a write (any method but GET, HEAD, OPTIONS) needs an admin."""
    if credentials is None:
        raise unauthenticated(
            "an admin user's name and password are required (HTTP Basic authentication)"
        )
    async with database():
        account = await authenticate(request, context, credentials.username, credentials.password)
    if request.method not in SAFE_METHODS and not account.can_act:
        raise ApiError(
            WebErrorCode.FORBIDDEN, f"{account.username} is a viewer: only an admin can do this"
        )
    return account


Caller = Annotated[Account, Depends(guard)]
