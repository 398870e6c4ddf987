"""Reminders: campaigns and their reminders, the send ledger, suppressions, recovery
clicks; the cart's recovery link and coupon in the read model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("carts") as batch:
        batch.add_column(sa.Column("recovered_via", sa.String(64), nullable=True))
        batch.add_column(sa.Column("coupon_code", sa.String(32), nullable=True))
    op.create_table(
        "campaigns",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("shop_name", sa.String(200), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("restore_url", sa.String(2000), nullable=False),
        sa.Column("requires_consent", sa.Boolean(), nullable=False),
        sa.Column("restart_rule", sa.String(16), nullable=False),
        sa.Column("quiet_start_minute", sa.Integer(), nullable=False),
        sa.Column("quiet_end_minute", sa.Integer(), nullable=False),
        sa.Column("default_time_zone", sa.String(64), nullable=False),
        sa.Column("cap_count", sa.Integer(), nullable=False),
        sa.Column("cap_period_days", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("shop_id", name="pk_campaigns"),
    )
    op.create_table(
        "campaign_reminders",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("reminder_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("delay_seconds", sa.BigInteger(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("coupon_kind", sa.String(16), nullable=True),
        sa.Column("coupon_amount", sa.BigInteger(), nullable=True),
        sa.Column("coupon_expiry_days", sa.Integer(), nullable=True),
        sa.Column("variant_b", sa.JSON(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("removed_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("shop_id", "reminder_id", name="pk_campaign_reminders"),
    )
    op.create_table(
        "reminder_sends",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=False),
        sa.Column("lineage", sa.String(64), nullable=False),
        sa.Column("reminder_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(600), nullable=True),
        sa.Column("variant", sa.String(8), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("coupon_code", sa.String(32), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("due_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint(
            "shop_id", "cart_id", "lineage", "reminder_id", name="pk_reminder_sends"
        ),
    )
    op.create_index("ix_reminder_sends_email_sent_at", "reminder_sends", ["email", "sent_at"])
    op.create_index(
        "ix_reminder_sends_shop_id_created_at", "reminder_sends", ["shop_id", "created_at"]
    )
    op.create_table(
        "suppressions",
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "email", name="pk_suppressions"),
    )
    op.create_table(
        "recovery_clicks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(start=1),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("cart_id", sa.String(64), nullable=False),
        sa.Column("lineage", sa.String(64), nullable=False),
        sa.Column("reminder_id", sa.String(64), nullable=False),
        sa.Column("clicked_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_clicks"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_recovery_clicks_shop_id_cart_id", "recovery_clicks", ["shop_id", "cart_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_clicks_shop_id_cart_id", table_name="recovery_clicks")
    op.drop_table("recovery_clicks")
    op.drop_table("suppressions")
    op.drop_index("ix_reminder_sends_shop_id_created_at", table_name="reminder_sends")
    op.drop_index("ix_reminder_sends_email_sent_at", table_name="reminder_sends")
    op.drop_table("reminder_sends")
    op.drop_table("campaign_reminders")
    op.drop_table("campaigns")
    with op.batch_alter_table("carts") as batch:
        batch.drop_column("coupon_code")
        batch.drop_column("recovered_via")
