"""Coupons: a discount code per cart and reminder, redeemed at most once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=False),
        sa.Column("issued_for", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("single_use", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("redeemed_at", _utc(), nullable=True),
        sa.Column("redeemed_by", sa.String(64), nullable=True),
        sa.Column("redemptions", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("shop_id", "code", name="pk_coupons"),
        sa.UniqueConstraint(
            "shop_id", "cart_id", "issued_for", name="uq_coupons_shop_id_cart_id_issued_for"
        ),
    )


def downgrade() -> None:
    op.drop_table("coupons")
