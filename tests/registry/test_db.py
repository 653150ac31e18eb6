"""Database plumbing: URLs, SQLite settings, migrations matching the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import pushrelay.models_index  # noqa: F401
from pushrelay import ConfigurationError
from pushrelay.db import Base, Database, current_revision, normalize_url, upgrade

_MINE = {"devices"}


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
                    "include_object": lambda obj, name, kind, reflected, other: (
                        kind != "table" or name in _MINE
                    ),
                },
            )
            assert compare_metadata(context, Base.metadata) == []
        upgrade(db.engine)  # a second upgrade is a no-op
        inspector = sa.inspect(db.engine)
        assert {"ix_devices_app_email_norm", "ix_devices_app_id"} <= {
            i["name"] for i in inspector.get_indexes("devices")
        }


def test_first_revision_is_the_registry(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0001_registry")
    assert current_revision(sqlite_url) == "0001_registry"
    engine = sa.create_engine(sqlite_url)
    try:
        assert "devices" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
