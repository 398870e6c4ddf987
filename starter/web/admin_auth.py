"""Who is signed in to the admin console, and what they may do: the session cookie, CSRF
tokens, the sign-in rate limit and the route dependencies.

**Session.** ``cartkeeper_admin``: the user name, the user's ``session_epoch``, when the
session began and a random nonce, signed with itsdangerous under the deployment's secret
key (``activities.links.secret_key``; salt ``cartkeeper.admin-session``). HttpOnly,
SameSite=Lax, Path ``/admin``, Secure when the request came over https or the public URL
is https, and over after ``SESSION_LIFETIME`` whatever the cookie's own max age. Every
request reads the user from the database: a removed user, a changed password (the epoch
grew) or a changed role takes effect at the next request.

**CSRF.** Every POST under ``/admin`` carries a form field ``csrf_token``: an HMAC of the
session's nonce (``AdminSession.csrf_token``; templates put ``{{ csrf_field() }}`` in each
form). ``require_viewer`` / ``require_admin`` check it before the route runs; missing or
wrong is 403 and nothing happens. The sign-in form has its own token, bound to a
``cartkeeper_login`` cookie set by ``GET /admin/login``, so a foreign page cannot sign a
browser in either.

**Dependencies.** ``Viewer`` (``require_viewer``): anyone signed in. ``Admin``
(``require_admin``): role ``admin``; a viewer gets 403. Not signed in: a GET is redirected
(303) to ``/admin/login?next=<path>``, anything else is refused with 401. Refusals raise
``AdminRefused``, which ``admin_pages.install`` renders as a page.

**Sign-in rate limit.** ``LOGIN_WINDOW``: at most ``MAX_FAILURES_PER_NAME`` failures per
user name and ``MAX_FAILURES_PER_ADDRESS`` per client address; past either, 429 without
trying the password (whether the user exists or not).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeSerializer

from activities.links import secret_key
from activities.settings import Settings
from starter.web import admin_users
from starter.web.admin_users import ADMIN
from starter.web.deps import Context, WebContext

SESSION_COOKIE = "cartkeeper_admin"
LOGIN_COOKIE = "cartkeeper_login"
FLASH_COOKIE = "cartkeeper_flash"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
SESSION_LIFETIME = timedelta(hours=12)
#: how long a sign-in form stays usable
LOGIN_FORM_LIFETIME = timedelta(hours=1)
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20
#: a session issued this far in the future (clock skew between web processes) still counts
_SKEW = timedelta(minutes=5)
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class AdminRefused(Exception):
    """A request the console refuses: rendered as a page with ``status``, or, with
    ``location``, a 303 redirect there."""

    def __init__(
        self, status: int, code: str, title: str, message: str, *, location: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.title = title
        self.message = message
        self.location = location


class AdminKeys:
    """The console's signers, all from the deployment's secret key (distinct salts)."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self.session = URLSafeSerializer(key, salt="cartkeeper.admin-session")
        self.login = URLSafeSerializer(key, salt="cartkeeper.admin-login")
        self.flash = URLSafeSerializer(key, salt="cartkeeper.admin-flash")

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminKeys:
        return cls(secret_key(settings))

    def token(self, purpose: str, nonce: str) -> str:
        """A form token for ``nonce`` (HMAC-SHA256: only this deployment can make it). A
        lone surrogate (a password of a JSON body) is taken as it came (``surrogatepass``),
        so the request gets its refusal (``invalid_password``), not a 500."""
        data = f"{purpose}|{nonce}".encode("utf-8", "surrogatepass")
        mac = hmac.new(self._key, data, hashlib.sha256)
        return mac.hexdigest()


def keys_of(request: Request) -> AdminKeys:
    keys: AdminKeys = request.app.state.admin_keys
    return keys


@dataclass(frozen=True)
class AdminSession:
    """The signed-in user of a request (``request.state.admin``)."""

    username: str
    role: str
    issued_at: datetime
    csrf_token: str

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


# --------------------------------------------------------------------------- cookies


def secure_cookies(request: Request, settings: Settings | None) -> bool:
    """Whether cookies get ``Secure``: the request came over https, or the console is
    published at an https URL (behind a TLS proxy the request itself may be http)."""
    public = settings.public_url if settings is not None else ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings | None,
    name: str,
    value: str,
    max_age: timedelta,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path=COOKIE_PATH,
        secure=secure_cookies(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(
    response: Response, request: Request, settings: Settings | None, name: str
) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        secure=secure_cookies(request, settings),
        httponly=True,
        samesite="lax",
    )


def start_session(
    response: Response,
    request: Request,
    settings: Settings | None,
    account: admin_users.Account,
    now: datetime,
) -> None:
    """Sign ``account`` in: the session cookie on ``response``."""
    nonce = secrets.token_urlsafe(16)
    value = keys_of(request).session.dumps(
        [account.username, account.session_epoch, int(now.timestamp()), nonce]
    )
    set_cookie(response, request, settings, SESSION_COOKIE, value, SESSION_LIFETIME)


