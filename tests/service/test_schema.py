"""The migrations build exactly the tables of the outbox, the pauses and the webhook events."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import pushrelay.models_index  # noqa: F401
from pushrelay.db import Base, Database, current_revision

_MINE = {
    "outbox_notifications",
    "outbox_deliveries",
    "api_keys",
    "provider_tokens",
    "app_pauses",
    "webhook_events",
}


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    with Database(database_url) as db:
        assert current_revision(db.engine) is not None
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": lambda obj, name, kind, reflected, other: (
                        kind != "table" or name in _MINE
                    ),
                },
            )
            assert compare_metadata(context, Base.metadata) == []
