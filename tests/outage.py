"""Read-model databases that a test can really take down, and workers bound to them.

Not a conftest: import what you need.

- PostgreSQL: a database of its own (``CREATE DATABASE``) on the server of
  ``TEST_DATABASE_URL``; the outage is PostgreSQL refusing every connection to it
  (``ALLOW_CONNECTIONS false``) and ending the open ones (``pg_terminate_backend``).
- SQLite: a file of its own; the outage is another connection holding the write lock
  (``BEGIN EXCLUSIVE``), so every write times out as it would behind a stuck writer.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.worker import Worker

from activities.cart_activities import CartActivities
from activities.db import SessionFactory, make_engine, make_session_factory, upgrade_database
from activities.settings import Settings
from starter.client import CartkeeperClient
from tests.conftest_db import skip_without_postgres
from workflows.contract import CartPolicy


@dataclass
class OutageDatabase:
    backend: str
    url: str
    session_factory: SessionFactory
    _engine: Any
    _admin_url: str | None = None
    _name: str | None = None
    _lock: sqlite3.Connection | None = field(default=None, repr=False)

    async def down(self) -> None:
        """Take the database away, for real."""
        if self.backend == "postgresql":
            await self._admin(
                f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS false',
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = '{self._name}' AND pid <> pg_backend_pid()",
            )
        else:
            path = make_url(self.url).database
            assert path is not None
            self._lock = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._lock.execute("BEGIN EXCLUSIVE")

    async def up(self) -> None:
        if self.backend == "postgresql":
            await self._admin(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS true')
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    async def _admin(self, *statements: str) -> None:
        assert self._admin_url is not None
        admin = make_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await admin.dispose()


@asynccontextmanager
async def outage_database(backend: str, tmp_path: Path) -> AsyncIterator[OutageDatabase]:
    """A fresh, migrated read model of ``backend`` that ``down()`` makes unavailable."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'outage-{uuid.uuid4().hex}.db'}"
        await upgrade_database(url)
        # A short busy timeout: a write behind the held lock fails in 1 s, not 30.
        engine = make_engine(url, sqlite_busy_timeout=1.0)
        database = OutageDatabase(backend, url, make_session_factory(engine), engine)
        try:
            yield database
        finally:
            await database.up()
            await engine.dispose()
        return
    admin_url = skip_without_postgres()
    name = f"cartkeeper_outage_{uuid.uuid4().hex[:12]}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    database = OutageDatabase(backend, url, make_session_factory(make_engine(url)), None)
    database._admin_url = admin_url
    database._name = name
    await database._admin(f'CREATE DATABASE "{name}"')
    try:
        await upgrade_database(url)
        engine = make_engine(url)
        database.session_factory = make_session_factory(engine)
        database._engine = engine
        try:
            yield database
        finally:
            await database.up()
            await engine.dispose()
    finally:
        await database._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def worker_on(
    client: Client, database: OutageDatabase, policy: CartPolicy
) -> AsyncIterator[CartkeeperClient]:
    """A worker of its own (own task queue) on ``database``, and a client for it."""
    from worker import build_worker

    task_queue = f"outage-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=database.url, task_queue=task_queue)
    activities = CartActivities(database.session_factory, client)
    worker: Worker = build_worker(client, activities, settings)
    async with worker:
        yield CartkeeperClient(client, task_queue=task_queue, policy_for=lambda _shop: policy)
