"""A PostgreSQL database of its own for one run, that can also be taken down for real.

``scratch_database(admin_url, "cartkeeper_bench")`` creates ``cartkeeper_bench_<stamp>``
on the server ``admin_url`` names (any database there, e.g. ``test``: the statements run
from it) and drops it afterwards (``WITH (FORCE)``). ``down()`` is a real outage of that
database only: PostgreSQL refuses every new connection to it (``ALLOW_CONNECTIONS
false``) and ends the open ones (``pg_terminate_backend``); ``up()`` lets them in again.
The server itself keeps running for everybody else.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url

from activities.db import make_engine


@dataclass
class ScratchDatabase:
    admin_url: str
    name: str

    @property
    def url(self) -> str:
        """The scratch database's URL (the admin URL with its database name)."""
        return make_url(self.admin_url).set(database=self.name).render_as_string(False)

    async def admin(self, *statements: str) -> None:
        """Run ``statements`` in autocommit from the admin database."""
        engine = make_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def down(self) -> None:
        """The outage: no new connection to the database, the open ones ended."""
        await self.admin(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    async def up(self) -> None:
        await self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


def stamped(prefix: str) -> str:
    """``<prefix>_<UTC date and time>_<4 hex>``: a database name of its own."""
    return f"{prefix}_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


async def check_server(admin_url: str) -> str | None:
    """``None`` if the server answers, else why not (one line)."""
    try:
        await ScratchDatabase(admin_url, "").admin("SELECT 1")
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


@asynccontextmanager
async def scratch_database(admin_url: str, prefix: str) -> AsyncIterator[ScratchDatabase]:
    """A fresh, empty database (``CREATE DATABASE``), dropped when the block ends."""
    database = ScratchDatabase(admin_url, stamped(prefix))
    await database.admin(f'CREATE DATABASE "{database.name}"')
    try:
        yield database
    finally:
        await database.admin(
            f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS true',
            f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)',
        )
