"""Per-notification delivery counts kept as they change (``outbox_counts``), by triggers on
``outbox_deliveries``: a status read sums a few rows instead of counting every delivery.

Revision ID: 0009_outbox_counts
Revises: 0008_device_token_prefix
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_outbox_counts"
down_revision = "0008_device_token_prefix"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _bucket(row: str) -> str:
    """What a status reports a delivery under: its outcome once final, else its state."""
    return f"(CASE WHEN {row}state = 'done' THEN coalesce({row}outcome, 'None') ELSE {row}state END)"


# PostgreSQL: one statement-level trigger per event, with the statement's rows as transition
# tables: one row per (notification, name) a statement changed, summed (+1 new, -1 old), so that
# a claim or a recorded batch inserts a couple of rows and an update changing no count none.
# (All SQL here is built from constants: no outside text reaches it.)
_PG_FUNCTION = f"""
CREATE FUNCTION outbox_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_counts (notification_id, name, n)
        SELECT notification_id, {_bucket("")}, count(*) FROM new_rows GROUP BY 1, 2;
    ELSE
        INSERT INTO outbox_counts (notification_id, name, n)
        SELECT notification_id, name, sum(n) FROM (
            SELECT notification_id, {_bucket("")} AS name, -1 AS n FROM old_rows
            UNION ALL
            SELECT notification_id, {_bucket("")}, 1 FROM new_rows
        ) AS moved GROUP BY 1, 2 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""  # noqa: S608
_PG_TRIGGERS = (
    "CREATE TRIGGER outbox_deliveries_count_insert AFTER INSERT ON outbox_deliveries "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION outbox_count_deltas()",
    "CREATE TRIGGER outbox_deliveries_count_update AFTER UPDATE ON outbox_deliveries "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION outbox_count_deltas()",
)


def _sqlite_add(row: str, step: str) -> str:
    name = _bucket(f"{row}.")
    return (
        f"INSERT INTO outbox_counts (notification_id, name, n) SELECT {row}.notification_id, {name}, 0 "  # noqa: S608
        f"WHERE NOT EXISTS (SELECT 1 FROM outbox_counts WHERE notification_id = {row}.notification_id "
        f"AND name = {name}); "
        f"UPDATE outbox_counts SET n = n {step} WHERE notification_id = {row}.notification_id "
        f"AND name = {name};"
    )


# SQLite: row triggers only, but one writer at a time: a counter row per name is no hot spot.
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER outbox_deliveries_count_insert AFTER INSERT ON outbox_deliveries "
    f"BEGIN {_sqlite_add('NEW', '+ 1')} END",
    "CREATE TRIGGER outbox_deliveries_count_update AFTER UPDATE OF state, outcome ON outbox_deliveries "
    f"WHEN {_bucket('OLD.')} IS NOT {_bucket('NEW.')} "
    f"BEGIN {_sqlite_add('OLD', '- 1')} {_sqlite_add('NEW', '+ 1')} END",
)


def upgrade() -> None:
    op.create_table(
        "outbox_counts",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id",
            sa.String(36),
            sa.ForeignKey("outbox_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(24), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_index("ix_outbox_counts_notification_name", "outbox_counts", ["notification_id", "name"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        # nothing moves between the count and the triggers: rows written meanwhile wait for us
        op.execute("LOCK TABLE outbox_deliveries IN SHARE ROW EXCLUSIVE MODE")
        for trigger in _PG_TRIGGERS:
            op.execute(trigger)
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
    op.execute(
        "INSERT INTO outbox_counts (notification_id, name, n) "  # noqa: S608
        f"SELECT notification_id, {_bucket('')}, count(*) FROM outbox_deliveries GROUP BY 1, 2"
    )


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for trigger in ("outbox_deliveries_count_insert", "outbox_deliveries_count_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON outbox_deliveries" if pg else ""))
    if pg:
        op.execute("DROP FUNCTION IF EXISTS outbox_count_deltas()")
    op.drop_index("ix_outbox_counts_notification_name", table_name="outbox_counts")
    op.drop_table("outbox_counts")
