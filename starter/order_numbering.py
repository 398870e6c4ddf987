"""The client of a shop's order numbering (its prefix and next number), on the read model
(``activities.order_numbering``)."""

from __future__ import annotations

from activities import order_numbering
from activities.order_numbering import Numbering, NumberingRefused
from starter.read_model_client import ReadModelClient

__all__ = ["Numbering", "NumberingRefused", "OrderNumberingClient"]


class OrderNumberingClient(ReadModelClient):
    """Read and change shops' order numbering."""

    async def get(self, shop_id: str) -> Numbering:
        """The shop's prefix and the number its next order gets."""
        return await order_numbering.numbering(self.sessions, shop_id)

    async def set(
        self, shop_id: str, *, prefix: str | None = None, start: int | None = None
    ) -> Numbering:
        """Change the prefix of the numbers to come and/or move the next number forward
        (``NumberingRefused`` otherwise)."""
        return await order_numbering.set_numbering(
            self.sessions, shop_id, prefix=prefix, start=start, now=self._clock()
        )
