"""Database plumbing: URLs, SQLite settings, migrations matching the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import pushrelay.models_index  # noqa: F401
from pushrelay import ConfigurationError
from pushrelay.db import Base, Database, current_revision, normalize_url, upgrade
from pushrelay.registry.devices import _prefix_range
from pushrelay.registry.models import Device

_MINE = {"devices"}


def _sql(query: sa.Select[tuple[int]], conn: sa.Connection) -> str:
    """``query`` with its values inlined, for EXPLAIN."""
    return str(query.compile(conn, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@db:5432/x", "postgresql+psycopg"),
        ("postgres://u@db/x", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg"),
        ("sqlite:///relay.db", "sqlite"),
    ],
)
def test_urls_map_to_pushrelay_drivers(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@db/x", "sqlite:// or postgresql://"),
        ("postgresql+asyncpg://u@db/x", "psycopg"),
        ("not a url", "not a valid database URL"),
    ],
)
def test_bad_urls_name_the_setting(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        normalize_url(url)
    assert info.value.field == "database.url"


def test_passwords_stay_out_of_repr() -> None:
    db = Database("postgresql://user:s3cret@127.0.0.1:1/x", migrate=False)  # no connection made
    try:
        assert "s3cret" not in repr(db) and "user" in repr(db)
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    with Database(sqlite_url) as db, db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    with Database(database_url) as db:
        assert current_revision(db.engine) is not None
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    # other parts of pushrelay own the other tables and check them themselves
                    # and reflection loses the prefix index's COLLATE: it is checked below
                    "include_object": lambda obj, name, kind, reflected, other: (
                        (kind != "table" or name in _MINE) and name != "ix_devices_app_token_prefix"
                    ),
                },
            )
            assert compare_metadata(context, Base.metadata) == []
        upgrade(db.engine)  # a second upgrade is a no-op
        inspector = sa.inspect(db.engine)
        assert {"ix_devices_app_email_norm", "ix_devices_app_id"} <= {
            i["name"] for i in inspector.get_indexes("devices")
        }
        # the token prefix index, as the model's token_prefix() expression reads it (byte order)
        with db.engine.connect() as conn:
            if db.backend == "postgresql":
                sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_devices_app_token_prefix'"
            else:
                sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_devices_app_token_prefix'"
            definition = " ".join(str(conn.exec_driver_sql(sql).scalar_one()).split())
        assert "substr(" in definition and ", 1, 64)" in definition
        assert ('COLLATE "C"' in definition) == (db.backend == "postgresql"), definition
        query = sa.select(Device.id).where(Device.app == "a", *_prefix_range("ab12"))
        with db.engine.connect() as conn:
            if db.backend == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: make it choose
                plan = " ".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + _sql(query, conn))))
            else:
                plan = " ".join(
                    str(r[-1]) for r in conn.execute(sa.text("EXPLAIN QUERY PLAN " + _sql(query, conn)))
                )
        assert "ix_devices_app_token_prefix" in plan, plan


def test_first_revision_is_the_registry(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0001_registry")
    assert current_revision(sqlite_url) == "0001_registry"
    engine = sa.create_engine(sqlite_url)
    try:
        assert "devices" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
