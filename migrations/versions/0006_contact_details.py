"""Contacts kept true: each contact's customer id and fields as last written; a rebooking's contact.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("details", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_contacts_customer_id"), ["customer_id"], unique=False)
    with op.batch_alter_table("rebookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rebookings", schema=None) as batch_op:
        batch_op.drop_column("contact_id")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_customer_id"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("details")
        batch_op.drop_column("customer_id")
