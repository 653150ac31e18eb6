"""The ``devices`` table: one row per push token of one app.

The ``token`` column holds whatever the platform's service addresses a device with: the APNs hex
token, the FCM registration token, or the Web Push endpoint URL (up to 2048 characters). Such long
values are a poor fit for a B-tree key (PostgreSQL caps an index entry at about 2.7 kB), so
uniqueness and look-ups go through ``token_hash``, the SHA-256 of the token, unique per app.
E-mail addresses are matched case-insensitively through ``email_norm`` (lower-cased) while
``email`` keeps what the user typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..db import Base, UTCDateTime

__all__ = ["TOKEN_PREFIX_LENGTH", "Device", "token_prefix"]

#: characters of the token that the prefix index holds: a search by a longer prefix narrows with it
TOKEN_PREFIX_LENGTH = 64


class token_prefix(FunctionElement[str]):
    """``substr(token, 1, 64)`` in byte order, the key of the token prefix index. On PostgreSQL it
    carries ``COLLATE "C"``: a range ``>= 'ab' AND < 'ac'`` then means "starts with ab" whatever
    the database's collation (a linguistic one orders ``a-b`` next to ``ab``). SQLite compares
    bytes already."""

    type = sa.String()
    inherit_cache = True
    name = "token_prefix"


@compiles(token_prefix)
def _token_prefix(element: token_prefix, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, {TOKEN_PREFIX_LENGTH})"


@compiles(token_prefix, "postgresql")
def _token_prefix_pg(element: token_prefix, compiler: SQLCompiler, **kw: Any) -> str:
    return f'(substr({compiler.process(element.clauses, **kw)}, 1, {TOKEN_PREFIX_LENGTH}) COLLATE "C")'


# Integer on SQLite (so that the column is the rowid alias and auto-increments), BIGINT elsewhere.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(sa.String(100))
    platform: Mapped[str] = mapped_column(sa.String(10))
    token: Mapped[str] = mapped_column(sa.String(2048))
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    # APNs environment of an iOS token; NULL means "the app's configured environment".
    environment: Mapped[str | None] = mapped_column(sa.String(11))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    email_norm: Mapped[str | None] = mapped_column(sa.String(320))
    language: Mapped[str | None] = mapped_column(sa.String(35))
    # IANA name (Europe/Paris) for local-time delivery; from the registration or the 4D session
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    app_version: Mapped[str | None] = mapped_column(sa.String(64))
    os: Mapped[str | None] = mapped_column(sa.String(32))
    os_version: Mapped[str | None] = mapped_column(sa.String(64))
    device_model: Mapped[str | None] = mapped_column(sa.String(128))
    device_id: Mapped[str | None] = mapped_column(sa.String(128))
    simulator: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    web_p256dh: Mapped[str | None] = mapped_column(sa.String(128))
    web_auth: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The last time the device registered (or was re-registered). APNs 410 timestamps are
    # compared with it to tell a dead token from one the app has refreshed since.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_reason: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.UniqueConstraint("app", "token_hash"),
        # resolving e-mail addresses: WHERE app = ? AND email_norm IN (...)
        sa.Index("ix_devices_app_email_norm", "app", "email_norm"),
        # streaming an app's devices by keyset: WHERE app = ? AND id > ? ORDER BY id
        sa.Index("ix_devices_app_id", "app", "id"),
        # the console's search by token prefix: a range on the first 64 characters (see token_prefix)
        sa.Index("ix_devices_app_token_prefix", "app", token_prefix(sa.column("token"))),
        sa.CheckConstraint("platform IN ('ios', 'android', 'web')", name="platform"),
        sa.CheckConstraint(
            "environment IS NULL OR environment IN ('production', 'development')", name="environment"
        ),
    )
