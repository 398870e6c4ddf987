"""The HTTP API's idempotency records remember what a retry must send
(``starter.web.idempotency``):

- ``idempotency_keys.released_at``: the key's last attempt failed with a 5xx and gave the
  key back, and the record stays because the next attempt must send new update ids;
- ``idempotency_keys.update_generation``: the generation of the Temporal update ids the
  request's attempts send (0: the ids of before; one more after each attempt whose
  updates all failed for sure, so that a transient failure, ``statuses_unavailable``
  say, is not answered again by Temporal to every retry).

Existing records keep generation 0: a retry sends the ids it sent before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        # timestamptz on PostgreSQL; SQLite stores naive UTC (models.UTCDateTime converts)
        batch.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("update_generation", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("update_generation")
        batch.drop_column("released_at")
