"""An admin notice's delivery is claimed while it is under way
(``admin_notices.claimed_at``, ``activities.admin_mail``): a second delivery of the same
notice that comes meanwhile (the digest sent by hand while its schedule sends it) sends
nothing and is told another one is sending it, instead of sending the e-mail a second
time. A claim that is not released (its process died) expires; a delivery that failed
before the relay accepted the message releases it at once.

Existing rows have no claim: a delivery of an unsent one takes it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_notices") as batch:
        # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_notices") as batch:
        batch.drop_column("claimed_at")
