"""A payment webhook's delivery is claimed while it is under way
(``webhook_deliveries.claimed_at``, ``starter.web.webhooks``): a second delivery of the
same ``webhook-id`` that comes while the first one signals the cart waits for it and is
answered ``duplicate``, instead of signalling the cart a second time. A claim that is not
released (its process died) expires; a delivery that failed releases it at once.

Existing rows have no claim: a retry of an undelivered one takes it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claimed_at")
