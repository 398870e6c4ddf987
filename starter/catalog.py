"""The catalog client: each shop's shipping methods and stock levels in the read-model
database (``activities.shipping_methods`` and ``activities.stock`` do the checking and the
writing). No Temporal connection is needed.

    async with CatalogClient.connect(settings) as catalog:   # or CatalogClient(sessions)
        await catalog.add_shipping_method("demo", "courier", name="Courier", cost=490,
                                          currency="EUR")
        offer = await catalog.shipping_methods("demo", enabled_only=True)
        await catalog.set_stock("demo", "mug", 12)               # the storefront
        level = await catalog.stock_level("demo", "mug")        # None: not tracked
        taken = await catalog.take_stock("demo", "order-5:take", [("mug", 2)])

**The storefront's entry point for stock.** ``starter.client.CartkeeperClient`` holds
only a Temporal client (it has no read-model connection), so it gets no stock methods:
a storefront sets and reads levels through this client (``set_stock``, ``stock_level``).

Refusals: ``ShippingMethodRefused`` (``shipping_method_exists``,
``shipping_method_not_found``, ``invalid_shipping_method``, ``invalid_shop_id``) and
``StockRefused`` (``invalid_stock_level``, ``invalid_sku``, ``invalid_stock_movement``,
``stock_movement_conflict``, ``invalid_page``, ``invalid_shop_id``); both have ``code``
and ``message``. A SKU without a level is not tracked: unlimited stock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from activities import shipping_methods, stock
from activities.shipping_methods import MethodSnapshot, ShippingMethod, ShippingMethodRefused
from activities.stock import StockLevel, StockMovement, StockPage, StockRefused
from starter.read_model_client import ReadModelClient

if TYPE_CHECKING:
    pass

__all__ = [
    "CatalogClient",
    "MethodSnapshot",
    "ShippingMethod",
    "ShippingMethodRefused",
    "StockLevel",
    "StockMovement",
    "StockPage",
    "StockRefused",
]


class CatalogClient(ReadModelClient):
    """Shops' shipping methods and stock levels. ``clock``: the time writes are stamped
    with (tests set it)."""

    # ------------------------------------------------------------------ shipping methods

    async def shipping_methods(
        self, shop_id: str, *, enabled_only: bool = False
    ) -> list[ShippingMethod]:
        """The shop's methods by position, then id (``enabled_only``: what a customer
        may be offered)."""
        return await shipping_methods.list_methods(
            self.sessions, shop_id, enabled_only=enabled_only
        )

    async def shipping_method(self, shop_id: str, method_id: str) -> ShippingMethod:
        return await shipping_methods.get_method(self.sessions, shop_id, method_id)

    async def add_shipping_method(
        self,
        shop_id: str,
        method_id: str,
        *,
        name: str,
        cost: int,
        currency: str,
        position: int | None = None,
        enabled: bool = True,
    ) -> ShippingMethod:
        return await shipping_methods.add_method(
            self.sessions,
            shop_id,
            method_id,
            name=name,
            cost=cost,
            currency=currency,
            position=position,
            enabled=enabled,
            now=self._clock(),
        )

    async def edit_shipping_method(
        self,
        shop_id: str,
        method_id: str,
        *,
        name: str | None = None,
        cost: int | None = None,
        currency: str | None = None,
        position: int | None = None,
        enabled: bool | None = None,
    ) -> ShippingMethod:
        """Change the fields given; the others stay."""
        return await shipping_methods.edit_method(
            self.sessions,
            shop_id,
            method_id,
            name=name,
            cost=cost,
            currency=currency,
            position=position,
            enabled=enabled,
            now=self._clock(),
        )

    async def delete_shipping_method(self, shop_id: str, method_id: str) -> ShippingMethod:
        """Delete it (orders keep their snapshot) and answer what it was."""
        return await shipping_methods.delete_method(self.sessions, shop_id, method_id)

    async def method_snapshot(self, shop_id: str, method_id: str) -> MethodSnapshot:
        """``(method_id, name, cost, currency)``: what an order records of its method."""
        return await shipping_methods.method_snapshot(self.sessions, shop_id, method_id)

    # ------------------------------------------------------------------ stock

    async def set_stock(self, shop_id: str, sku: str, level: int) -> StockLevel:
        """Set the SKU's level (a whole number, 0 or more); the SKU is tracked from now."""
        return await stock.set_stock_level(self.sessions, shop_id, sku, level, now=self._clock())

    async def stock_level(self, shop_id: str, sku: str) -> StockLevel | None:
        """The SKU's level, or ``None``: not tracked (unlimited stock)."""
        return await stock.stock_level(self.sessions, shop_id, sku)

    async def stock_levels(
        self, shop_id: str, *, after: str | None = None, limit: int = stock.DEFAULT_PAGE
    ) -> StockPage:
        """A page of the shop's levels by SKU; the next page: ``after=page.next_after``."""
        return await stock.list_stock_levels(self.sessions, shop_id, after=after, limit=limit)

    async def take_stock(
        self, shop_id: str, movement_key: str, lines: Iterable[tuple[str, int]]
    ) -> StockMovement:
        """Take the lines' stock, all or nothing, once per key (``short``: what lacks)."""
        return await stock.take_stock(
            self.sessions, shop_id, movement_key, lines, now=self._clock()
        )

    async def give_back_stock(
        self, shop_id: str, movement_key: str, lines: Iterable[tuple[str, int]]
    ) -> StockMovement:
        """Give the lines' stock back, once per key."""
        return await stock.give_back_stock(
            self.sessions, shop_id, movement_key, lines, now=self._clock()
        )
