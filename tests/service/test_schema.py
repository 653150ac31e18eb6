"""The migrations build exactly the tables of the outbox, the pauses and the webhook events."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import pushrelay.models_index  # noqa: F401
from pushrelay.db import Base, Database

_MINE = {
    "outbox_notifications",
    "outbox_deliveries",
    "outbox_counts",
    "api_keys",
    "provider_tokens",
    "app_pauses",
    "webhook_events",
}


def _table(diff: Any) -> str | None:
    """The table an autogenerate difference is about."""
    if isinstance(diff, list):  # the changes of one column come as a list
        return _table(diff[0])
    for item in diff[1:]:
        if isinstance(item, sa.Table):
            return str(item.name)
        table = getattr(item, "table", None)  # an index or a constraint
        if isinstance(table, sa.Table):
            return str(table.name)
        if isinstance(item, str) and item in Base.metadata.tables:  # columns: (kind, schema, table, ...)
            return item
    return None


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    with Database(database_url) as db, db.engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
        pg = db.backend == "postgresql"
        claimable = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_outbox_deliveries_claimable'"
            if pg
            else "SELECT sql FROM sqlite_master WHERE name = 'ix_outbox_deliveries_claimable'"
        ).scalar()
    # indexes the model creates on one database only (their ddl_if): the index of claimable
    # deliveries and the partial one of open deliveries on PostgreSQL, the whole (notification_id,
    # state) one on SQLite, which counts through it
    elsewhere = (
        {"ix_outbox_deliveries_notification_state"}
        if pg
        else {"ix_outbox_deliveries_claimable", "ix_outbox_deliveries_notification_open"}
    )
    differences = [d for d in differences if getattr(d[1], "name", None) not in elsewhere]
    assert [d for d in differences if _table(d) in _MINE] == []
    if pg:
        # the very condition of the claim, constants included: else no claim could use it
        assert claimable is not None and claimable.endswith(
            "(next_attempt_at) WHERE ((state)::text = ANY ((ARRAY['pending'::character varying, "
            "'in_flight'::character varying])::text[]))"
        ), claimable
    else:
        assert claimable is None
