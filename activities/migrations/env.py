"""Alembic environment of the read model (async engines: aiosqlite, asyncpg).

Two ways in:
- ``activities.db.upgrade_database`` passes an open connection (``config.attributes
  ["connection"]``), already in a transaction and holding the migration lock;
- the ``alembic`` command line: the URL comes from ``-x url=...``, else from the settings
  (``DATABASE_URL``); ``-x schema=...`` selects a PostgreSQL schema. The same lock is taken.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from activities.db import lock_for_migrations, make_migration_engine, normalize_url
from activities.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    url = x_args.get("url") or config.attributes.get("url")
    if not url:
        url = config.get_main_option("sqlalchemy.url")
    if not url:
        from activities.settings import Settings

        url = Settings().resolved_database_url()
    return str(url)


def _schema() -> str | None:
    x_args = context.get_x_argument(as_dictionary=True)
    schema = x_args.get("schema") or config.attributes.get("schema")
    return str(schema) if schema else None


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite alters tables by copying them: let autogenerate write batch operations.
        render_as_batch=connection.dialect.name == "sqlite",
        # The whole upgrade is one transaction (SQLite's DDL is transactional too).
        transactional_ddl=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _run_locked(connection: Connection) -> None:
    lock_for_migrations(connection)
    _run(connection)


async def _run_with_new_engine() -> None:
    engine = make_migration_engine(_url(), schema=_schema())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_locked)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)  # upgrade_database: in its transaction, locked
    else:
        asyncio.run(_run_with_new_engine())


if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
