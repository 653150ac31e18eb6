"""Tables of the provider state (Alembic revision ``0005_provider_state``; ``provider_tokens`` is
from ``0002_outbox``).

They hold bearer secrets (an APNs provider JWT valid one hour, an FCM access token valid one hour),
stored next to data of the same sensitivity (device tokens). Never logged, never in a repr.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["AccessTokenRow", "DeferralRow", "ProviderTokenRow"]


class ProviderTokenRow(Base):
    """The APNs provider JWT currently in use for a (team, key), shared by every process.

    APNs refuses a new token for a key less than 20 minutes after the previous one (429
    TooManyProviderTokenUpdates), so several workers, a restarted worker, or two ``pushrelay send``
    in a row must reuse the token already in use rather than mint their own."""

    __tablename__ = "provider_tokens"

    team_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    header: Mapped[str] = mapped_column(Text)
    minted_at: Mapped[float] = mapped_column(Float)


class AccessTokenRow(Base):
    """The OAuth2 access token of a Google service account (FCM), shared by every process."""

    __tablename__ = "provider_access_tokens"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)  # client_email
    token_uri: Mapped[str] = mapped_column(String(500), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    refresh_at: Mapped[float] = mapped_column(Float)


class DeferralRow(Base):
    """A target that a provider asked not to contact before ``until`` (FCM QUOTA_EXCEEDED, Web Push
    429, APNs 429 TooManyRequests, with or without a Retry-After). The token is kept as its SHA-256:
    the row is a key, not a copy of the device token."""

    __tablename__ = "provider_deferrals"

    app: Mapped[str] = mapped_column(String(200), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(DateTime())  # naive UTC, like the outbox
    status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
