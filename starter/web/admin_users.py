"""The admin console's users (``admin_users``) and failed sign-ins (``login_attempts``).

    user = await add_user(sessions, "ann", "a long passphrase", role="admin", now=now)
    found = await verify_password(sessions, "ann", "a long passphrase", now=now)  # or None
    await change_password(sessions, "ann", "another passphrase", now=now)  # ends sessions
    await remove_user(sessions, "ann")

A user name is 1-64 characters: letters, digits, ``.``, ``_``, ``-``, ``@``, starting
with a letter or digit; it is kept in lower case (``Ann`` and ``ann`` are one user) and it
is what the carts' journals record as the admin who acted. A role is ``admin`` (reads and
acts) or ``viewer`` (reads). A password is 8-1024 characters of Unicode text: a lone
surrogate (JSON's ``"\\ud800"``, a byte that is not UTF-8 read from standard input) has no
UTF-8 form to hash and is ``invalid_password``; any other character is taken (a NUL or a
control character hashes and is sent as any other: only the hash is stored). Only its
argon2 hash (argon2-cffi's ``PasswordHasher``, with its parameters) is stored, and a hash
made with older parameters is replaced by a new one at the next successful sign-in.

``session_epoch`` grows when the password changes: a session remembers the epoch it
began in, and a session of an older epoch (or of a removed user) is over.

Failed sign-ins are counted per user name (existing or not: the count never tells which
names exist) and per client address over a window (``failures``); ``verify_password``
takes as long for an unknown user as for a wrong password. Refusals raise
``UserRefused`` with a code: ``invalid_username``, ``invalid_role``, ``invalid_password``,
``user_exists``, ``user_not_found``, ``last_admin`` (the only admin is never removed or
demoted).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from activities.checks import aware_utc
from activities.db import SessionFactory, write_session
from activities.web_models import USERNAME_LENGTH, AdminUser, LoginAttempt

__all__ = [
    "ADMIN",
    "ROLES",
    "VIEWER",
    "Account",
    "UserRefused",
    "add_user",
    "change_password",
    "check_password",
    "check_username",
    "clear_failures",
    "end_sessions",
    "failures",
    "get_user",
    "list_users",
    "record_failure",
    "remove_user",
    "verify_password",
]

ADMIN = "admin"
VIEWER = "viewer"
ROLES = (ADMIN, VIEWER)
MIN_PASSWORD = 8
#: longer passwords are refused unhashed (hashing megabytes would be a denial of service)
MAX_PASSWORD = 1024
#: a client address as stored (``login_attempts.address``)
ADDRESS_LENGTH = 64

_USERNAME_RE = re.compile(rf"^[a-z0-9][a-z0-9._@-]{{0,{USERNAME_LENGTH - 1}}}\Z")
#: what no password may hold: a lone surrogate (no UTF-8 form: argon2 cannot hash it)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class UserRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Account:
    """An admin user as the console and the CLI see it (never the hash)."""

    username: str
    role: str
    session_epoch: int
    created_at: datetime
    updated_at: datetime

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


def _account(row: AdminUser) -> Account:
    return Account(row.username, row.role, row.session_epoch, row.created_at, row.updated_at)


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's current default parameters."""
    return PasswordHasher()


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """A hash to verify against when the user does not exist (same work, same time)."""
    return hasher().hash("no such user: the same work as a wrong password")


# --------------------------------------------------------------------------- checks


def check_username(username: object) -> str:
    """The user name in its stored form (lower case), or ``invalid_username``."""
    if isinstance(username, str):
        name = username.strip().lower()
        if _USERNAME_RE.match(name):
            return name
    raise UserRefused(
        "invalid_username",
        f"{username!r} is not a user name: 1-{USERNAME_LENGTH} letters, digits, '.', '_',"
        " '-' or '@', starting with a letter or digit",
    )


def check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserRefused(
            "invalid_password",
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        )
    if not password.strip():
        raise UserRefused("invalid_password", "a password cannot be only spaces")
    if _SURROGATE_RE.search(password):
        raise UserRefused(
            "invalid_password",
            "a password is Unicode text: it holds a lone surrogate (U+D800-U+DFFF), which"
            " no one could type or send",
        )
    return password


