"""The sync ledger: orders, refunds, contacts, events and service state.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 15:53:57.752655
"""

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('contact_id', sa.String(length=32), nullable=False),
    sa.Column('adopted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email')
    )
    op.create_table('ledger_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('refund_id', sa.BigInteger(), nullable=True),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_events_order_id'), ['order_id'], unique=False)

    op.create_table('orders',
    sa.Column('order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('order_number', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=True),
    sa.Column('date_modified', sa.DateTime(timezone=True), nullable=False),
    sa.Column('date_paid', sa.DateTime(timezone=True), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('order_total', sa.String(length=32), nullable=True),
    sa.Column('customer_email', sa.String(length=320), nullable=True),
    sa.Column('contact_id', sa.String(length=32), nullable=True),
    sa.Column('invoice_id', sa.String(length=32), nullable=True),
    sa.Column('invoice_number', sa.String(length=64), nullable=True),
    sa.Column('invoice_url', sa.Text(), nullable=True),
    sa.Column('invoice_total', sa.String(length=32), nullable=True),
    sa.Column('payment_id', sa.String(length=32), nullable=True),
    sa.Column('vat_report', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('failure_kind', sa.String(length=16), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('backfilled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('order_id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_updated_at'), ['updated_at'], unique=False)

    op.create_table('service_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('refunds',
    sa.Column('refund_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=True),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('credit_invoice_id', sa.String(length=32), nullable=True),
    sa.Column('credit_invoice_number', sa.String(length=64), nullable=True),
    sa.Column('credit_total', sa.String(length=32), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.order_id'], ),
    sa.PrimaryKeyConstraint('refund_id')
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_state'))
        batch_op.drop_index(batch_op.f('ix_refunds_order_id'))

    op.drop_table('refunds')
    op.drop_table('service_state')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_updated_at'))
        batch_op.drop_index(batch_op.f('ix_orders_state'))

    op.drop_table('orders')
    with op.batch_alter_table('ledger_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_events_order_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_events_at'))

    op.drop_table('ledger_events')
    op.drop_table('contacts')
