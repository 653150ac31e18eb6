"""The Web Push client: encrypt (RFC 8291), authorize (RFC 8292 VAPID), POST (RFC 8030).

Same shape as the APNs and FCM clients::

    async with WebPushClient(VapidKey.from_file("vapid.pem", subject="mailto:ops@example.com")) as wp:
        result = await wp.send(notification, WebSubscription.from_dict(browser_json))
        async for r in wp.send_many((n, sub, tag) for sub, tag in subscriptions):
            ...

Endpoints are checked against the allow-list before anything is sent; a refused endpoint is a
``failed`` outcome (nothing leaves the machine). ``send`` never raises for a push service's answer or
for transport trouble. A notification that cannot be rendered (too large, a bad field) raises
:class:`NotificationError` from ``send``; ``send_many`` answers that item ``payload_rejected``, alone,
and goes on with the batch.

One call, at most one request: the client does not retry (httpx is not asked to either); the outbox
does, with the one backoff of :mod:`pushrelay.backoff`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from .._batching import BatchClient
from .._exceptions import ConfigurationError, NotificationError
from ..backoff import parse_retry_after
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..tls import client_ssl_context
from .allowlist import DEFAULT_ALLOWED_HOSTS, EndpointAllowList
from .encryption import encrypt
from .outcomes import classify
from .payload import DEFAULT_TTL, headers, render
from .subscription import SubscriptionError, WebSubscription
from .vapid import VapidKey

__all__ = ["WebPushClient"]

Subscriptionish = WebSubscription | Mapping[str, Any]


class WebPushClient(BatchClient[Subscriptionish]):
    """Send notifications to browsers' push subscriptions with one VAPID identity."""

    def __init__(
        self,
        vapid: VapidKey,
        *,
        allowed_hosts: Iterable[str] | EndpointAllowList = DEFAULT_ALLOWED_HOSTS,
        ca_file: str | Path | None = None,
        default_ttl: int = DEFAULT_TTL,
        concurrency: int = 100,
        timeout: float = 10.0,
        http2: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vapid = vapid
        self.allow_list = (
            allowed_hosts
            if isinstance(allowed_hosts, EndpointAllowList)
            else EndpointAllowList(allowed_hosts)
        )
        self.default_ttl = default_ttl
        self.concurrency = concurrency
        self._clock = clock
        self._http = httpx.AsyncClient(
            http2=http2,
            verify=client_ssl_context(ca_file=ca_file, alpn=()),  # httpx sets ALPN itself
            timeout=timeout,
            # Never follow a redirect: it could lead anywhere, past the allow-list.
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=min(concurrency, 50)),
        )
        self._rendered: tuple[Notification, bytes] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    def check_endpoint(self, endpoint: str) -> None:
        """Raise ConfigurationError when ``endpoint`` is not allowed (for the registry at sign-up)."""
        reason = self.allow_list.reason_refused(endpoint)
        if reason is not None:
            raise ConfigurationError(reason, field="endpoint")

    async def send(self, notification: Notification, token: Subscriptionish) -> DeliveryResult:
        """Deliver to one subscription (a :class:`WebSubscription` or its browser JSON)."""
        try:
            plaintext = self._plaintext(notification)
        except NotificationError:
            raise
        except (ValueError, TypeError) as exc:
            # any rendering failure is this notification's problem: send_many answers the item
            # payload_rejected and goes on with the batch
            raise NotificationError(f"cannot render the Web Push message: {exc}") from None
        try:
            subscription = WebSubscription.from_dict(token)
        except SubscriptionError as exc:
            label = token.get("endpoint") if isinstance(token, Mapping) else None
            return DeliveryResult(
                str(label or ""), Outcome.TOKEN_DEAD, reason=f"invalid subscription: {exc}", attempts=0
            )
        endpoint = subscription.endpoint
        refused = self.allow_list.reason_refused(endpoint)
        if refused is not None:
            return DeliveryResult(endpoint, Outcome.FAILED, reason=refused, attempts=0)
        now = self._clock()
        try:
            request_headers = headers(notification, default_ttl=self.default_ttl, now=now)
        except NotificationError:
            raise
        except (ValueError, TypeError) as exc:
            raise NotificationError(f"cannot render the Web Push headers: {exc}") from None
        request_headers["content-encoding"] = "aes128gcm"
        request_headers["content-type"] = "application/octet-stream"
        request_headers["authorization"] = self.vapid.authorization(_origin(endpoint), now=now)
        body = encrypt(plaintext, subscription)
        try:
            response = await self._http.post(endpoint, content=body, headers=request_headers)
        except httpx.TimeoutException:
            return DeliveryResult(endpoint, Outcome.RETRY, reason="no answer from the push service in time")
        except httpx.HTTPError as exc:
            # The message may hold the endpoint URL (a bearer capability): name the host only.
            return DeliveryResult(
                endpoint, Outcome.RETRY, reason=f"{type(exc).__name__} talking to {subscription.host}"
            )
        outcome, reason = classify(response.status_code)
        retry_after = None
        if outcome is Outcome.RETRY:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._clock())
        if outcome is Outcome.DELIVERED:
            return DeliveryResult(
                endpoint, outcome, response.status_code, provider_id=response.headers.get("location")
            )
        detail = _short_text(response)
        return DeliveryResult(
            endpoint,
            outcome,
            response.status_code,
            reason=f"{reason}: {detail}" if detail else reason,
            retry_after=retry_after,
        )

    def _token_text(self, token: Subscriptionish) -> str:
        if isinstance(token, WebSubscription):
            return token.endpoint
        return str(token.get("endpoint", "")) if isinstance(token, Mapping) else ""

    def _plaintext(self, notification: Notification) -> bytes:
        cached = self._rendered
        if cached is not None and cached[0] is notification:
            return cached[1]
        plaintext = render(notification)
        self._rendered = (notification, plaintext)
        return plaintext


def _origin(endpoint: str) -> str:
    """The VAPID ``aud``: the endpoint's origin, default port left out (RFC 6454 serialisation)."""
    parts = urllib.parse.urlsplit(endpoint)
    netloc = parts.netloc.lower()
    return f"https://{netloc.removesuffix(':443')}"


def _short_text(response: httpx.Response) -> str:
    """The start of a push service's error text (they explain VAPID and size problems there)."""
    text = response.text.strip().replace("\n", " ")
    return text[:200]
