"""The order-status client for admin tools: a shop's letter-coded order statuses in the
read-model database (``activities.order_statuses`` does the checking and the writing).

    statuses = OrderStatusClient(sessions)
    registry = await statuses.list("demo")                 # the defaults until edited
    await statuses.add("demo", "g", "Gift wrapping", colour="#ff4081", contents_editable=True)
    await statuses.edit("demo", "G", name="Gift wrap", position=65)
    await statuses.delete("demo", "G")
    status = await statuses.for_admin("demo", "p")         # what an admin may set, or why not

A refusal is a ``StatusRefused`` with a ``lower_snake`` code (the table is in
``activities.order_status_rules``): ``status_limit_reached``, ``status_letter_taken``,
``status_builtin``, ``unknown_status``, ``status_hidden``, ``invalid_status``,
``invalid_shop_id``, ``invalid_admin``. No Temporal connection is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from activities import order_statuses
from activities.order_statuses import (
    InventoryEffect,
    OrderStatusDef,
    StatusRefused,
    StatusRegistry,
)
from starter.read_model_client import ReadModelClient

if TYPE_CHECKING:
    pass

__all__ = ["OrderStatusClient", "OrderStatusDef", "StatusRefused", "StatusRegistry"]


def _given(**values: Any) -> dict[str, Any]:
    """The values that were given (not ``None``)."""
    return {name: value for name, value in values.items() if value is not None}


class OrderStatusClient(ReadModelClient):
    """Read and edit shops' order statuses. ``by`` (who edits, at most 64 characters) is
    kept as the registry's last editor; ``clock``: the time edits are stamped with."""

    # ------------------------------------------------------------------ reading

    async def list(self, shop_id: str) -> StatusRegistry:
        """The shop's statuses by position, then letter, with the registry's version."""
        return await order_statuses.load_registry(self.sessions, shop_id)

    async def get(self, shop_id: str, letter: str) -> OrderStatusDef:
        """Status ``letter`` (any case, hidden ones too), or ``unknown_status``."""
        return await order_statuses.find_status(self.sessions, shop_id, letter)

    async def for_admin(self, shop_id: str, letter: str) -> OrderStatusDef:
        """The status an admin may set on an order (``unknown_status``, ``status_hidden``)."""
        return await order_statuses.status_for_admin(self.sessions, shop_id, letter)

    # ------------------------------------------------------------------ editing

    async def add(
        self,
        shop_id: str,
        letter: str,
        name: str,
        *,
        colour: str | None = None,
        position: int | None = None,
        paid: bool | None = None,
        final: bool | None = None,
        notify_customer: bool | None = None,
        notify_department: bool | None = None,
        inventory: InventoryEffect | None = None,
        contents_editable: bool | None = None,
        by: str | None = None,
    ) -> OrderStatusDef:
        """Add a status; what is not given (``None``) gets the store's default (grey,
        after the last status, flags off, inventory ``none``)."""
        values = _given(
            colour=colour,
            position=position,
            paid=paid,
            final=final,
            notify_customer=notify_customer,
            notify_department=notify_department,
            inventory=inventory,
            contents_editable=contents_editable,
        )
        return await order_statuses.add_status(
            self.sessions, shop_id, letter, name, now=self._clock(), by=by, **values
        )

    async def edit(
        self,
        shop_id: str,
        letter: str,
        *,
        new_letter: str | None = None,
        name: str | None = None,
        colour: str | None = None,
        position: int | None = None,
        paid: bool | None = None,
        final: bool | None = None,
        notify_customer: bool | None = None,
        notify_department: bool | None = None,
        inventory: InventoryEffect | None = None,
        contents_editable: bool | None = None,
        by: str | None = None,
    ) -> OrderStatusDef:
        """Change what is given (not ``None``) of status ``letter``; the rest stays.
        ``new_letter`` re-letters a status an admin added."""
        changes = _given(
            letter=new_letter,
            name=name,
            colour=colour,
            position=position,
            paid=paid,
            final=final,
            notify_customer=notify_customer,
            notify_department=notify_department,
            inventory=inventory,
            contents_editable=contents_editable,
        )
        return await order_statuses.edit_status(
            self.sessions, shop_id, letter, changes, now=self._clock(), by=by
        )

    async def delete(self, shop_id: str, letter: str, *, by: str | None = None) -> OrderStatusDef:
        """Delete a status an admin added (a default: ``status_builtin``)."""
        return await order_statuses.delete_status(
            self.sessions, shop_id, letter, now=self._clock(), by=by
        )
