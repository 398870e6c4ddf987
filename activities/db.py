"""The read model's database: engines, sessions and migrations.

``DATABASE_URL`` selects the database (``activities.settings``): PostgreSQL through asyncpg
or, by default, a SQLite file through aiosqlite. SQLite runs in WAL mode with a busy
timeout, so the worker and the CLI can share the file; SQLAlchemy (not the ``sqlite3``
module) emits ``BEGIN``, and writers begin ``IMMEDIATE`` (``write_session``) so they queue
for the write lock instead of failing with "database is locked".

Migrations: ``await upgrade_database(url)`` (the worker calls it at start), or from a shell
``alembic -c activities/alembic.ini upgrade head`` (URL from ``DATABASE_URL`` /
``CARTKEEPER_*`` settings, or ``-x url=...``). Concurrent upgrades are serialized: an
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite, and the whole upgrade runs in
one transaction, so every process but the first finds the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import NullPool

SessionFactory: TypeAlias = async_sessionmaker[AsyncSession]

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"

#: Connection execution option: how SQLite transactions begin (DEFERRED or IMMEDIATE).
SQLITE_BEGIN = "cartkeeper_sqlite_begin"
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
#: How long a SQLite connection waits for a lock before failing.
DEFAULT_SQLITE_BUSY_TIMEOUT = 30.0
#: ``pg_advisory_xact_lock`` key that serializes migrations (``b"cartkeep"`` as int64).
MIGRATION_LOCK_KEY = int.from_bytes(b"cartkeep", "big", signed=True)

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


def normalize_url(url: str | URL) -> URL:
    """The async form of a database URL: ``sqlite://`` and ``postgres(ql)://`` get the
    aiosqlite / asyncpg drivers; URLs naming a driver are kept as they are."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        return None
    return Path(database)


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the parent directory of a SQLite database file (nothing for other URLs)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str | URL,
    *,
    schema: str | None = None,
    sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
    **engine_options: Any,
) -> AsyncEngine:
    """An async engine for ``url``.

    SQLite: WAL, ``busy_timeout`` and SQLAlchemy-controlled ``BEGIN`` (see ``SQLITE_BEGIN``).
    PostgreSQL: ``pool_pre_ping``; ``schema`` puts the tables in that schema (it becomes the
    connection's ``search_path``; the schema must exist). Other keyword arguments go to
    ``create_async_engine``.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("schema is only supported on PostgreSQL")
        ensure_sqlite_directory(parsed)
        engine = _create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine, busy_timeout=sqlite_busy_timeout)
        return engine
    options: dict[str, Any] = {"pool_pre_ping": True, **engine_options}
    if schema is not None:
        if parsed.get_backend_name() != "postgresql":
            raise ValueError("schema is only supported on PostgreSQL")
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        connect_args = dict(options.get("connect_args", {}))
        server_settings = dict(connect_args.get("server_settings", {}))
        server_settings["search_path"] = schema
        connect_args["server_settings"] = server_settings
        options["connect_args"] = connect_args
    return _create_async_engine(parsed, **options)


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout: float) -> None:
    busy_ms = max(int(busy_timeout * 1000), 0)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below): the sqlite3 module's legacy mode would
        # run SELECTs and DDL outside any transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in _SQLITE_BEGIN_MODES:
            raise ValueError(f"invalid {SQLITE_BEGIN} {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")


def dialect_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` with the dialect's ``ON CONFLICT`` clauses (PostgreSQL or SQLite)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the read model supports PostgreSQL and SQLite, not {dialect}")


def insert_for(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``dialect_insert`` for the database ``session`` is bound to."""
    return dialect_insert(session.get_bind().dialect.name, table)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


#: per SQLite engine, the event loop's lock that queues this process's writers
_sqlite_writers: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
#: the writer locks the current task (and what it started) holds: a write session opened
#: inside another does not wait for the lock its own task holds (it meets SQLite's lock,
#: held by the outer transaction, and fails after the busy timeout as it always did:
#: never nest write sessions)
_holding: ContextVar[frozenset[int]] = ContextVar("cartkeeper_sqlite_writer", default=frozenset())