def check_role(role: object) -> str:
    if role not in ROLES:
        raise UserRefused("invalid_role", f"{role!r} is not a role: {', '.join(ROLES)}")
    assert isinstance(role, str)
    return role


def _not_found(username: str) -> UserRefused:
    return UserRefused("user_not_found", f"there is no user {username!r}")


async def _hash(password: str) -> str:
    # argon2 takes a tenth of a second of CPU on purpose: not on the event loop
    return await asyncio.to_thread(hasher().hash, password)


# --------------------------------------------------------------------------- users


async def add_user(
    sessions: SessionFactory,
    username: str,
    password: str,
    *,
    role: str = ADMIN,
    now: datetime | None = None,
) -> Account:
    """A new user (``user_exists`` if the name is taken)."""
    name = check_username(username)
    role = check_role(role)
    digest = await _hash(check_password(password))
    at = aware_utc(now, "user")
    row = AdminUser(
        username=name,
        password_hash=digest,
        role=role,
        # a random start: a user removed and added again never takes back the sessions
        # of the first (a cookie holds the name and the epoch)
        session_epoch=secrets.randbelow(2**30),
        created_at=at,
        updated_at=at,
    )
    try:
        async with write_session(sessions) as session:
            if await session.get(AdminUser, name) is not None:
                raise UserRefused("user_exists", f"there is already a user {name!r}")
            session.add(row)
    except IntegrityError:  # added at the same moment by another process
        raise UserRefused("user_exists", f"there is already a user {name!r}") from None
    return _account(row)


async def change_password(
    sessions: SessionFactory, username: str, password: str, *, now: datetime | None = None
) -> Account:
    """Set a new password; every session of the user ends (``session_epoch`` grows)."""
    name = check_username(username)
    digest = await _hash(check_password(password))
    at = aware_utc(now, "user")
    async with write_session(sessions) as session:
        row = await session.get(AdminUser, name, with_for_update=True)
        if row is None:
            raise _not_found(name)
        row.password_hash = digest
        row.session_epoch += 1
        row.updated_at = at
        account = _account(row)
    return account


async def end_sessions(sessions: SessionFactory, username: str) -> None:
    """End every session of the user (signing out: a copied cookie stops working too)."""
    name = check_username(username)
    async with write_session(sessions) as session:
        row = await session.get(AdminUser, name, with_for_update=True)
        if row is not None:
            row.session_epoch += 1


async def set_role(
    sessions: SessionFactory, username: str, role: str, *, now: datetime | None = None
) -> Account:
    """Change a user's role (sessions go on: the role is read at every request)."""
    name = check_username(username)
    role = check_role(role)
    async with write_session(sessions) as session:
        admins = await _admins_locked(session)
        row = await session.get(AdminUser, name, with_for_update=True)
        if row is None:
            raise _not_found(name)
        if role != ADMIN:
            _keep_an_admin(admins, row)
        row.role = role
        row.updated_at = aware_utc(now, "user")
        account = _account(row)
    return account


async def _admins_locked(session: AsyncSession) -> list[str]:
    """The admins' names, their rows locked (always in the same order, before any other
    user's row: two admins removing each other at once wait for one another instead of
    deadlocking, and the second sees the first's change)."""
    admins = await session.scalars(
        select(AdminUser.username)
        .where(AdminUser.role == ADMIN)
        .order_by(AdminUser.username)
        .with_for_update()
    )
    return list(admins)


def _keep_an_admin(admins: list[str], row: AdminUser) -> None:
    """``last_admin`` if ``row`` is the only admin: removing or demoting it would leave
    the console without anyone who can act."""
    if row.role == ADMIN and admins == [row.username]:
        raise UserRefused(
            "last_admin",
            f"{row.username!r} is the only admin: add another admin first",
        )


