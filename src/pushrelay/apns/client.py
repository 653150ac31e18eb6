"""The APNs client: notifications in, one :class:`DeliveryResult` per device out.

``send`` answers one device; ``send_many`` streams results for an iterable (or async iterable) of
``(notification, token, tag[, apns_id])`` with a bounded number in flight and no per-item task or
future, so memory stays flat however large the batch. Provider answers and transport trouble are
outcomes, never exceptions. ``send`` raises :class:`NotificationError` for a notification that
cannot be rendered; ``send_many`` answers such an item ``payload_rejected`` on its own and goes on.

The client does not retry. Each delivery is one request to APNs, and its result is APNs' real
answer (``503 ServiceUnavailable`` is status 503, reason ``ServiceUnavailable``) or the transport
error that prevented one; the caller (the outbox) decides whether and when to try again, with the
one backoff of :mod:`pushrelay.backoff`. Below the client, the HTTP/2 pool resends only requests
APNs provably never processed (GOAWAY, REFUSED_STREAM), counted apart in
``pool.stats.resent_unprocessed``.

``403 ExpiredProviderToken`` is no exception to that rule: the client mints a fresh token (once,
single-flight), retires the connection and returns ``retry``; the next attempt, scheduled by the
caller like any other, carries the new token. Resending at once would be a provider request that
no one records as an attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .._exceptions import ConfigurationError, NotificationError, TransportError
from ..http2 import AdaptiveLimit, Http2Pool, PendingRequest, Response
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..tls import client_ssl_context
from .auth import TokenAuth
from .certificate import CertificateAuth
from .payload import ApnsRequest, render
from .reasons import classify

__all__ = ["DEVELOPMENT_ENDPOINT", "PRODUCTION_ENDPOINT", "ApnsClient", "ApnsStats", "Item"]

log = logging.getLogger("pushrelay.apns")

PRODUCTION_ENDPOINT = "https://api.push.apple.com"
DEVELOPMENT_ENDPOINT = "https://api.sandbox.push.apple.com"
_INDEXABLE = frozenset({b":authority", b"authorization", b"apns-topic", b"apns-push-type", b"apns-priority"})
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_DELIVERED = Outcome.DELIVERED
_TOKEN_RE = re.compile(r"(?:[0-9a-fA-F]{2}){32,}")

#: (notification, token, tag) or (notification, token, tag, apns_id)
Item = tuple[Notification, str, Any] | tuple[Notification, str, Any, str | None]


@dataclass
class ApnsStats:
    """Counters since the client was opened (for metrics and tests)."""

    sent: int = 0  # requests handed to the HTTP/2 pool: one per delivery attempt
    outcomes: dict[str, int] = field(default_factory=dict)
    jwt_rejections: int = 0


class _Rendered:
    """A notification's request as this client sends it to every device: the body and the header
    pairs around the per-device ``:path``, ``authorization`` and ``apns-id``, encoded once."""

    __slots__ = ("after_id", "before_id", "body", "notification")

    def __init__(self, notification: Notification, r: ApnsRequest) -> None:
        self.notification = notification  # kept: the cache is keyed by its id()
        self.body = r.body
        self.before_id = (
            (b"apns-topic", r.topic.encode()),
            (b"apns-push-type", r.push_type.encode()),
            (b"apns-priority", b"%d" % r.priority),
        )
        after: list[tuple[bytes, bytes]] = []
        if r.expiration is not None:
            after.append((b"apns-expiration", b"%d" % r.expiration))
        if r.collapse_id is not None:
            after.append((b"apns-collapse-id", r.collapse_id.encode()))
        self.after_id = tuple(after)


class _Job:
    """One (notification, device) delivery: one request."""

    __slots__ = ("apns_id", "auth_sent", "on_done", "rendered", "tag", "token")

    def __init__(
        self,
        rendered: _Rendered,
        token: str,
        tag: Any,
        apns_id: str,
        on_done: Callable[[DeliveryResult], None],
    ) -> None:
        self.rendered = rendered
        self.token = token
        self.tag = tag
        self.apns_id = apns_id
        self.on_done = on_done
        self.auth_sent = ""


class ApnsClient:
    def __init__(
        self,
        auth: TokenAuth | CertificateAuth,
        *,
        topic: str,
        environment: Literal["production", "development"] = "production",
        endpoint: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connections: int = 1,
        max_in_flight: int | AdaptiveLimit | None = None,
        request_timeout: float = 30.0,
        ping_interval: float = 60.0,
    ) -> None:
        if environment not in ("production", "development"):
            raise ConfigurationError(
                f"environment must be 'production' or 'development', got {environment!r}", field="environment"
            )
        if not isinstance(topic, str) or not topic or " " in topic:
            raise ConfigurationError(f"topic must be the app's bundle id, got {topic!r}", field="topic")
        self.auth = auth
        self.topic = topic
        self.environment = environment
        self.endpoint = endpoint or (
            PRODUCTION_ENDPOINT if environment == "production" else DEVELOPMENT_ENDPOINT
        )
        self.endpoint = self.endpoint.rstrip("/")
        if isinstance(auth, CertificateAuth):
            auth.check_valid()
        if ssl_context is None:
            ssl_context = client_ssl_context(
                ca_file=ca_file, client_cert=auth if isinstance(auth, CertificateAuth) else None
            )
        if isinstance(max_in_flight, bool) or not (
            max_in_flight is None
            or isinstance(max_in_flight, AdaptiveLimit)
            or (isinstance(max_in_flight, int) and max_in_flight >= 1)
        ):
            raise ConfigurationError(
                f"max_in_flight must be a positive integer (a fixed cap) or None (adaptive), got {max_in_flight!r}",
                field="max_in_flight",
            )
        #: a fixed cap per send_many call, or None: the limit adapts (see :attr:`limiter`)
        self.max_in_flight: int | None = max_in_flight if isinstance(max_in_flight, int) else None
        #: the adaptive in-flight limit (None with a fixed cap): it follows the latency of APNs'
        #: answers, up to what the connections' streams carry (pushrelay.http2.limit)
        self.limiter: AdaptiveLimit | None = None
        if self.max_in_flight is None:
            self.limiter = max_in_flight if isinstance(max_in_flight, AdaptiveLimit) else AdaptiveLimit()
        self.stats = ApnsStats()
        #: set when APNs said the credentials or topic are wrong; nothing more is sent until reset
        self.broken: str | None = None
        self._pool_args: dict[str, Any] = {
            "connections": connections,
            "indexable_headers": _INDEXABLE,
            "request_timeout": request_timeout,
            "ping_interval": ping_interval,
            "limiter": self.limiter,
            # 503 is APNs saying it is overloaded; its 429 is about one device token (too many
            # notifications to it), not about the rate of the connection, so it is no signal here
            "overload_statuses": frozenset({503}),
        }
        self._ssl_context = ssl_context
        self._pool: Http2Pool | None = None
        self._render_cache: dict[int, _Rendered] = {}
        self._id_prefix = os.urandom(10).hex()
        self._id_counter = 0
        self._auth_str = ""
        self._auth_bytes = b""
        self._static: list[tuple[bytes, bytes]] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> ApnsClient:
        self._ensure_pool()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    @property
    def pool(self) -> Http2Pool:
        return self._ensure_pool()

    def _ensure_pool(self) -> Http2Pool:
        if self._pool is None:
            self._pool = Http2Pool(self.endpoint, self._ssl_context, **self._pool_args)
            self._static = [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", self._pool.authority),
            ]
        return self._pool

    @property
    def in_flight_limit(self) -> int:
        """The number of deliveries ``send_many`` keeps open now (the fixed cap, or the adaptive
        limit's current value)."""
        if self.limiter is not None:
            return self.limiter.value
        assert self.max_in_flight is not None
        return self.max_in_flight

    @property
    def in_flight(self) -> int:
        """Requests on streams now (0 before the first send)."""
        return self._pool.in_flight if self._pool is not None else 0

    @property
    def is_open(self) -> bool:
        """Opened (``async with``, or a first send) and not closed since."""
        return self._pool is not None

    def reset_broken(self) -> None:
        """Resume sending after an operator fixed the configuration."""
        self.broken = None

    # -- sending -----------------------------------------------------------------------------------
    async def send(
        self, notification: Notification, token: str, *, apns_id: str | None = None
    ) -> DeliveryResult:
        """Deliver to one device and return its result."""
        fut: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self.start(notification, token, None, apns_id, fut.set_result)
        return await fut

    async def send_many(
        self, items: Iterable[Item] | AsyncIterable[Item], *, max_in_flight: int | None = None
    ) -> AsyncIterator[DeliveryResult]:
        """Deliver every item, yielding results in completion order (``result.tag`` is the item's tag).

        At most ``max_in_flight`` (this call's fixed cap), else the client's fixed cap, else the
        adaptive limit as it is at each refill, are open at once for this call."""
        fixed = max_in_flight or self.max_in_flight
        limiter = self.limiter
        assert fixed is not None or limiter is not None
        results: deque[DeliveryResult] = deque()
        wake = asyncio.Event()
        outstanding = 0

        def done(result: DeliveryResult) -> None:
            nonlocal outstanding
            outstanding -= 1
            results.append(result)
            wake.set()

        sync_it: Iterator[Item] | None = None
        async_it: AsyncIterator[Item] | None = None
        if isinstance(items, AsyncIterable):
            async_it = aiter(items)
        else:
            sync_it = iter(items)
        exhausted = False
        while True:
            limit = fixed if fixed is not None else limiter.value  # type: ignore[union-attr]
            while not exhausted and outstanding < limit:
                try:
                    item = next(sync_it) if sync_it is not None else await anext(async_it)  # type: ignore[arg-type]
                except (StopIteration, StopAsyncIteration):
                    exhausted = True
                    break
                outstanding += 1
                apns_id = item[3] if len(item) > 3 else None
                try:
                    self.start(item[0], item[1], item[2], apns_id, done)
                except NotificationError as exc:
                    # this item alone can never be sent: answer it, never retried, and go on
                    outstanding -= 1
                    results.append(_rejected(item[1], item[2], apns_id, exc))
            while results:
                yield results.popleft()
            if exhausted and outstanding == 0:
                return
            wake.clear()
            if not results:
                await wake.wait()

    def start(
        self,
        notification: Notification,
        token: str,
        tag: Any,
        apns_id: str | None,
        on_done: Callable[[DeliveryResult], None],
    ) -> None:
        """Begin one delivery; ``on_done`` is called exactly once with its result (the low-level API
        that ``send`` and ``send_many`` are built on; call it from the event loop thread)."""
        rendered = self._render(notification)  # raises NotificationError before anything is queued
        if apns_id is None:
            self._id_counter += 1
            p = self._id_prefix
            # a random per-client prefix + a counter: unique, a valid v4 UUID, and ~10x cheaper than uuid4()
            apns_id = f"{p[:8]}-{p[8:12]}-4{p[13:16]}-{_VARIANT[p[16]]}{p[17:20]}-{self._id_counter:012x}"
        job = _Job(rendered, token, tag, apns_id, on_done)
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            self._finish(
                job, Outcome.TOKEN_DEAD, 0, "BadDeviceToken", detail="not a hex APNs device token", sent=False
            )
            return
        if self.broken is not None:
            self._finish(
                job, Outcome.CONFIG_BROKEN, 0, self.broken, detail="sending stopped for this app", sent=False
            )
            return
        self._submit(job)

    def _render(self, notification: Notification) -> _Rendered:
        # a batch usually repeats one notification object (one per language of a localized one):
        # render it, and encode its headers, once. The entry keeps the object, so its id() is not
        # reused by another notification while the entry lives (a dict is converted: never a hit).
        key = id(notification)
        hit = self._render_cache.get(key)
        if hit is not None and hit.notification is notification:
            return hit
        if not isinstance(notification, Notification):
            notification = Notification.from_dict(notification)
        rendered = _Rendered(notification, render(notification, topic=self.topic))
        if len(self._render_cache) >= 256:
            self._render_cache.clear()
        self._render_cache[key] = rendered
        return rendered

    def _submit(self, job: _Job) -> None:
        pool = self._ensure_pool()
        r = job.rendered
        headers = [*self._static, (b":path", b"/3/device/" + job.token.encode())]
        if isinstance(self.auth, TokenAuth):
            value = self.auth.authorization()
            if value is not self._auth_str:
                self._auth_str, self._auth_bytes = value, value.encode()
            job.auth_sent = value
            headers.append((b"authorization", self._auth_bytes))
        headers += r.before_id
        headers.append((b"apns-id", job.apns_id.encode()))
        headers += r.after_id
        self.stats.sent += 1
        pool.submit(PendingRequest(headers, r.body, self._on_answer, job))

    # -- answers -----------------------------------------------------------------------------------
    def _on_answer(self, req: PendingRequest, answer: Response | TransportError) -> None:
        job: _Job = req.tag
        if isinstance(answer, TransportError):
            # no answer from APNs: the connection died, the deadline passed... (status 0)
            self._finish(job, Outcome.RETRY, 0, type(answer).__name__, detail=str(answer))
            return
        status = answer.status
        if status == 200:
            # the common answer, by far: what _finish does, without its general cases
            outcomes = self.stats.outcomes
            outcomes["delivered"] = outcomes.get("delivered", 0) + 1
            provider_id = _header(answer, b"apns-id") or job.apns_id
            job.on_done(DeliveryResult(job.token, _DELIVERED, 200, None, provider_id, None, None, 1, job.tag))
            return
        reason, timestamp = _parse_error(answer.body)
        outcome = classify(status, reason)
        if reason is None:
            reason = _REASON_BY_STATUS.get(status)  # an empty error body still gets a readable reason
        retry_after = _retry_after(answer)
        if status == 403 and reason == "ExpiredProviderToken" and isinstance(self.auth, TokenAuth):
            self.stats.jwt_rejections += 1
            if self.auth.token_rejected(job.auth_sent, reason):
                # a fresh token is minted: the connection that carried the old one goes, and the
                # next attempt (the caller's) uses the new token
                if self._pool is not None:
                    self._pool.retire(req.conn)
                outcome = Outcome.RETRY
            else:
                outcome = Outcome.CONFIG_BROKEN
        if outcome is Outcome.CONFIG_BROKEN and self.broken is None:
            self.broken = f"{status} {reason}"
            log.error(
                "APNs rejected the configuration of topic %s (%s %s): sending stopped for this app "
                "until the credentials or topic are fixed",
                self.topic,
                status,
                reason,
            )
        self._finish(
            job,
            outcome,
            status,
            reason,
            provider_id=_header(answer, b"apns-id"),
            invalid_since=timestamp,
            retry_after=retry_after if outcome is Outcome.RETRY else None,
        )

    def _finish(
        self,
        job: _Job,
        outcome: Outcome,
        status: int,
        reason: str | None,
        *,
        provider_id: str | None = None,
        invalid_since: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
        sent: bool = True,
    ) -> None:
        outcomes = self.stats.outcomes
        outcomes[outcome.value] = outcomes.get(outcome.value, 0) + 1
        job.on_done(
            DeliveryResult(
                token=job.token,
                outcome=outcome,
                status=status,
                reason=f"{reason}: {detail}" if detail and reason else (reason or detail),
                provider_id=provider_id or job.apns_id,
                token_invalid_since=invalid_since,
                retry_after=retry_after,
                attempts=1 if sent else 0,  # requests made for it: this client never makes two
                tag=job.tag,
            )
        )


#: HTTP reason phrases, for an error answer without an APNs reason in its body.
_REASON_BY_STATUS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    410: "Gone",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _rejected(token: str, tag: Any, apns_id: str | None, exc: NotificationError) -> DeliveryResult:
    """The result of an item whose notification cannot be rendered (too large, a bad field)."""
    return DeliveryResult(
        token=token if isinstance(token, str) else str(token),
        outcome=Outcome.PAYLOAD_REJECTED,
        reason=f"{exc} (field: {exc.field})" if exc.field else str(exc),
        provider_id=apns_id,
        attempts=0,
        tag=tag,
    )


def _header(response: Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _retry_after(response: Response) -> float | None:
    value = _header(response, b"retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _parse_error(body: bytes) -> tuple[str | None, int | None]:
    """APNs error bodies are ``{"reason": ..., "timestamp": ms}``; tolerate anything else."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    reason = data.get("reason")
    timestamp = data.get("timestamp")
    return (
        reason if isinstance(reason, str) else None,
        timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None,
    )
