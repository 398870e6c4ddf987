"""The not finished orders a shop chooses (DOMAIN.md section 3, seed 000): besides the
locked carts ("no return from the gateway"), carts that reached the payment step and
carts whose online payment failed or was cancelled.

- ``carts.payment_step_at``: when the cart reached the payment step (the checkout form or
  the gateway) and has stayed there since (``Cart.payment_step_at``);
- ``carts.last_payment_status``: the status of the cart's current payment attempt;
- ``carts.listing``: what the orders list shows beyond the columns (the customer's name,
  the payment method, the order's total, delivery and status name), so a page never
  parses the whole snapshot (``activities.order_rows.listing_of``), filled here from each
  row's snapshot;
- (shop, state, payment_step_at, cart): those carts by time, for the orders list, and
  (shop, state, last_payment_status, payment_step_at, cart): those whose payment failed.

Existing rows get ``payment_step_at`` and ``last_payment_status`` on their next
projection (nothing ran in production).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_carts_shop_id_state_payment_step_at": ["shop_id", "state", "payment_step_at", "cart_id"],
    "ix_carts_shop_id_state_last_payment_status": [
        "shop_id",
        "state",
        "last_payment_status",
        "payment_step_at",
        "cart_id",
    ],
}


def _fill_listing() -> None:
    """Each row's ``listing`` from its snapshot, a batch at a time."""
    from activities.order_rows import listing_of

    carts = sa.table(
        "carts",
        sa.column("shop_id", sa.String()),
        sa.column("cart_id", sa.String()),
        sa.column("snapshot", sa.JSON()),
        sa.column("listing", sa.JSON()),
    )
    connection = op.get_bind()
    after: tuple[str, str] = ("", "")
    while True:
        rows = connection.execute(
            sa.select(carts.c.shop_id, carts.c.cart_id, carts.c.snapshot)
            .where(sa.tuple_(carts.c.shop_id, carts.c.cart_id) > sa.tuple_(*after))
            .order_by(carts.c.shop_id, carts.c.cart_id)
            .limit(1000)
        ).all()
        if not rows:
            return
        for shop_id, cart_id, snapshot in rows:
            connection.execute(
                carts.update()
                .where(carts.c.shop_id == shop_id, carts.c.cart_id == cart_id)
                .values(listing=listing_of(snapshot if isinstance(snapshot, dict) else {}))
            )
        after = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    with op.batch_alter_table("carts") as batch:
        # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
        batch.add_column(sa.Column("payment_step_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_payment_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("listing", sa.JSON(), nullable=True))
    _fill_listing()
    for name, columns in INDEXES.items():
        op.create_index(name, "carts", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="carts")
    with op.batch_alter_table("carts") as batch:
        batch.drop_column("listing")
        batch.drop_column("last_payment_status")
        batch.drop_column("payment_step_at")
