"""An index for the reminders' check for a newer cart of the same customer (by shop and
lower-cased e-mail): without it every send read every cart of the shop.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_carts_shop_id_email", "carts", ["shop_id", sa.func.lower(sa.text("customer_email"))]
    )


def downgrade() -> None:
    op.drop_index("ix_carts_shop_id_email", table_name="carts")
