"""Every ledger row carries its connection: the same order id, refund id or e-mail address in two
shops are two rows; and a connection has a name and may be paused or removed. Existing rows become
connection 1's (the environment's): nothing is lost.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Tables whose primary key gains the connection (contacts gain the administration's contact book).
_KEYED = {
    "orders": ("connection_id", ["connection_id", "order_id"]),
    "refunds": ("connection_id", ["connection_id", "refund_id"]),
    "contacts": ("contact_book_id", ["contact_book_id", "email"]),
    "service_state": ("connection_id", ["connection_id", "key"]),
    "rebookings": ("connection_id", ["connection_id", "order_id", "version"]),
}
# SQLite's foreign keys and primary keys have no names; batch mode names them to drop them.
_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


def _column(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), autoincrement=False, nullable=False, server_default="1")


def _old_refund_fk() -> str:
    (key,) = sa.inspect(op.get_bind()).get_foreign_keys("refunds")  # 0001's, named or not
    return str(key["name"] or "fk_refunds_order_id_orders")


def _old_pk(table: str) -> str:
    return str(sa.inspect(op.get_bind()).get_pk_constraint(table)["name"] or f"pk_{table}")


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_connections_name", ["name"])
    with op.batch_alter_table("refunds", naming_convention=_NAMES) as batch_op:
        batch_op.drop_constraint(_old_refund_fk(), type_="foreignkey")
    for table, (column, key) in _KEYED.items():
        with op.batch_alter_table(table, naming_convention=_NAMES, recreate="auto") as batch_op:
            batch_op.add_column(_column(column))
            batch_op.drop_constraint(_old_pk(table), type_="primary")
            batch_op.create_primary_key(f"{table}_pkey", key)
    with op.batch_alter_table("refunds") as batch_op:
        batch_op.create_foreign_key(
            "fk_refunds_order", "orders", ["connection_id", "order_id"], ["connection_id", "order_id"]
        )
    with op.batch_alter_table("ledger_events") as batch_op:
        batch_op.add_column(_column("connection_id"))
        batch_op.create_index("ix_ledger_events_connection_id", ["connection_id"], unique=False)
    with op.batch_alter_table("findings") as batch_op:
        batch_op.add_column(_column("connection_id"))
        batch_op.create_index("ix_findings_connection_id", ["connection_id"], unique=False)
        batch_op.drop_constraint("uq_findings_kind_subject", type_="unique")
        batch_op.create_unique_constraint("uq_findings_connection_kind_subject", ["connection_id", "kind", "subject"])


def downgrade() -> None:
    # Only a ledger of connection 1 goes back: the older schema cannot tell two shops apart.
    for table in ("orders", "refunds", "contacts", "service_state", "rebookings", "ledger_events", "findings"):
        column = "contact_book_id" if table == "contacts" else "connection_id"
        op.execute(sa.text(f"DELETE FROM {table} WHERE {column} <> 1"))  # noqa: S608 (fixed names)
    with op.batch_alter_table("findings") as batch_op:
        batch_op.drop_constraint("uq_findings_connection_kind_subject", type_="unique")
        batch_op.create_unique_constraint("uq_findings_kind_subject", ["kind", "subject"])
        batch_op.drop_index("ix_findings_connection_id")
        batch_op.drop_column("connection_id")
    with op.batch_alter_table("ledger_events") as batch_op:
        batch_op.drop_index("ix_ledger_events_connection_id")
        batch_op.drop_column("connection_id")
    with op.batch_alter_table("refunds") as batch_op:
        batch_op.drop_constraint("fk_refunds_order", type_="foreignkey")
    for table, (column, key) in _KEYED.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"{table}_pkey", type_="primary")
            batch_op.create_primary_key(f"{table}_pkey", key[1:])
            batch_op.drop_column(column)
    with op.batch_alter_table("refunds") as batch_op:
        batch_op.create_foreign_key("refunds_order_id_fkey", "orders", ["order_id"], ["order_id"])
    with op.batch_alter_table("connections") as batch_op:
        batch_op.drop_constraint("uq_connections_name", type_="unique")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("paused_at")
        batch_op.drop_column("name")
