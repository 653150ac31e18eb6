"""Tables of the 4D live sync: the folders to watch and the session files already seen.

``fourd_sessions`` is what makes several processes watching one folder agree: each session file
is one row keyed by ``(app, path)``, and every change to it is a conditional statement, so the
process whose statement changed the row is the one that reports (a broken file is reported once,
not once per process) and a second pass over an unchanged folder writes nothing.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime

__all__ = ["FourDFolderRow", "FourDSessionRow"]

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class FourDFolderRow(Base):
    """A 4D app folder imported with ``pushrelay import-4d``: watched by ``serve`` / ``worker``
    even when the app is configured without ``fourd_folder`` (an Android folder, an app
    configured by hand before the import)."""

    __tablename__ = "fourd_folders"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(sa.String(100))
    folder: Mapped[str] = mapped_column(sa.String(1024))
    folder_hash: Mapped[str] = mapped_column(sa.String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("app", "folder_hash"),)


class FourDSessionRow(Base):
    """One session file of a watched folder, as last read."""

    __tablename__ = "fourd_sessions"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(sa.String(100))
    # "<app folder name>/<session file name>": an app may have an iOS and an Android folder
    path: Mapped[str] = mapped_column(sa.String(400))
    mtime_ns: Mapped[int] = mapped_column(sa.BigInteger)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    digest: Mapped[str] = mapped_column(sa.String(64))
    # registered | pending | no_token | broken
    state: Mapped[str] = mapped_column(sa.String(16))
    # the device this session registered (devices.token_hash), kept while the session is pending
    # or broken so that its removal still deactivates the right device
    token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (
        sa.UniqueConstraint("app", "path"),
        # "does another session still hold this device?" before deactivating it
        sa.Index("ix_fourd_sessions_app_token_hash", "app", "token_hash"),
    )
