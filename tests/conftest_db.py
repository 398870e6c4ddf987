"""Scratch read-model databases for tests (SQLite files and PostgreSQL schemas).

Not a conftest: import what you need. ``scratch_database("sqlite", tmp_path)`` gives a
fresh SQLite file; ``scratch_database("postgresql", tmp_path)`` a fresh schema on the
server ``TEST_DATABASE_URL`` names (dropped afterwards), or skips the test when it is
not set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.db import SessionFactory, make_engine, make_session_factory, upgrade_database

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"
BACKENDS = ("sqlite", "postgresql")


def postgres_url() -> str | None:
    """The PostgreSQL server for tests (``TEST_DATABASE_URL``), or ``None``."""
    return os.environ.get(TEST_DATABASE_URL_ENV) or None


def skip_without_postgres() -> str:
    url = postgres_url()
    if url is None and os.environ.get("CARTKEEPER_REQUIRE_POSTGRES"):
        pytest.fail(
            f"CARTKEEPER_REQUIRE_POSTGRES is set but {TEST_DATABASE_URL_ENV} is not: "
            "CI must run the read model on PostgreSQL"
        )
    if url is None:
        pytest.skip(
            f"PostgreSQL tests need {TEST_DATABASE_URL_ENV}, e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    return url


@dataclass
class ScratchDatabase:
    backend: str
    url: str
    #: the PostgreSQL schema holding the tables (``None`` on SQLite)
    schema: str | None
    engine: AsyncEngine
    session_factory: SessionFactory

    async def upgrade(self) -> None:
        await upgrade_database(self.url, schema=self.schema)


@asynccontextmanager
async def scratch_database(
    backend: str, tmp_path: Path, *, migrate: bool = True
) -> AsyncIterator[ScratchDatabase]:
    """A fresh, empty database of ``backend`` (migrated to head unless ``migrate=False``)."""
    schema: str | None = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / f'readmodel-{uuid.uuid4().hex}.db'}"
    elif backend == "postgresql":
        url = skip_without_postgres()
        schema = f"cartkeeper_test_{uuid.uuid4().hex[:16]}"
        admin = make_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        finally:
            await admin.dispose()
    else:
        raise ValueError(f"unknown backend {backend!r}")
    engine = make_engine(url, schema=schema)
    database = ScratchDatabase(backend, url, schema, engine, make_session_factory(engine))
    try:
        if migrate:
            await database.upgrade()
        yield database
    finally:
        await engine.dispose()
        if schema is not None:
            admin = make_engine(url, isolation_level="AUTOCOMMIT")
            try:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            finally:
                await admin.dispose()
