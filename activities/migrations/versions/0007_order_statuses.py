"""Order statuses: each shop's registry of letter-coded statuses (CS-Cart), and the row
that serialises its edits.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "order_status_registries",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("shop_id", name="pk_order_status_registries"),
    )
    op.create_table(
        "order_statuses",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("letter", sa.String(1), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("colour", sa.String(7), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("notify_customer", sa.Boolean(), nullable=False),
        sa.Column("notify_department", sa.Boolean(), nullable=False),
        sa.Column("inventory", sa.String(16), nullable=False),
        sa.Column("contents_editable", sa.Boolean(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "letter", name="pk_order_statuses"),
    )


def downgrade() -> None:
    op.drop_table("order_statuses")
    op.drop_table("order_status_registries")