async def remove_user(sessions: SessionFactory, username: str) -> None:
    """Remove a user: their sessions end at their next request (``last_admin``: never
    the only admin)."""
    name = check_username(username)
    async with write_session(sessions) as session:
        admins = await _admins_locked(session)
        row = await session.get(AdminUser, name, with_for_update=True)
        if row is None:
            raise _not_found(name)
        _keep_an_admin(admins, row)
        await session.delete(row)


async def get_user(sessions: SessionFactory, username: str) -> Account | None:
    """The user, or ``None`` (also for a name that could not be a user)."""
    try:
        name = check_username(username)
    except UserRefused:
        return None
    async with sessions() as session:
        row = await session.get(AdminUser, name)
        return _account(row) if row is not None else None


async def list_users(sessions: SessionFactory) -> list[Account]:
    async with sessions() as session:
        rows = (await session.scalars(select(AdminUser).order_by(AdminUser.username))).all()
        return [_account(row) for row in rows]


async def verify_password(
    sessions: SessionFactory, username: str, password: str, *, now: datetime | None = None
) -> Account | None:
    """The user if ``password`` is theirs, else ``None`` (unknown user included, after the
    same work). A hash made with older parameters is replaced by a current one."""
    try:
        name = check_username(username)
    except UserRefused:
        name = None
    async with sessions() as session:
        row = await session.get(AdminUser, name) if name is not None else None
        stored = row.password_hash if row is not None else None
    usable = (
        isinstance(password, str)
        and 0 < len(password) <= MAX_PASSWORD
        and not _SURROGATE_RE.search(password)  # no password holds one (nor can argon2)
    )
    candidate = password if usable else ""
    try:
        await asyncio.to_thread(hasher().verify, stored or _decoy_hash(), candidate)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or stored is None or not usable:
        return None
    if hasher().check_needs_rehash(stored):
        await _rehash(sessions, row.username, stored, await _hash(password))
    return _account(row)


async def _rehash(sessions: SessionFactory, username: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` unless the password changed meanwhile (the epoch stays:
    the same password, sessions go on)."""
    async with write_session(sessions) as session:
        row = await session.get(AdminUser, username, with_for_update=True)
        if row is not None and row.password_hash == old:
            row.password_hash = new


# --------------------------------------------------------------------------- failed sign-ins


def _clip(text: str, length: int) -> str:
    """A user name or address as the attempts count it: characters a database may not
    store (a NUL: PostgreSQL) counted as ``?``."""
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text.strip().lower()[:length]


async def record_failure(
    sessions: SessionFactory, username: str, address: str, *, now: datetime, keep: timedelta
) -> None:
    """Count a failed sign-in; the name's and the address's failures older than ``keep``
    are forgotten on the way."""
    name, where = _clip(username, USERNAME_LENGTH), _clip(address, ADDRESS_LENGTH)
    async with write_session(sessions) as session:
        await session.execute(
            delete(LoginAttempt).where(
                or_(LoginAttempt.username == name, LoginAttempt.address == where),
                LoginAttempt.at < now - keep,
            )
        )
        session.add(LoginAttempt(username=name, address=where, at=now))


async def failures(
    sessions: SessionFactory, username: str, address: str, *, since: datetime
) -> tuple[int, int]:
    """Failed sign-ins since ``since``: (for this user name, from this address)."""
    name, where = _clip(username, USERNAME_LENGTH), _clip(address, ADDRESS_LENGTH)
    count = select(func.count()).select_from(LoginAttempt)
    async with sessions() as session:
        by_name = await session.scalar(
            count.where(LoginAttempt.username == name, LoginAttempt.at >= since)
        )
        by_address = await session.scalar(
            count.where(LoginAttempt.address == where, LoginAttempt.at >= since)
        )
    return int(by_name or 0), int(by_address or 0)


async def clear_failures(sessions: SessionFactory, username: str) -> None:
    """Forget the user name's failures (after a successful sign-in)."""
    name = _clip(username, USERNAME_LENGTH)
    async with write_session(sessions) as session:
        await session.execute(delete(LoginAttempt).where(LoginAttempt.username == name))
