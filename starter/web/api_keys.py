"""Storefront API keys (``api_keys``): one shop's key to the HTTP API.

    key, plain = await create_key(sessions, "demo", "php-shop", now=now)  # plain: once
    found = await verify_key(sessions, plain, now=now)  # the ApiKey, or None
    await revoke_key(sessions, key.prefix, now=now)

A key reads ``ck_<prefix>_<secret>``: the prefix (12 hex digits) is public and names the
key in lists and in ``revoke``; the secret is 32 random bytes (``secrets.token_urlsafe``).
Only the SHA-256 of the whole key is stored: 256 random bits leave nothing to guess, so
a fast hash is enough. ``verify_key`` finds the key by its prefix and compares the
digests in constant time; a revoked key, or one that does not read as a key, is refused.
``last_used_at`` is written at most once a minute per key, so a busy storefront does not
write on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from activities.checks import aware_utc
from activities.db import SessionFactory, write_session
from activities.models import ID_LENGTH
from activities.web_models import USERNAME_LENGTH, ApiKeyRecord
from workflows.validation import valid_id

__all__ = [
    "ApiKey",
    "ApiKeyRefused",
    "create_key",
    "digest_of",
    "list_keys",
    "prefix_of",
    "revoke_key",
    "verify_key",
]

#: what every key starts with (``ck_<prefix>_<secret>``)
KEY_MARK = "ck"
#: random bytes of the public prefix (hex: twice as many characters)
PREFIX_BYTES = 6
#: random bytes of the secret (``token_urlsafe``: 43 characters)
SECRET_BYTES = 32
#: ``last_used_at`` is written when it is at least this old
LAST_USED_RESOLUTION = timedelta(minutes=1)

_PREFIX_RE = re.compile(rf"^[0-9a-f]{{{2 * PREFIX_BYTES}}}\Z")
_KEY_RE = re.compile(rf"^{KEY_MARK}_([0-9a-f]{{{2 * PREFIX_BYTES}}})_([A-Za-z0-9_-]{{43}})\Z")


class ApiKeyRefused(Exception):
    """A key could not be made or found: ``invalid_id`` (the shop), ``invalid_input``
    (the name, the prefix), ``api_key_not_found``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret (nor its digest)."""

    id: int
    shop_id: str
    name: str
    prefix: str
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def scope(self) -> str:
        """Whose idempotency keys these are (``idempotency_keys.scope``)."""
        return f"key:{self.id}"

    @classmethod
    def of(cls, row: ApiKeyRecord) -> ApiKey:
        return cls(
            id=row.id,
            shop_id=row.shop_id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            created_by=row.created_by,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


def digest_of(key: str) -> str:
    """The hex SHA-256 of a whole key, as stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def prefix_of(text: str) -> str | None:
    """The prefix named by ``text``: a prefix, ``ck_<prefix>`` or a whole key; ``None``
    when it names none."""
    text = text.strip()
    if text.startswith(f"{KEY_MARK}_"):
        text = text[len(KEY_MARK) + 1 :].split("_", 1)[0]
    return text if _PREFIX_RE.match(text) else None


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > ID_LENGTH or not name.isprintable():
        raise ApiKeyRefused(
            "invalid_input", f"the key's name must be 1 to {ID_LENGTH} printable characters"
        )
    return name


