"""The client of the admin's orders list on the read model (``activities.orders_query``):
orders and not finished orders, filtered and paged, one order by its number, the counts
per status. No Temporal connection is needed.

    async with OrdersClient.connect(settings) as orders:      # or OrdersClient(sessions)
        page = await orders.list("demo", status="P", limit=20)
        more = await orders.list("demo", status="P", limit=20, after=page.next_cursor)
        order = await orders.get("demo", 1042)
        counts = await orders.counts("demo")                  # {"P": 12, "not_finished": 3}

Refusals: ``OrdersQueryRefused`` (``invalid_filter``, ``invalid_cursor``,
``order_not_found``), with ``code`` and ``message``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from activities import orders_query
from activities.orders_query import (
    DEFAULT_LIMIT,
    NO_RETURN,
    NOT_FINISHED,
    OrderPage,
    OrderRow,
    OrdersQueryRefused,
    Sort,
)
from starter.read_model_client import ReadModelClient

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from activities.settings import Settings

__all__ = ["NOT_FINISHED", "OrderPage", "OrderRow", "OrdersClient", "OrdersQueryRefused"]


class OrdersClient(ReadModelClient):
    """Read shops' orders lists. ``not_finished_when``: a shop's conditions for not
    finished orders (``Settings.not_finished_for``; default: the locked carts only)."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        clock: Callable[[], datetime] | None = None,
        not_finished_when: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        super().__init__(sessions, clock=clock)
        self._not_finished_when = not_finished_when or (lambda _shop: (NO_RETURN,))

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings, **options: Any) -> AsyncIterator[Self]:
        """``ReadModelClient.connect``, with the settings' not finished conditions."""
        options.setdefault("not_finished_when", settings.not_finished_for)
        async with super().connect(settings, **options) as client:
            yield client

    async def list(
        self,
        shop_id: str,
        *,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        email: str | None = None,
        number: int | None = None,
        include_not_finished: bool = True,
        sort: Sort = "newest",
        limit: int = DEFAULT_LIMIT,
        after: str | None = None,
    ) -> OrderPage:
        """A page of the shop's orders (and not finished ones); the next page:
        ``after=page.next_cursor`` with the same filters and sort."""
        return await orders_query.list_orders(
            self.sessions,
            shop_id,
            status=status,
            since=since,
            until=until,
            email=email,
            number=number,
            include_not_finished=include_not_finished,
            sort=sort,
            limit=limit,
            after=after,
            not_finished_when=self._not_finished_when(shop_id),
        )

    async def get(self, shop_id: str, number: int) -> OrderRow:
        """The shop's order ``number`` (``order_not_found`` otherwise)."""
        return await orders_query.get_order(self.sessions, shop_id, number)

    async def counts(self, shop_id: str) -> dict[str, int]:
        """Orders per status letter, and the not finished ones under ``NOT_FINISHED``."""
        return await orders_query.count_by_status(
            self.sessions, shop_id, not_finished_when=self._not_finished_when(shop_id)
        )
