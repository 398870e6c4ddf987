"""Storefront API keys (``starter.web.api_keys``) and ``cartkeeper keys create|list|revoke``
on a fresh read model (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``): the key is
shown once and stored as its SHA-256 only, verified in constant time, refused once
revoked, and its use noted at most once a minute."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

import starter.cli.keys as cli_keys
from activities.db import SessionFactory, make_engine, make_session_factory
from activities.web_models import ApiKeyRecord
from starter.web.api_keys import (
    VERIFIED_FOR,
    ApiKey,
    ApiKeyRefused,
    VerifiedKeys,
    create_key,
    list_keys,
    prefix_of,
    revoke_key,
    verify_key,
)
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KEY_RE = re.compile(r"^ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

T = TypeVar("T")


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def rows(db: ScratchDatabase) -> list[ApiKeyRecord]:
    async with db.session_factory() as session:
        return list((await session.execute(select(ApiKeyRecord))).scalars())


# --------------------------------------------------------------------------- the store


async def test_a_key_is_shown_once_and_stored_as_its_sha256_only(db: ScratchDatabase) -> None:
    key, plain = await create_key(
        db.session_factory, SHOP, " storefront ", now=NOW, created_by="ann"
    )
    match = KEY_RE.match(plain)
    assert match is not None, plain
    assert match[1] == key.prefix
    assert (key.shop_id, key.name, key.created_by, key.created_at) == (
        SHOP,
        "storefront",
        "ann",
        NOW,
    )
    assert key.revoked_at is None and key.last_used_at is None and key.scope == f"key:{key.id}"
    (row,) = await rows(db)
    assert row.digest == hashlib.sha256(plain.encode()).hexdigest()
    secret = match[2]
    stored = " ".join(str(getattr(row, column.key)) for column in ApiKeyRecord.__table__.columns)
    assert secret not in stored and plain not in stored, "only the digest is kept"
    assert not hasattr(key, "digest"), "a listed key carries no secret, nor its digest"

    other, other_plain = await create_key(db.session_factory, SHOP, "storefront", now=NOW)
    assert other.prefix != key.prefix and other_plain != plain and other.id != key.id


async def test_verify_takes_the_key_and_nothing_else(db: ScratchDatabase) -> None:
    key, plain = await create_key(db.session_factory, SHOP, "storefront", now=NOW)
    found = await verify_key(db.session_factory, plain, now=NOW)
    assert found is not None and (found.id, found.shop_id) == (key.id, SHOP)

    _mark, prefix, secret = plain.split("_", 2)
    wrong_secret = f"ck_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    unknown_prefix = f"ck_{'0' * 12}_{secret}"
    for presented in (
        wrong_secret,  # the right prefix, another secret
        unknown_prefix,
        plain[:-1],
        plain + "x",
        plain.upper(),
        f"ck_{prefix}",
        "",
        "Bearer " + plain,
        plain.replace("ck_", "ak_", 1),
    ):
        assert await verify_key(db.session_factory, presented, now=NOW) is None, presented


async def test_revoked_keys_are_refused_and_revoking_twice_keeps_the_first_time(
    db: ScratchDatabase,
) -> None:
    key, plain = await create_key(db.session_factory, SHOP, "storefront", now=NOW)
    kept, kept_plain = await create_key(db.session_factory, SHOP, "other", now=NOW)
    revoked = await revoke_key(db.session_factory, key.prefix, now=NOW + timedelta(hours=1))
    assert revoked.revoked and revoked.revoked_at == NOW + timedelta(hours=1)
    assert await verify_key(db.session_factory, plain, now=NOW + timedelta(hours=2)) is None
    assert await verify_key(db.session_factory, kept_plain, now=NOW) is not None, "only that key"

    again = await revoke_key(db.session_factory, f"ck_{key.prefix}", now=NOW + timedelta(days=1))
    assert again.revoked_at == NOW + timedelta(hours=1), "the first revocation is kept"
    by_whole_key = await revoke_key(db.session_factory, plain, now=NOW + timedelta(days=2))
    assert by_whole_key.id == key.id

    with pytest.raises(ApiKeyRefused) as unknown:
        await revoke_key(db.session_factory, "0" * 12, now=NOW)
    assert unknown.value.code == "api_key_not_found"
    with pytest.raises(ApiKeyRefused) as bad:
        await revoke_key(db.session_factory, "not-a-prefix", now=NOW)
    assert bad.value.code == "invalid_input"
    assert kept.revoked_at is None


async def test_a_web_process_trusts_a_verified_key_for_seconds_only(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    cache = VerifiedKeys()
    key, plain = await create_key(sessions, SHOP, "storefront", now=NOW)
    assert (await cache.verify(sessions, plain, now=NOW)) == key
    await revoke_key(sessions, key.prefix, now=NOW)
    # (verified a moment ago: this process takes it until VERIFIED_FOR has passed)
    assert await cache.verify(sessions, plain, now=NOW + VERIFIED_FOR / 2) is not None
    assert await cache.verify(sessions, plain, now=NOW + VERIFIED_FOR) is None
    assert await cache.verify(sessions, plain, now=NOW + VERIFIED_FOR / 2) is None, "forgotten"
    forged = plain[:-4] + "AAAA"
    assert await cache.verify(sessions, forged, now=NOW) is None


async def test_list_every_shop_or_one_revoked_included(db: ScratchDatabase) -> None:
    first, _ = await create_key(db.session_factory, SHOP, "one", now=NOW)
    second, _ = await create_key(db.session_factory, SHOP, "two", now=NOW)
    elsewhere, _ = await create_key(db.session_factory, "shop-2", "three", now=NOW)
    await revoke_key(db.session_factory, second.prefix, now=NOW)

    everything = await list_keys(db.session_factory)
    assert [key.prefix for key in everything] == [first.prefix, second.prefix, elsewhere.prefix]
    mine = await list_keys(db.session_factory, SHOP)
    assert [(key.name, key.revoked) for key in mine] == [("one", False), ("two", True)]
    assert await list_keys(db.session_factory, "shop-3") == []


async def test_use_is_noted_at_most_once_a_minute(db: ScratchDatabase) -> None:
    key, plain = await create_key(db.session_factory, SHOP, "storefront", now=NOW)

    async def last_used() -> datetime | None:
        (found,) = [k for k in await list_keys(db.session_factory) if k.id == key.id]
        return found.last_used_at

    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    from sqlalchemy import event

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await verify_key(db.session_factory, plain, now=NOW) is not None
        assert await last_used() == NOW
        for seconds in (1, 30, 59):  # a busy storefront: no write
            assert await verify_key(db.session_factory, plain, now=NOW + timedelta(seconds=seconds))
        assert await last_used() == NOW
        assert len(updates) == 1, updates
        later = NOW + timedelta(seconds=61)
        assert await verify_key(db.session_factory, plain, now=later) is not None
        assert await last_used() == later
        assert len(updates) == 2
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_invalid_shops_and_names_are_refused(db: ScratchDatabase) -> None:
    for shop, name, code in (
        ("bad shop", "storefront", "invalid_id"),
        ("", "storefront", "invalid_id"),
        ("s" * 65, "storefront", "invalid_id"),
        (SHOP, "   ", "invalid_input"),
        (SHOP, "n" * 65, "invalid_input"),
        (SHOP, "line\nbreak", "invalid_input"),
    ):
        with pytest.raises(ApiKeyRefused) as refused:
            await create_key(db.session_factory, shop, name, now=NOW)
        assert refused.value.code == code, (shop, name)
    assert await rows(db) == []


def test_prefix_of() -> None:
    assert prefix_of("0123456789ab") == "0123456789ab"
    assert prefix_of("ck_0123456789ab") == "0123456789ab"
    assert prefix_of(f"ck_0123456789ab_{'x' * 43}") == "0123456789ab"
    for text in ("", "ck_", "0123456789AB", "0123456789a", "ck_zz23456789ab_x"):
        assert prefix_of(text) is None, text


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_keys], shop=SHOP)


def on(db: ScratchDatabase, work: Callable[[SessionFactory], Awaitable[T]]) -> T:
    """``work`` on ``db`` from a sync test (a fresh engine on this call's own loop)."""

    async def main() -> T:
        engine = make_engine(db.url, schema=db.schema)
        try:
            return await work(make_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def verified(db: ScratchDatabase, plain: str) -> ApiKey | None:
    return on(db, lambda sessions: verify_key(sessions, plain, now=datetime.now(UTC)))


def test_cli_create_prints_the_key_once_and_it_works(
    cartkeeper: Cartkeeper, db: ScratchDatabase
) -> None:
    text = ok(cartkeeper("keys", "create", "--name", "storefront", "--admin", "ann"))
    plains = [line for line in text.splitlines() if KEY_RE.match(line)]
    assert len(plains) == 1, text
    plain = plains[0]
    assert "not shown again" in text
    key = verified(db, plain)
    assert key is not None and (key.shop_id, key.name, key.created_by) == (
        SHOP,
        "storefront",
        "ann",
    )
    assert f"API key {key.prefix} (storefront) of shop {SHOP}:" in text

    data = json.loads(
        ok(cartkeeper("keys", "create", "--shop", "shop-2", "--name", "php", "--json"))
    )
    assert KEY_RE.match(data["key"]) and data["shop_id"] == "shop-2" and data["revoked"] is False
    other = verified(db, data["key"])
    assert other is not None and other.prefix == data["prefix"] == prefix_of(data["key"])

    failed(cartkeeper("keys", "create", "--shop", "bad shop", "--name", "x"), 1, "invalid_id")
    failed(cartkeeper("keys", "create", "--name", " "), 1, "invalid_input")
    usage = cartkeeper("keys", "create")
    assert usage.exit_code == 2 and "--name" in usage.stderr


def test_cli_list_never_prints_secrets(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    assert "no API keys (any shop)" in ok(cartkeeper("keys", "list"))
    one = json.loads(ok(cartkeeper("keys", "create", "--name", "one", "--json")))
    two = json.loads(ok(cartkeeper("keys", "create", "--name", "two", "--json")))
    three = json.loads(
        ok(cartkeeper("keys", "create", "--shop", "shop-2", "--name", "three", "--json"))
    )
    ok(cartkeeper("keys", "revoke", two["prefix"]))
    assert verified(db, one["key"]) is not None  # noted as used

    text = ok(cartkeeper("keys", "list"))
    listed = ok(cartkeeper("keys", "list", "--json"))
    for created in (one, two, three):
        secret = created["key"].split("_", 2)[2]
        assert secret not in text and secret not in listed
        assert created["prefix"] in text
    assert "3 keys (2 active), any shop" in text
    lines = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert "never" not in lines[one["prefix"]] and "never" in lines[three["prefix"]]
    assert lines[one["prefix"]].rstrip().endswith("-"), "not revoked"
    assert not lines[two["prefix"]].rstrip().endswith("-"), "revoked: when"

    data = json.loads(ok(cartkeeper("keys", "list", "--shop", SHOP, "--json")))
    assert [(k["prefix"], k["name"], k["revoked"]) for k in data] == [
        (one["prefix"], "one", False),
        (two["prefix"], "two", True),
    ]
    assert all(set(k) >= {"id", "shop_id", "created_at", "last_used_at"} for k in data)
    assert all("key" not in k and "digest" not in k for k in data)
    assert data[0]["last_used_at"] is not None and data[1]["revoked_at"] is not None
    assert "no API keys (shop shop-9)" in ok(cartkeeper("keys", "list", "--shop", "shop-9"))


def test_cli_revoke(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    created = json.loads(ok(cartkeeper("keys", "create", "--name", "storefront", "--json")))
    assert verified(db, created["key"]) is not None
    prefix = created["prefix"]
    text = ok(cartkeeper("keys", "revoke", prefix))
    assert f"API key {prefix} (storefront) of shop {SHOP} revoked now" in text
    assert verified(db, created["key"]) is None, "refused at once"
    again = ok(cartkeeper("keys", "revoke", f"ck_{prefix}"))
    assert "revoked already, at" in again
    data = json.loads(ok(cartkeeper("keys", "revoke", prefix, "--json")))
    assert data["revoked"] is True and data["prefix"] == prefix

    failed(cartkeeper("keys", "revoke", "0" * 12), 3, "api_key_not_found")
    failed(cartkeeper("keys", "revoke", "nope"), 1, "invalid_input")
