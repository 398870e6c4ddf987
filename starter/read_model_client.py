"""The base of the clients that work on the read-model database alone (no Temporal):
campaigns, coupons, order statuses, shipping methods and stock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from activities.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadModelClient:
    """``sessions``: the read model's session factory; ``clock``: the time writes are
    stamped with and checks are made at (tests set it)."""

    def __init__(
        self, sessions: SessionFactory, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.sessions = sessions
        self._clock = clock or utc_now

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings, **options: Any) -> AsyncIterator[Self]:
        """A client on the settings' read model (``DATABASE_URL``), closed afterwards;
        ``options`` go to the constructor."""
        from activities.db import make_engine, make_session_factory

        engine = make_engine(settings.resolved_database_url())
        try:
            yield cls(make_session_factory(engine), **options)
        finally:
            await engine.dispose()