async def create_key(
    sessions: SessionFactory,
    shop_id: str,
    name: str,
    *,
    now: datetime,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key of ``shop_id``: the key as listed, and the plain key (shown once; only
    its digest is kept)."""
    if not valid_id(shop_id):
        raise ApiKeyRefused(
            "invalid_id", f"shop id {shop_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    name = _checked_name(name)
    if created_by is not None:
        created_by = created_by.strip()[:USERNAME_LENGTH] or None
    now = aware_utc(now, "api key")
    for _attempt in range(5):
        prefix = secrets.token_hex(PREFIX_BYTES)
        plain = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        row = ApiKeyRecord(
            shop_id=shop_id,
            name=name,
            prefix=prefix,
            digest=digest_of(plain),
            created_at=now,
            created_by=created_by,
            revoked_at=None,
            last_used_at=None,
        )
        try:
            async with write_session(sessions) as session:
                session.add(row)
                await session.flush()
                made = ApiKey.of(row)
        except IntegrityError:  # the random prefix was taken (48 bits: hardly ever)
            continue
        return made, plain
    raise RuntimeError("could not find a free API key prefix in 5 tries")


async def list_keys(sessions: SessionFactory, shop_id: str | None = None) -> list[ApiKey]:
    """Every key (of ``shop_id`` only, if given), revoked ones included, oldest first."""
    query = select(ApiKeyRecord).order_by(ApiKeyRecord.shop_id, ApiKeyRecord.id)
    if shop_id is not None:
        query = query.where(ApiKeyRecord.shop_id == shop_id)
    async with sessions() as session:
        return [ApiKey.of(row) for row in (await session.execute(query)).scalars()]


async def revoke_key(sessions: SessionFactory, prefix: str, *, now: datetime) -> ApiKey:
    """Revoke the key of ``prefix`` (or ``ck_<prefix>``, or the whole key): no request is
    taken with it from now on. Revoking twice keeps the first time."""
    found = prefix_of(prefix)
    if found is None:
        raise ApiKeyRefused(
            "invalid_input", f"{prefix[:40]!r} is not a key prefix ({2 * PREFIX_BYTES} hex digits)"
        )
    now = aware_utc(now, "api key")
    async with write_session(sessions) as session:
        row = (
            await session.execute(select(ApiKeyRecord).where(ApiKeyRecord.prefix == found))
        ).scalar_one_or_none()
        if row is None:
            raise ApiKeyRefused("api_key_not_found", f"no API key with prefix {found}")
        if row.revoked_at is None:
            row.revoked_at = now
        await session.flush()
        return ApiKey.of(row)


async def verify_key(sessions: SessionFactory, presented: str, *, now: datetime) -> ApiKey | None:
    """The key ``presented`` is, if it is a key that is not revoked; else ``None``. Notes
    its use (``last_used_at``) when the last note is a minute old or more."""
    match = _KEY_RE.match(presented)
    if match is None:
        return None
    async with sessions() as session:
        row = (
            await session.execute(select(ApiKeyRecord).where(ApiKeyRecord.prefix == match[1]))
        ).scalar_one_or_none()
        key = ApiKey.of(row) if row is not None else None
        digest = row.digest if row is not None else ""
    # compared whether or not the prefix was found: the time taken says nothing more
    matches = hmac.compare_digest(digest_of(presented), digest)
    if key is None or not matches or key.revoked:
        return None
    now = aware_utc(now, "api key")
    stale = now - LAST_USED_RESOLUTION
    if key.last_used_at is None or key.last_used_at <= stale:
        async with write_session(sessions) as session:
            await session.execute(
                update(ApiKeyRecord)
                .where(
                    ApiKeyRecord.id == key.id,
                    or_(ApiKeyRecord.last_used_at.is_(None), ApiKeyRecord.last_used_at <= stale),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )
    return key


#: how long a web process trusts a key it verified without asking the database again (a
#: key revoked meanwhile is refused by every process within this time)
VERIFIED_FOR = timedelta(seconds=5)


class VerifiedKeys:
    """A web process's recent verifications: a storefront's burst of requests costs one
    database read per key every ``VERIFIED_FOR``, not one per request (measured: ~2 ms
    of a ~7 ms HTTP overhead). Keyed by the presented key's digest; only valid keys are
    kept (a wrong key is always checked against the database)."""

    def __init__(self, ttl: timedelta = VERIFIED_FOR, limit: int = 10_000) -> None:
        self._ttl = ttl
        self._limit = limit
        self._keys: dict[str, tuple[ApiKey, datetime]] = {}

    async def verify(
        self, sessions: SessionFactory, presented: str, *, now: datetime
    ) -> ApiKey | None:
        digest = digest_of(presented)
        known = self._keys.get(digest)
        if known is not None and now < known[1]:
            return known[0]
        key = await verify_key(sessions, presented, now=now)
        if key is None:
            self._keys.pop(digest, None)
            return None
        if len(self._keys) >= self._limit:
            self._keys.clear()  # (a bound, not an LRU: a web process sees few keys)
        self._keys[digest] = (key, now + self._ttl)
        return key
