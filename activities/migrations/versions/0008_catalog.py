"""Catalog: each shop's shipping methods with their cost, stock levels per SKU, and the
stock movements (takes, give-backs) applied once per key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shipping_methods",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("method_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "method_id", name="pk_shipping_methods"),
    )
    op.create_table(
        "stock_levels",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(200), nullable=False),
        sa.Column("level", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "sku", name="pk_stock_levels"),
        sa.CheckConstraint("level >= 0", name="ck_stock_levels_level_not_negative"),
    )
    op.create_table(
        "stock_movements",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(start=1),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("movement_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stock_movements"),
        sa.UniqueConstraint(
            "shop_id", "movement_key", name="uq_stock_movements_shop_id_movement_key"
        ),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("stock_movements")
    op.drop_table("stock_levels")
    op.drop_table("shipping_methods")