def _claim(request: Request) -> tuple[str, int, datetime, str] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 1000:
        return None
    try:
        values: Any = keys_of(request).session.loads(raw)
    except BadSignature:
        return None
    if not (isinstance(values, list) and len(values) == 4):
        return None
    username, epoch, issued, nonce = values
    if not (isinstance(username, str) and isinstance(nonce, str)):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, issued)):
        return None
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return username, epoch, issued_at, nonce


async def current_session(request: Request, context: Context) -> AdminSession | None:
    """The request's signed-in user, or ``None`` (no cookie, a changed or expired one,
    the user removed, their password changed since)."""
    found = getattr(request.state, "admin", None)
    if isinstance(found, AdminSession):
        return found
    claim = _claim(request)
    if claim is None:
        return None
    username, epoch, issued_at, nonce = claim
    now = context.now()
    if not now - SESSION_LIFETIME < issued_at <= now + _SKEW:
        return None
    account = await admin_users.get_user(context.sessions, username)
    if account is None or account.session_epoch != epoch:
        return None
    session = AdminSession(
        account.username, account.role, issued_at, keys_of(request).token("csrf", nonce)
    )
    request.state.admin = session
    return session


# --------------------------------------------------------------------------- the login form


def login_nonce(request: Request) -> str | None:
    """The nonce of the browser's sign-in form cookie, if it has a valid one."""
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw or len(raw) > 500:
        return None
    try:
        nonce = keys_of(request).login.loads(raw)
    except BadSignature:
        return None
    return nonce if isinstance(nonce, str) else None


def new_login_nonce(request: Request) -> tuple[str, str]:
    """A fresh nonce and its cookie value."""
    nonce = secrets.token_urlsafe(16)
    return nonce, keys_of(request).login.dumps(nonce)


def login_token(request: Request, nonce: str) -> str:
    return keys_of(request).token("login", nonce)


def valid_token(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def local_path(target: object, default: str = "/admin") -> str:
    """``target`` if it is a path of the console (never another site: no scheme, host,
    ``//`` or backslash), else ``default``."""
    if not isinstance(target, str) or len(target) > 2000:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not target.isprintable():
        return default
    if not (parts.path == "/admin" or parts.path.startswith("/admin/")):
        return default
    return target


def login_url(next_path: str) -> str:
    return f"/admin/login?next={quote(local_path(next_path), safe='/')}"


# --------------------------------------------------------------------------- dependencies


def _forbidden(message: str) -> AdminRefused:
    return AdminRefused(403, "forbidden", "Not allowed", message)


def csrf_refused() -> AdminRefused:
    return _forbidden(
        "The form's security token is missing or out of date. Go back, reload the page and"
        " try again."
    )


async def _check_csrf(request: Request, session: AdminSession) -> None:
    try:
        form = await request.form()
    except Exception:  # an unreadable body has no token
        raise csrf_refused() from None
    if not valid_token(form.get(CSRF_FIELD), session.csrf_token):
        raise csrf_refused()


async def require_viewer(request: Request, context: Context) -> AdminSession:
    """Anyone signed in (and, on a POST, the form's CSRF token checked)."""
    session = await current_session(request, context)
    if session is None:
        if request.method in _SAFE_METHODS:
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise AdminRefused(
                303, "unauthenticated", "Sign in", "Sign in first.", location=login_url(path)
            )
        raise AdminRefused(
            401, "unauthenticated", "Sign in first", "Your session has ended: sign in again."
        )
    if request.method not in _SAFE_METHODS:
        await _check_csrf(request, session)
    return session


async def require_admin(session: Annotated[AdminSession, Depends(require_viewer)]) -> AdminSession:
    """A signed-in user with the ``admin`` role (a viewer gets 403)."""
    if not session.can_act:
        raise _forbidden(f"{session.username} is a viewer: only an admin can do this.")
    return session


Viewer = Annotated[AdminSession, Depends(require_viewer)]
Admin = Annotated[AdminSession, Depends(require_admin)]


# --------------------------------------------------------------------------- rate limit


async def sign_in_allowed(context: WebContext, username: str, address: str) -> bool:
    """Whether this user name and address may try a password now. The attempt is recorded
    first and counted with the others, so attempts sent at the same moment each count the
    others (read, hash, then write would let a parallel burst through); a successful
    sign-in forgets the name's attempts (``admin_users.clear_failures``)."""
    now = context.now()
    await admin_users.record_failure(
        context.sessions, username, address, now=now, keep=LOGIN_WINDOW
    )
    by_name, by_address = await admin_users.failures(
        context.sessions, username, address, since=now - LOGIN_WINDOW
    )
    return by_name <= MAX_FAILURES_PER_NAME and by_address <= MAX_FAILURES_PER_ADDRESS
