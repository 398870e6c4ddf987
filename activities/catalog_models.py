"""The catalog's tables: each shop's shipping methods and stock levels, and the stock
movements that took or gave back stock (``activities.shipping_methods``,
``activities.stock``).

Registered on ``activities.models.Base.metadata`` whenever ``activities.models`` is
imported (its last line imports this module). Schema changes go through Alembic (migration
0008); ``tests/test_read_model.py`` checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Identity,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from activities.models import ID_LENGTH, Base

#: a shipping method's name (``activities.shipping_methods``)
METHOD_NAME_LENGTH = 128
#: a SKU: the cart's lines allow 200 characters (``workflows.validation.MAX_TEXT``)
SKU_LENGTH = 200
#: a stock movement's key (``activities.stock``)
MOVEMENT_KEY_LENGTH = 255


class ShippingMethodRecord(Base):
    """One shipping method of a shop with its cost. Orders record a snapshot of the name
    and cost they were given (``shipping_methods.method_snapshot``): deleting or editing a
    method here never changes an order."""

    __tablename__ = "shipping_methods"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: the admin's slug: lower case letters and digits, words joined by ``_`` or ``-``
    method_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(METHOD_NAME_LENGTH))
    #: minor units of ``currency``
    cost: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    position: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StockLevelRecord(Base):
    """How many units of a SKU a shop has. A SKU without a row is not tracked: its stock
    is unlimited (takes never run short of it)."""

    __tablename__ = "stock_levels"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    level: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("level >= 0", name="level_not_negative"),)


class StockMovementRecord(Base):
    """A take or give-back of stock that was applied, once per (shop, key): the same key
    again changes nothing and is answered with what is recorded here. A take that ran
    short changed nothing and is not recorded."""

    __tablename__ = "stock_movements"

    #: SQLite: ``INTEGER PRIMARY KEY AUTOINCREMENT``; PostgreSQL: a bigint identity
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        Identity(start=1),
        primary_key=True,
        autoincrement=True,
    )
    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    movement_key: Mapped[str] = mapped_column(String(MOVEMENT_KEY_LENGTH))
    #: ``take`` or ``give_back``
    kind: Mapped[str] = mapped_column(String(16))
    #: ``[[sku, quantity], ...]`` by sku
    lines: Mapped[list[Any]] = mapped_column(JSON)
    #: ``[[sku, level after or null], ...]`` by sku (``null``: not tracked)
    levels: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("shop_id", "movement_key", name="uq_stock_movements_shop_id_movement_key"),
        {"sqlite_autoincrement": True},
    )
