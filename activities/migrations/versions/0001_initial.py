"""The read model: carts and order numbers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "carts",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("customer_email", sa.String(), nullable=True),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("order_number", sa.BigInteger(), nullable=True),
        sa.Column("order_status", sa.String(), nullable=True),
        sa.Column("order_paid", sa.Boolean(), nullable=False),
        sa.Column("needs_admin", sa.Boolean(), nullable=False),
        sa.Column("lock_reason", sa.String(32), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("last_activity_at", _utc(), nullable=True),
        sa.Column("locked_at", _utc(), nullable=True),
        sa.Column("abandoned_at", _utc(), nullable=True),
        sa.Column("ordered_at", _utc(), nullable=True),
        sa.Column("closed_at", _utc(), nullable=True),
        sa.Column("projected_at", _utc(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "cart_id", name="pk_carts"),
    )
    op.create_index("ix_carts_state_updated_at", "carts", ["state", "updated_at"])
    op.create_index("ix_carts_shop_id_state", "carts", ["shop_id", "state"])
    op.create_index("ix_carts_needs_admin", "carts", ["needs_admin"])
    op.create_index("ix_carts_updated_at", "carts", ["updated_at"])

    op.create_table(
        "order_numbers",
        sa.Column(
            "number",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(start=1),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_order_numbers"),
        sa.UniqueConstraint("shop_id", "cart_id", name="uq_order_numbers_shop_id_cart_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("order_numbers")
    op.drop_index("ix_carts_updated_at", table_name="carts")
    op.drop_index("ix_carts_needs_admin", table_name="carts")
    op.drop_index("ix_carts_shop_id_state", table_name="carts")
    op.drop_index("ix_carts_state_updated_at", table_name="carts")
    op.drop_table("carts")
