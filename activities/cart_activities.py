"""The cart workflow's activities: the read model and order numbers.

Every activity is one short transaction and idempotent, so Temporal may retry it freely:
- ``project_cart`` upserts the snapshot and never goes backwards (by ``Cart.version``);
- ``allocate_order_number`` gives a cart one number, whatever the retries or races;
- ``load_cart_record`` reads the last projected snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from temporalio import activity

from activities.db import SessionFactory, write_session
from activities.models import CartRecord, OrderNumber
from activities.read_model import cart_values, get_cart_record
from workflows.contract import (
    ACTIVITY_ALLOCATE_ORDER_NUMBER,
    ACTIVITY_LOAD_CART_RECORD,
    ACTIVITY_PROJECT_CART,
    AllocateOrderNumberInput,
    Cart,
    CartRecordRequest,
    ProjectCartInput,
)

log = activity.logger

_PRIMARY_KEY = ("shop_id", "cart_id")


def _insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the read model supports PostgreSQL and SQLite, not {dialect}")


def upsert_cart_statement(dialect: str, values: dict[str, Any]) -> Insert:
    """INSERT the cart row, or UPDATE it only if ``values`` has a greater version."""
    statement = _insert(dialect, CartRecord).values(**values)
    return statement.on_conflict_do_update(
        index_elements=list(_PRIMARY_KEY),
        set_={name: statement.excluded[name] for name in values if name not in _PRIMARY_KEY},
        where=statement.excluded.version > CartRecord.version,
    )


class CartActivities:
    """The activities of the cart workflow, bound to the read model's sessions."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self.session_factory = session_factory

    @activity.defn(name=ACTIVITY_LOAD_CART_RECORD)
    async def load_cart_record(self, request: CartRecordRequest) -> Cart | None:
        """The cart's last projected snapshot, or ``None``."""
        return await get_cart_record(self.session_factory, request.shop_id, request.cart_id)

    @activity.defn(name=ACTIVITY_PROJECT_CART)
    async def project_cart(self, request: ProjectCartInput) -> None:
        """Write the snapshot to the read model unless a newer (or the same) version is
        already there: a late or repeated write changes nothing."""
        cart = request.cart
        values = cart_values(cart, datetime.now(UTC))
        if values["total"] != cart.total:
            log.warning(
                "cart %s/%s: total %s exceeds the database; stored clamped",
                cart.shop_id,
                cart.cart_id,
                cart.total,
            )
        async with write_session(self.session_factory) as session:
            dialect = session.get_bind().dialect.name
            result = await session.execute(upsert_cart_statement(dialect, values))
        written = bool(getattr(result, "rowcount", 1))
        log.debug(
            "cart %s/%s version %s %s",
            cart.shop_id,
            cart.cart_id,
            cart.version,
            "projected" if written else "skipped: not newer than the stored version",
        )

    @activity.defn(name=ACTIVITY_ALLOCATE_ORDER_NUMBER)
    async def allocate_order_number(self, request: AllocateOrderNumberInput) -> int:
        """The cart's order number: allocated on the first call, the same one ever after."""
        shop_id, cart_id = request.shop_id, request.cart_id
        existing = select(OrderNumber.number).where(
            OrderNumber.shop_id == shop_id, OrderNumber.cart_id == cart_id
        )
        # A retry finds its number without touching the sequence (PostgreSQL would burn
        # a value on every conflicting insert).
        async with self.session_factory() as session:
            number = (await session.execute(existing)).scalar_one_or_none()
        if number is not None:
            return number
        async with write_session(self.session_factory) as session:
            dialect = session.get_bind().dialect.name
            insert = (
                _insert(dialect, OrderNumber)
                .values(shop_id=shop_id, cart_id=cart_id, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=list(_PRIMARY_KEY))
                .returning(OrderNumber.number)
            )
            number = (await session.execute(insert)).scalar_one_or_none()
            allocated = number is not None
            if number is None:  # a concurrent call won the race: its number is the one
                number = (await session.execute(existing)).scalar_one()
        if allocated:
            log.info("cart %s/%s: order number %s allocated", shop_id, cart_id, number)
        return number
