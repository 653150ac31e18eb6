"""Service-account credentials and the OAuth2 access tokens FCM HTTP v1 wants.

google-auth mints the tokens (JWT-bearer grant signed with the account's RSA key, posted to the
account's ``token_uri``). This module adds what a sender needs around it: one cached token shared
by every request, refreshed a few minutes before it expires, at most one refresh in flight
(single-flight: a thousand concurrent sends wait for the same refresh), and errors that say which
file is wrong without ever showing the key or a token.

With an :class:`AccessTokenStore` (``ServiceAccount.shared(store)``), processes that use the same
account share its token too: a process adopts a stored token that is still fresh instead of
minting its own, and stores the ones it mints.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.auth import exceptions as google_exceptions
from google.oauth2 import service_account

from .._exceptions import CredentialsError, TransportError
from ..tls import client_ssl_context
from ._google_transport import HttpxRequest

__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TOKEN_URI",
    "FCM_SCOPE",
    "AccessTokenStore",
    "ServiceAccount",
    "StoredAccessToken",
]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
#: Refresh this many seconds before the token expires (Google's tokens live about an hour).
DEFAULT_REFRESH_MARGIN = 300.0

_REQUIRED = ("client_email", "private_key", "project_id")


@dataclass(frozen=True, slots=True)
class StoredAccessToken:
    token: str = field(repr=False)  # a bearer secret
    expires_at: float  # clock seconds
    refresh_at: float


class AccessTokenStore(Protocol):
    """Where processes that use the same service account share its access token."""

    def load(self, account: str, token_uri: str) -> StoredAccessToken | None: ...

    def save(self, account: str, token_uri: str, token: StoredAccessToken) -> None: ...


class ServiceAccount:
    """A Google service account able to send FCM messages, with its cached access token."""

    def __init__(
        self,
        info: Mapping[str, Any],
        *,
        source: str = "<service account>",
        token_uri: str | None = None,
        ca_file: str | Path | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        if not isinstance(info, Mapping):
            raise CredentialsError(f"{source} must hold a JSON object", file=source)
        if info.get("type") != "service_account":
            hint = ""
            if "project_info" in info or "client" in info:
                hint = (
                    " (this looks like google-services.json, the Android app's configuration; download a "
                    "key from Firebase console > Project settings > Service accounts instead)"
                )
            raise CredentialsError(
                f'{source} is not a service-account key: "type" must be "service_account"{hint}', file=source
            )
        missing = [k for k in _REQUIRED if not isinstance(info.get(k), str) or not info.get(k)]
        if missing:
            raise CredentialsError(f"{source} lacks {', '.join(missing)}", field=missing[0], file=source)
        self.project_id: str = info["project_id"]
        self.client_email: str = info["client_email"]
        self.token_uri: str = token_uri or info.get("token_uri") or DEFAULT_TOKEN_URI
        fields = dict(info, token_uri=self.token_uri)
        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                fields, scopes=[FCM_SCOPE]
            )
        except (ValueError, TypeError, google_exceptions.GoogleAuthError):
            # The message of the underlying error may quote the key material: keep it out.
            raise CredentialsError(
                f"{source}: private_key is not a readable PEM RSA private key",
                field="private_key",
                file=source,
            ) from None
        self._request = HttpxRequest(client_ssl_context(ca_file=ca_file, alpn=()))
        self._margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        #: How many tokens were minted (for metrics and tests).
        self.refresh_count = 0
        #: How many tokens were adopted from the store instead of minted.
        self.adopted_count = 0
        self._store: AccessTokenStore | None = None
        self._rejected: str | None = None

    def shared(self, store: AccessTokenStore) -> ServiceAccount:
        """Share the access token through ``store`` (returns ``self``)."""
        self._store = store
        return self

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        token_uri: str | None = None,
        ca_file: str | Path | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> ServiceAccount:
        """Load a service-account JSON key file (Firebase console > Project settings > Service accounts)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialsError(
                f"service account file {path} does not exist", field="service_account_file", file=str(path)
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(
                f"cannot read service account file {path}: {exc}",
                field="service_account_file",
                file=str(path),
            ) from None
        try:
            info = json.loads(text)
        except ValueError as exc:
            raise CredentialsError(
                f"service account file {path} is not JSON (line {getattr(exc, 'lineno', '?')})",
                field="service_account_file",
                file=str(path),
            ) from None
        return cls(
            info,
            source=str(path),
            token_uri=token_uri,
            ca_file=ca_file,
            refresh_margin=refresh_margin,
            clock=clock,
        )

    def __repr__(self) -> str:  # never the key nor the token
        return f"ServiceAccount({self.client_email!r}, project_id={self.project_id!r})"

    @property
    def expires_at(self) -> float:
        """When the cached token expires (clock seconds; 0 when there is none)."""
        return self._expires_at if self._token else 0.0

    async def access_token(self) -> str:
        """A valid access token: the cached one, or a fresh one minted by a single refresh.

        Raises :class:`CredentialsError` when the token endpoint refuses the grant (a revoked or
        deleted key, a wrong token URI) and :class:`TransportError` when it cannot be reached.
        """
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        async with self._refresh_lock():
            # Another sender may have refreshed while this one waited for the lock.
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            if self._store is not None:
                stored = await asyncio.to_thread(self._store.load, self.client_email, self.token_uri)
                if (
                    stored is not None
                    and stored.token != self._rejected
                    and self._clock() < stored.refresh_at
                ):
                    self._token, self._expires_at, self._refresh_at = (
                        stored.token,
                        stored.expires_at,
                        stored.refresh_at,
                    )
                    self.adopted_count += 1
                    return stored.token
            token = await self._refresh()
            if self._store is not None:
                mine = StoredAccessToken(token, self._expires_at, self._refresh_at)
                await asyncio.to_thread(self._store.save, self.client_email, self.token_uri, mine)
            return token

    def _refresh_lock(self) -> asyncio.Lock:
        # One account may serve several event loops over its life (the synchronous API runs each
        # call on its own loop); an asyncio.Lock belongs to one loop, so keep one per current loop.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after FCM refused it (401), unless a newer one was minted meanwhile."""
        if self._token == token:
            self._token = None
            self._refresh_at = 0.0
            self._rejected = token  # the store may still hold it: never adopt it again

    async def _refresh(self) -> str:
        try:
            await asyncio.to_thread(self._credentials.refresh, self._request)
        except google_exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise TransportError(f"the OAuth token endpoint {self.token_uri} failed: {exc}") from None
            raise CredentialsError(
                f"the OAuth token endpoint {self.token_uri} refused the service account "
                f"{self.client_email} from {self.source}: {exc}",
                file=self.source,
            ) from None
        except google_exceptions.TransportError as exc:
            raise TransportError(str(exc)) from None
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise CredentialsError(f"the OAuth token endpoint {self.token_uri} returned no access_token")
        now = self._clock()
        lifetime = _seconds_left(self._credentials.expiry)
        self._token = token
        self._expires_at = now + lifetime
        # A few minutes early, but never less than half the lifetime of a short-lived token.
        self._refresh_at = now + max(lifetime - self._margin, lifetime / 2)
        self.refresh_count += 1
        return token


def _seconds_left(expiry: datetime.datetime | None) -> float:
    if expiry is None:
        return 3600.0  # the endpoint gave no expires_in: assume Google's usual hour
    # google-auth keeps expiry as a naive UTC datetime
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return max(0.0, (expiry - now).total_seconds())
