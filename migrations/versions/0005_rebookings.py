"""Rebooking changed orders: each order's invoice version, the rebookings, what a refund credited.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credited_invoice_id", sa.String(length=32), nullable=True))
    op.create_table(
        "rebookings",
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("old_invoice_id", sa.String(length=32), nullable=False),
        sa.Column("old_invoice_number", sa.String(length=64), nullable=True),
        sa.Column("old_total", sa.String(length=32), nullable=True),
        sa.Column("credit_invoice_id", sa.String(length=32), nullable=True),
        sa.Column("credit_invoice_number", sa.String(length=64), nullable=True),
        sa.Column("credit_total", sa.String(length=32), nullable=True),
        sa.Column("payment_id", sa.String(length=32), nullable=True),
        sa.Column("new_invoice_id", sa.String(length=32), nullable=True),
        sa.Column("new_invoice_number", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "version"),
    )
    with op.batch_alter_table("rebookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rebookings_state"), ["state"], unique=False)


def downgrade() -> None:
    op.drop_table("rebookings")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("credited_invoice_id")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("invoice_version")
