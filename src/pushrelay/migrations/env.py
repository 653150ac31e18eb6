"""Alembic environment of pushrelay.

Generic on purpose: it migrates :data:`pushrelay.db.Base.metadata`, filled by importing
:mod:`pushrelay.models_index`. :func:`pushrelay.db.upgrade` passes an open connection in
``config.attributes["connection"]``; a ``sqlalchemy.url`` main option works too (used to write
new revisions with ``alembic revision --autogenerate``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import pushrelay.models_index  # noqa: F401  (registers every table on Base.metadata)
from pushrelay.db import Base, create_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pushrelay migrations need a connection or the sqlalchemy.url option")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