def _sqlite_writer(session_factory: SessionFactory) -> asyncio.Lock | None:
    """The lock this process's writers to ``session_factory``'s SQLite database queue on
    (``None`` for another database)."""
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        return None
    loop = asyncio.get_running_loop()
    found = _sqlite_writers.get(engine.sync_engine)
    if found is None or found[0] is not loop:
        found = (loop, asyncio.Lock())
        _sqlite_writers[engine.sync_engine] = found
    return found[1]


@asynccontextmanager
async def write_session(session_factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session for a write transaction, committed when the block ends without error.

    On SQLite the transaction begins ``IMMEDIATE``: it takes the write lock (waiting up
    to the busy timeout) before reading, so it cannot fail half-way on a stale snapshot.
    The writers of one process queue first on an ``asyncio.Lock`` (first come, first
    served), so the database's lock is asked for by one of them at a time: SQLite's busy
    handler sleeps between tries (up to 100 ms each), and dozens of writers of a worker
    polling for the lock that way kept it idle between them (an order waited seconds for
    its number). Other processes (the web app, the CLI) still meet at the busy timeout.
    """
    writer = _sqlite_writer(session_factory)
    if writer is None or id(writer) in _holding.get():
        async with _immediate(session_factory) as session:
            yield session
        return
    async with writer:
        token = _holding.set(_holding.get() | {id(writer)})
        try:
            async with _immediate(session_factory) as session:
                yield session
        finally:
            _holding.reset(token)


@asynccontextmanager
async def _immediate(session_factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed at the end."""
    async with session_factory() as session:
        await session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        yield session
        await session.commit()


def by_code_point(column: Any, session: AsyncSession) -> Any:
    """``column`` compared by code point on every backend (PostgreSQL's default collation
    would sort ``pick-up`` and ``pickup`` another way than SQLite)."""
    return column if session.get_bind().dialect.name == "sqlite" else column.collate("C")


_T = TypeVar("_T")


async def write_transaction(
    session_factory: SessionFactory, work: Callable[[AsyncSession], Awaitable[_T]]
) -> _T:
    """``work`` in one write transaction (``write_session``), run once more if it fails on
    a unique key: two first edits of a shop racing to create its row (a campaign, an order
    status registry): the loser runs again, finds the row and waits for its lock."""
    for attempt in range(2):
        try:
            async with write_session(session_factory) as session:
                return await work(session)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- migrations


def alembic_config(url: str | URL | None = None, *, schema: str | None = None) -> Config:
    """The Alembic configuration for the read model; works from any directory."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        # Kept out of the ini options: their interpolation would mangle "%" in passwords.
        config.attributes["url"] = str(normalize_url(url).render_as_string(hide_password=False))
    if schema is not None:
        config.attributes["schema"] = schema
    return config


def make_migration_engine(url: str | URL, *, schema: str | None = None) -> AsyncEngine:
    """An engine for migrations: no pool, every SQLite transaction ``BEGIN IMMEDIATE``."""
    return make_engine(
        url,
        schema=schema,
        poolclass=NullPool,
        execution_options={SQLITE_BEGIN: "IMMEDIATE"},
    )


def lock_for_migrations(connection: Connection) -> None:
    """Serialize migrations across processes, for the rest of the current transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the transaction was begun
    ``IMMEDIATE`` (``make_migration_engine``) and already holds the write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def run_alembic_command(connection: Connection, config: Config, revision: str) -> None:
    """``alembic upgrade`` on ``connection`` (inside its transaction, after the lock)."""
    lock_for_migrations(connection)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


# Alembic keeps its running context in module globals: two upgrades interleaved on one
# event loop would trample each other, so they take turns (one lock per loop).
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _upgrade_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _loop_locks.get(loop)
    if lock is None:
        lock = _loop_locks[loop] = asyncio.Lock()
    return lock


async def upgrade_database(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Run ``alembic upgrade head`` for ``url``: idempotent, and safe to call from several
    processes at once. Creates a SQLite file's directory. ``schema``: see ``make_engine``."""
    config = alembic_config(url, schema=schema)
    async with _upgrade_lock():
        engine = make_migration_engine(url, schema=schema)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(run_alembic_command, config, revision)
        finally:
            await engine.dispose()
