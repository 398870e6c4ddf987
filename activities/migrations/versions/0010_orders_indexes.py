"""Indexes for the admin's orders list (``activities.orders_query``): every filter and
the counts per status are served by an index, so a page reads a few rows whatever the
number of carts and orders.

- (shop, state, ordered_at, cart): the orders by creation time, the date range;
- (shop, state, order_status, ordered_at, cart): a status, and the counts per status;
- (shop, state, locked_at, cart): the not finished orders (locked carts) by time;
- (shop, order_number): one order by its number.

(A customer's e-mail uses ``ix_carts_shop_id_email`` of 0006.)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_carts_shop_id_state_ordered_at": ["shop_id", "state", "ordered_at", "cart_id"],
    "ix_carts_shop_id_state_order_status": [
        "shop_id",
        "state",
        "order_status",
        "ordered_at",
        "cart_id",
    ],
    "ix_carts_shop_id_state_locked_at": ["shop_id", "state", "locked_at", "cart_id"],
    "ix_carts_shop_id_order_number": ["shop_id", "order_number"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "carts", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="carts")
