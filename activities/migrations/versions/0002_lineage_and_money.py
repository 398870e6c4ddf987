"""Cart lineage (a cart id reused after Temporal forgot the old cart is a new cart), the
order's amount paid and the open attention items.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_AUTOINCREMENT = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("carts") as batch:
        batch.add_column(sa.Column("lineage", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("order_amount_paid", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("attention", sa.String(), nullable=True))
    # SQLite rebuilds the table: keep AUTOINCREMENT (a number is never given twice)
    with op.batch_alter_table("order_numbers", table_kwargs=_SQLITE_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("lineage", sa.String(64), nullable=False, server_default=""))
        batch.drop_constraint("uq_order_numbers_shop_id_cart_id", type_="unique")
        batch.create_unique_constraint(
            "uq_order_numbers_shop_id_cart_id_lineage", ["shop_id", "cart_id", "lineage"]
        )


def downgrade() -> None:
    with op.batch_alter_table("order_numbers", table_kwargs=_SQLITE_AUTOINCREMENT) as batch:
        batch.drop_constraint("uq_order_numbers_shop_id_cart_id_lineage", type_="unique")
        batch.create_unique_constraint("uq_order_numbers_shop_id_cart_id", ["shop_id", "cart_id"])
        batch.drop_column("lineage")
    with op.batch_alter_table("carts") as batch:
        batch.drop_column("attention")
        batch.drop_column("order_amount_paid")
        batch.drop_column("lineage")
