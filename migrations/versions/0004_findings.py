"""What the invoice booked (its order version and fingerprint) and the findings after booking.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("booked_version", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=32), nullable=True))
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("invoice_id", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subject", name="uq_findings_kind_subject"),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_findings_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_table("findings")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("booked_version")
