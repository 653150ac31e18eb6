"""The (notification_id, state) index of the deliveries narrowed to the open ones, and SQLite's
count triggers made one lookup cheaper.

Since 0009 a status read sums ``outbox_counts`` instead of counting deliveries through that index;
what still reads it asks for open deliveries only (the completion probe, cancel, next due). A
partial index holds only those: a delivery recorded final leaves it instead of getting a new entry.

Revision ID: 0011_open_deliveries_index
Revises: 0010_claimable_deliveries
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_open_deliveries_index"
down_revision = "0010_claimable_deliveries"
branch_labels = None
depends_on = None

# the open states (pushrelay.queue.models.OPEN_SQL), written out so this file stays as is
_OPEN = "state IN ('pending', 'in_flight', 'paused')"


def _bucket(row: str) -> str:
    """What a status reports a delivery under: its outcome once final, else its state (0009)."""
    return f"(CASE WHEN {row}state = 'done' THEN coalesce({row}outcome, 'None') ELSE {row}state END)"


def _sqlite_step(row: str, step: str) -> str:
    """Add ``step`` to the count of ``row``'s name, creating it if missing (``changes()``: the rows
    the trigger's last statement changed). The old name of an update always has its row."""
    name = _bucket(f"{row}.")
    add = (
        f"UPDATE outbox_counts SET n = n {step} "  # noqa: S608
        f"WHERE notification_id = {row}.notification_id AND name = {name};"
    )
    if step.startswith("-"):
        return add
    return (
        f"{add} INSERT INTO outbox_counts (notification_id, name, n) "
        f"SELECT {row}.notification_id, {name}, 1 WHERE changes() = 0;"
    )


# 0009's probed for the row before updating it: one index lookup more per delivery moved
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER outbox_deliveries_count_insert AFTER INSERT ON outbox_deliveries "
    f"BEGIN {_sqlite_step('NEW', '+ 1')} END",
    "CREATE TRIGGER outbox_deliveries_count_update AFTER UPDATE OF state, outcome ON outbox_deliveries "
    f"WHEN {_bucket('OLD.')} IS NOT {_bucket('NEW.')} "
    f"BEGIN {_sqlite_step('OLD', '- 1')} {_sqlite_step('NEW', '+ 1')} END",
)
_TRIGGER_NAMES = ("outbox_deliveries_count_insert", "outbox_deliveries_count_update")


def upgrade() -> None:
    op.drop_index("ix_outbox_deliveries_notification_state", table_name="outbox_deliveries")
    op.create_index(
        "ix_outbox_deliveries_notification_open",
        "outbox_deliveries",
        ["notification_id", "state"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )
    if op.get_bind().dialect.name == "sqlite":  # one writer: nothing moves between drop and create
        for name in _TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    # 0009's SQLite triggers count the same: the cheaper ones are kept
    op.drop_index("ix_outbox_deliveries_notification_open", table_name="outbox_deliveries")
    op.create_index(
        "ix_outbox_deliveries_notification_state", "outbox_deliveries", ["notification_id", "state"]
    )
