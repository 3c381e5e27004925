"""The settings store: connections, their stored settings, and the audit trail of changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('connections',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('settings_version', sa.Integer(), nullable=False),
    sa.Column('wizard_progress', sa.Text(), nullable=False),
    sa.Column('set_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('connection_settings',
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('sealed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('connection_id', 'name')
    )
    op.create_table('settings_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('settings_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settings_changes_connection_id'), ['connection_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('settings_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settings_changes_connection_id'))
    op.drop_table('settings_changes')
    op.drop_table('connection_settings')
    op.drop_table('connections')
