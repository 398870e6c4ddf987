"""The client of the journal per cart and per customer on the read model
(``activities.journal_query``): what happened to a cart (journal entries, reminders sent
and skipped, recovery clicks), and to every cart of a customer, newest first, a page at
a time. No Temporal connection is needed.

    async with JournalClient.connect(settings) as journal:    # or JournalClient(sessions)
        cart = await journal.cart("demo", "cart-1")           # oldest first
        page = await journal.customer("demo", "Ann@Example.com", limit=50)
        more = await journal.customer("demo", "ann@example.com", after=page.next_cursor)

Refusals: ``JournalQueryRefused`` (``invalid_filter``, ``invalid_cursor``,
``journal_not_found``), with ``code`` and ``message``.
"""

from __future__ import annotations

from activities import journal_query
from activities.journal_query import (
    DEFAULT_LIMIT,
    CartJournal,
    JournalItem,
    JournalPage,
    JournalQueryRefused,
)
from starter.read_model_client import ReadModelClient

__all__ = ["CartJournal", "JournalClient", "JournalItem", "JournalPage", "JournalQueryRefused"]


class JournalClient(ReadModelClient):
    """Read carts' and customers' journals."""

    async def cart(self, shop_id: str, cart_id: str) -> CartJournal:
        """The cart's journal, oldest first (``journal_not_found``: no such cart)."""
        return await journal_query.cart_journal(self.sessions, shop_id, cart_id)

    async def customer(
        self,
        shop_id: str,
        email: str,
        *,
        limit: int = DEFAULT_LIMIT,
        after: str | None = None,
    ) -> JournalPage:
        """A page of the journal of every cart of the customer (any case), newest first;
        the next page: ``after=page.next_cursor`` with the same e-mail."""
        return await journal_query.customer_journal(
            self.sessions, shop_id, email, limit=limit, after=after
        )
