"""Database plumbing: URLs, engines, the declarative ``Base``, sessions and schema upgrades.

pushrelay keeps its state (devices, and later the outbox) in SQLite by default and in PostgreSQL
for larger deployments. Everything that touches a connection goes through :class:`Database`, so
that both back ends get the same settings: SQLite in WAL mode with a busy timeout (readers never
block the writer, concurrent writers wait instead of failing at once), PostgreSQL through
psycopg 3 with connections checked before use.

The schema is owned by Alembic migrations shipped inside the package
(:mod:`pushrelay.migrations`); :func:`upgrade` applies them programmatically, so no ``alembic.ini``
is needed. Models register themselves on :data:`Base.metadata`; :mod:`pushrelay.models_index`
imports every model module so that migrations see all tables.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Base",
    "Database",
    "UTCDateTime",
    "create_engine",
    "current_revision",
    "normalize_url",
    "upgrade",
]

DEFAULT_DATABASE_URL = "sqlite:///pushrelay.db"

# SQLite waits this long for a lock held by another connection before giving up ("database is
# locked"). Long enough for a burst of registrations while a send streams devices.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every pushrelay table. Constraint names are deterministic so that
    migrations written by hand and by autogenerate agree on both back ends."""

    metadata = sa.MetaData(naming_convention=_NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone-aware type: SQLAlchemy hands back naive values there. Storing UTC and
    re-attaching the zone on the way out gives identical behaviour on SQLite and PostgreSQL.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL and pick pushrelay's driver for it.

    ``postgresql://`` and ``postgres://`` (the spelling of many hosting providers) map to
    psycopg 3, the driver pushrelay ships with; ``sqlite://`` stays as is. Anything else is a
    :class:`ConfigurationError` naming the key ``database.url``.
    """
    if isinstance(url, str):
        text = url.strip()
        if text.startswith("postgres://"):
            text = "postgresql://" + text[len("postgres://") :]
        try:
            parsed = make_url(text)
        except ArgumentError:
            raise ConfigurationError(
                "database.url is not a valid database URL; expected sqlite:///path.db or "
                "postgresql://user@host:5432/dbname",
                field="database.url",
            ) from None
    else:
        parsed = url
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise ConfigurationError(
                f"database.url uses the driver {driver!r}; pushrelay talks to PostgreSQL through "
                "psycopg 3: write postgresql://... or postgresql+psycopg://...",
                field="database.url",
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigurationError(
                f"database.url uses the SQLite driver {driver!r}; write sqlite:///path.db",
                field="database.url",
            )
        return parsed
    raise ConfigurationError(
        f"database.url must be a sqlite:// or postgresql:// URL, got a {backend!r} URL",
        field="database.url",
    )


def create_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine with pushrelay's per-backend settings (see the module docstring)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        # Connections are handed between threads by the pool (sync API called from worker
        # threads); SQLAlchemy serialises their use, so the sqlite3 same-thread check only hurts.
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (a send streaming devices) run while a writer registers devices.
        # An in-memory database answers "memory" and stays as it is, which is fine.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # In WAL mode NORMAL is crash-safe (a power loss may lose the last commits, never
        # corrupt the file) and much faster than FULL for many small registrations.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class Database:
    """An engine plus a session factory. Cheap to keep for the life of a process; call
    :meth:`dispose` (or use it as a context manager) to close its connections."""

    def __init__(self, url: str | URL, *, migrate: bool = True, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.engine = create_engine(self.url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


# -- migrations -------------------------------------------------------------------------------


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "pushrelay:migrations")
    cfg.attributes["connection"] = connection
    return cfg


def _advisory_lock_key() -> int:
    # A fixed 63-bit key derived from a name, so that concurrent pushrelay processes upgrading the
    # same PostgreSQL database take turns instead of racing on CREATE TABLE.
    return int.from_bytes(hashlib.sha256(b"pushrelay.migrations").digest()[:8], "big") >> 1


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Bring the schema of ``target`` (a URL or an engine) up to ``revision``.

    Safe to call on every start: it does nothing when the schema is current, and on PostgreSQL
    concurrent callers are serialised by an advisory lock.
    """
    from alembic import command

    engine = target if isinstance(target, Engine) else create_engine(target)
    try:
        with engine.connect() as connection:
            is_pg = connection.dialect.name == "postgresql"
            if is_pg:
                connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _advisory_lock_key()})
                connection.commit()
            try:
                command.upgrade(_alembic_config(connection), revision)
                connection.commit()
            finally:
                if is_pg:
                    connection.rollback()
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _advisory_lock_key()})
                    connection.commit()
    finally:
        if engine is not target:
            engine.dispose()


def current_revision(target: str | URL | Engine) -> str | None:
    """The Alembic revision the database is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = target if isinstance(target, Engine) else create_engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not target:
            engine.dispose()
