"""The FCM HTTP v1 client: one request per device, many in flight on multiplexed HTTP/2.

Same shape as the APNs client so the registry and the outbox dispatch by platform::

    async with FcmClient(ServiceAccount.from_file("sa.json"), mapping="4d") as fcm:
        result = await fcm.send(notification, registration_token)      # or "topic:news"
        async for r in fcm.send_many((n, token, tag) for token, tag in devices):
            ...

``send`` never raises for FCM's answers or for transport trouble: they become
:class:`~pushrelay.outcome.DeliveryResult` outcomes. A notification FCM would never accept (too
large, a bad field) raises :class:`NotificationError` from ``send``; ``send_many`` answers that item
``payload_rejected``, alone, and goes on with the batch.

One call, at most one request to FCM: the client does not retry (the outbox does, with the one
backoff of :mod:`pushrelay.backoff`). A 401 that refuses our OAuth access token drops that token and
returns ``retry``; the next attempt mints a new one. If the token minted after such a refusal is
refused too, the service account is wrong: ``config_broken``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._batching import BatchClient
from .._exceptions import ConfigurationError, CredentialsError, NotificationError, TransportError
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from .credentials import ServiceAccount
from .errors import MIN_QUOTA_BACKOFF, classify, parse_error, parse_retry_after
from .mapping import AndroidOptions, MappingName, render
from .target import FcmTarget
from .transport import Http2Transport, HttpResponse, Transport

__all__ = ["DEFAULT_BASE_URL", "FcmClient"]

DEFAULT_BASE_URL = "https://fcm.googleapis.com"
# Google project ids: lower-case letters, digits and hyphens; legacy domain-scoped ones add "." and ":".
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,99}")


class FcmClient(BatchClient[str | FcmTarget]):
    """Send notifications through FCM HTTP v1 for one Firebase project."""

    def __init__(
        self,
        credentials: ServiceAccount,
        *,
        project_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        mapping: MappingName = "4d",
        android: AndroidOptions | None = None,
        ca_file: str | Path | None = None,
        concurrency: int = 1000,
        connections: int = 4,
        timeout: float = 10.0,
        validate_only: bool = False,
        quota_backoff: float = MIN_QUOTA_BACKOFF,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mapping not in ("4d", "standard"):
            raise ValueError(f"mapping must be '4d' or 'standard', got {mapping!r}")
        self.credentials = credentials
        self.project_id = project_id or credentials.project_id
        if not _PROJECT_ID.fullmatch(self.project_id):
            raise ConfigurationError(
                f"project_id must be a Firebase project id such as 'myapp-1234', got {self.project_id!r}",
                field="project_id",
            )
        self.mapping: MappingName = mapping
        self.android = android or AndroidOptions()
        self.concurrency = concurrency
        self.validate_only = validate_only
        #: Seconds to wait at least after QUOTA_EXCEEDED (Firebase: a minute); lower only for tests.
        self.quota_backoff = quota_backoff
        self._path = f"/v1/projects/{self.project_id}/messages:send"
        self._transport: Transport = transport or Http2Transport(
            base_url.rstrip("/"), ca_file=ca_file, timeout=timeout, connections=connections
        )
        self._clock = clock
        # Rendering is the same for every device of a notification: keep the last one, keyed by
        # identity and by the second (the ttl is relative to now).
        self._rendered: tuple[Notification, int, bytes] | None = None
        # the access token last dropped after a 401: if its successor is refused too, retrying
        # with yet another one cannot help
        self._refused_token: str | None = None

    async def aclose(self) -> None:
        await self._transport.aclose()

    def render(self, notification: Notification) -> dict[str, Any]:
        """The FCM message this client sends for ``notification`` (without its target)."""
        return render(notification, mapping=self.mapping, options=self.android, now=self._clock())

    async def send(self, notification: Notification, token: str | FcmTarget) -> DeliveryResult:
        """Deliver to one registration token, ``"topic:<name>"`` or ``"condition:<expr>"``."""
        target = FcmTarget.parse(token)
        label = str(target)
        try:
            body = self._body(notification, target)
        except NotificationError:
            raise
        except (ValueError, TypeError) as exc:
            # any rendering failure is this notification's problem: send_many answers the item
            # payload_rejected and goes on with the batch
            raise NotificationError(f"cannot render the FCM message: {exc}") from None
        if target.kind == "token" and not target.value.strip():
            return DeliveryResult(
                label, Outcome.TOKEN_DEAD, reason="empty FCM registration token", attempts=0
            )
        try:
            access_token = await self.credentials.access_token()
        except CredentialsError as exc:
            return DeliveryResult(label, Outcome.CONFIG_BROKEN, reason=str(exc), attempts=0)
        except TransportError as exc:
            return DeliveryResult(label, Outcome.RETRY, reason=str(exc), attempts=0)
        headers = {"authorization": f"Bearer {access_token}", "content-type": "application/json"}
        try:
            response = await self._transport.post(self._path, headers, body)
        except TransportError as exc:
            return DeliveryResult(label, Outcome.RETRY, reason=f"{type(exc).__name__}: {exc}")
        if response.status == 401 and _is_oauth_refusal(response):
            return self._oauth_refused(label, response, access_token)
        if response.status == 200:
            self._refused_token = None
        return self._result(label, target, response)

    # -- internals -------------------------------------------------------------------------------
    def _body(self, notification: Notification, target: FcmTarget) -> bytes:
        second = int(self._clock())
        cached = self._rendered
        if cached is not None and cached[0] is notification and cached[1] == second:
            message = cached[2]
        else:
            message = json.dumps(
                self.render(notification), ensure_ascii=False, separators=(",", ":")
            ).encode()
            self._rendered = (notification, second, message)
        # Splice the target in front of the rendered message instead of re-encoding it per device.
        head = b'{"validate_only":true,"message":{' if self.validate_only else b'{"message":{'
        field = (
            json.dumps(target.kind).encode() + b":" + json.dumps(target.value, ensure_ascii=False).encode()
        )
        rest = message[1:-1]
        return head + field + (b"," + rest if rest else b"") + b"}}"

    def _oauth_refused(self, label: str, response: HttpResponse, access_token: str) -> DeliveryResult:
        """FCM refused our access token (revoked, or expired early). The first time, drop it and
        answer ``retry``: the caller's next attempt mints a new one. When the token minted after
        that is refused as well, the service account itself is refused: ``config_broken``."""
        error = parse_error(response.status, response.body)
        refused_before = self._refused_token
        if refused_before is not None and refused_before != access_token:
            return DeliveryResult(label, Outcome.CONFIG_BROKEN, response.status, reason=error.reason)
        self._refused_token = access_token
        self.credentials.invalidate(access_token)
        return DeliveryResult(
            label,
            Outcome.RETRY,
            response.status,
            reason=f"{error.reason}: the access token was refused; the next attempt uses a new one",
        )

    def _result(self, label: str, target: FcmTarget, response: HttpResponse) -> DeliveryResult:
        if response.status == 200:
            return DeliveryResult(label, Outcome.DELIVERED, 200, provider_id=_message_name(response.body))
        error = parse_error(response.status, response.body)
        outcome = classify(error, is_token=target.kind == "token")
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._clock())
        if error.error_code == "QUOTA_EXCEEDED" or (error.error_code is None and response.status == 429):
            retry_after = max(retry_after or 0.0, self.quota_backoff)
        return DeliveryResult(
            label,
            outcome,
            response.status,
            reason=error.reason,
            retry_after=retry_after if outcome is Outcome.RETRY else None,
        )


def _message_name(body: bytes) -> str | None:
    try:
        name = json.loads(body).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _is_oauth_refusal(response: HttpResponse) -> bool:
    """A 401 about our access token, not THIRD_PARTY_AUTH_ERROR (the APNs/web keys stored in Firebase)."""
    return parse_error(response.status, response.body).error_code != "THIRD_PARTY_AUTH_ERROR"
