"""A fake Web Push service (RFC 8030) that decrypts what it receives, like a browser would.

It hands out subscriptions in the browser's ``PushSubscription.toJSON()`` shape, keeping each one's
private key and auth secret; a push to ``POST /wp/<id>`` is checked the way push services check it
(``TTL`` present, ``Urgency`` / ``Topic`` well-formed, ``Content-Encoding: aes128gcm``, at most 4096
bytes, ``Authorization: vapid t=<JWT>, k=<key>`` with a valid ES256 signature, ``aud`` = this origin,
``exp`` in the future and at most 24 hours ahead, ``sub`` a mailto: or https: URI) and then
decrypted with the subscription's private key (RFC 8291)::

    async with WebPushSandbox() as sb:
        sub = sb.new_subscription()            # {"endpoint": ..., "keys": {"p256dh", "auth"}}
        sb.script(sub, "gone")                 # or not_found / too_large / rate_limited / unavailable
        ...
        sb.received(sub)[0].json               # the decrypted payload

The same port serves a control API under ``/_sandbox/`` (see :func:`webpush_control`), so that a
sandbox started by ``pushrelay sandbox`` hands out subscriptions to other processes.

Decryption uses ``http-ece`` and the VAPID check PyJWT: neither shares code with the client side's
``py-vapid`` signing.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece  # type: ignore[import-untyped]
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..webpush.subscription import b64url_decode, b64url_encode
from .https_sandbox import CONTROL_PREFIX, BadInput, ControlApi, HttpsSandbox, json_field
from .records import InboxLog
from .server import Handler, Request, Response

__all__ = [
    "BEHAVIOURS",
    "Undecryptable",
    "WebPushReceived",
    "WebPushSandbox",
    "WebPushService",
    "webpush_control",
]

_JSON = ("content-type", "application/json")
_MAX_BODY = 4096
_MAX_VAPID_AHEAD = 24 * 3600
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")

#: behaviour -> HTTP status
BEHAVIOURS: dict[str, int] = {
    "not_found": 404,
    "gone": 410,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
}


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """A push answered 201 whose body the browser could not decrypt (it never shows it)."""

    endpoint: str
    subscription_id: str
    reason: str
    at: float
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "subscription_id": self.subscription_id,
            "reason": self.reason,
            "at": self.at,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class WebPushReceived:
    """One push the service accepted, decrypted."""

    subscription_id: str
    payload: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    vapid_claims: dict[str, Any]
    vapid_public_key: str
    http_version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")

    @property
    def json(self) -> Any:
        return json.loads(self.payload)

    def to_json(self) -> dict[str, Any]:
        """For the control API: the decrypted payload as JSON when it is JSON, else as text."""
        try:
            payload: Any = self.json
        except ValueError:
            payload = self.text
        return {
            "subscription_id": self.subscription_id,
            "payload": payload,
            "ttl": self.ttl,
            "urgency": self.urgency,
            "topic": self.topic,
            "vapid_claims": self.vapid_claims,
            "vapid_public_key": self.vapid_public_key,
            "http_version": self.http_version,
        }


@dataclass
class _Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    gone: bool = False


@dataclass
class _Script:
    behaviour: str
    times: int | None
    retry_after: int | None


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebPushService:
    """Subscriptions, the ``/wp/<id>`` handler and what each subscription received."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.origin = ""  # set by the sandbox once it listens
        self._clock = clock
        self._subscriptions: dict[str, _Subscription] = {}
        self._scripts: dict[str, _Script] = {}
        self._received: dict[str, list[WebPushReceived]] = defaultdict(list)
        #: Answers given, by HTTP status.
        self.stats: dict[int, int] = defaultdict(int)
        #: Why each refused push was refused, in order.
        self.refusals: list[str] = []
        self.inbox: InboxLog | None = None  # the inbox page's log, when one is attached
        self._plaintext = b""  # what the push being handled decrypted to, for the inbox
        self._note: str | None = None  # what the inbox should say about it
        #: Pushes answered 201 that the browser would drop (they do not decrypt), oldest first.
        self.undecryptable: list[Undecryptable] = []

    def new_subscription(self, *, application_server_key: str | None = None) -> dict[str, Any]:
        """A fresh subscription as ``PushSubscription.toJSON()`` gives it.

        With ``application_server_key`` (the VAPID public key, base64url) the subscription is bound
        to that key, as ``pushManager.subscribe({applicationServerKey})`` does: pushes signed with
        another key are refused with 403.
        """
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(16)
        self._subscriptions[sub_id] = _Subscription(sub_id, private_key, auth, application_server_key)
        if self.inbox is not None:
            self.inbox.add_device("webpush", sub_id)
        public = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/wp/{sub_id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(public), "auth": b64url_encode(auth)},
        }

    def unsubscribe(self, subscription: Mapping[str, Any] | str) -> None:
        """The browser unsubscribed: later pushes get 410 Gone."""
        self._subscriptions[self._id(subscription)].gone = True

    def script(
        self,
        subscription: Mapping[str, Any] | str,
        behaviour: str,
        *,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(sorted(BEHAVIOURS))}, got {behaviour!r}")
        self._scripts[self._id(subscription)] = _Script(behaviour, times, retry_after)

    def attach_inbox(self, inbox: InboxLog | None) -> None:
        """Report every answered push to ``inbox``; the subscriptions handed out so far are its devices."""
        self.inbox = inbox
        if inbox is not None:
            for sub_id in list(self._subscriptions):
                inbox.add_device("webpush", sub_id)

    def unscript(self, subscription: Mapping[str, Any] | str) -> None:
        self._scripts.pop(self._id(subscription), None)

    def scripts(self) -> dict[str, dict[str, Any]]:
        """The scripted subscriptions (by id) and what they will answer."""
        return {i: {"behaviour": s.behaviour, "times": s.times, "retry_after": s.retry_after}
                for i, s in self._scripts.items()}  # fmt: skip

    def knows(self, subscription: Mapping[str, Any] | str) -> bool:
        """Whether this service handed out the subscription."""
        return self._id(subscription) in self._subscriptions

    def dropped(self, subscription: Mapping[str, Any] | str | None = None) -> list[Undecryptable]:
        """Pushes accepted (201) that did not decrypt, so the browser dropped them: all, or one's."""
        wanted = None if subscription is None else self._id(subscription)
        return [u for u in self.undecryptable if wanted is None or u.subscription_id == wanted]

    def received(self, subscription: Mapping[str, Any] | str) -> list[WebPushReceived]:
        return list(self._received.get(self._id(subscription), ()))

    def all_received(self) -> list[WebPushReceived]:
        return [r for records in self._received.values() for r in records]

    @staticmethod
    def _id(subscription: Mapping[str, Any] | str) -> str:
        endpoint = subscription if isinstance(subscription, str) else str(subscription.get("endpoint", ""))
        return endpoint.rsplit("/wp/", 1)[-1]

    # -- the push endpoint ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        self._plaintext = b""
        self._note = None
        try:
            response = self._handle(request)
        except _Refused as exc:
            self.refusals.append(f"{exc.status}: {exc}")
            response = Response(exc.status, [_JSON], json.dumps({"error": str(exc)}).encode())
        self.stats[response.status] += 1
        if self.inbox is not None:
            sub_id = request.path.split("?")[0].rsplit("/wp/", 1)[-1]
            self.inbox.observe(
                "webpush",
                sub_id,
                request.method,
                request.path,
                response.status,
                request.headers,
                self._plaintext,
                response.body,
                self._note,
            )
        return response

    def _handle(self, request: Request) -> Response:
        if request.method != "POST":
            raise _Refused(405, "push messages are POSTed")
        sub_id = request.path.split("?")[0].rsplit("/wp/", 1)[-1]
        sub = self._subscriptions.get(sub_id)
        if sub is None:
            raise _Refused(404, "no such subscription")
        if sub.gone:
            raise _Refused(410, "the subscription has expired or was unsubscribed")
        ttl = _ttl(request.header("ttl"))
        urgency = request.header("urgency")
        if urgency is not None and urgency not in _URGENCIES:
            raise _Refused(400, f"Urgency must be one of {', '.join(sorted(_URGENCIES))}")
        topic = request.header("topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            raise _Refused(400, "Topic must be at most 32 characters of the URL-safe base64 alphabet")
        claims, public_key = self._check_vapid(request.header("authorization"), sub)
        # RFC 8030 §5: a push without a body is valid (the browser gets an empty push event);
        # a body must be encrypted (RFC 8291).
        if request.body and (request.header("content-encoding") or "").lower() != "aes128gcm":
            raise _Refused(415, "Content-Encoding must be aes128gcm (RFC 8291)")
        if len(request.body) > _MAX_BODY:
            raise _Refused(413, f"the body is {len(request.body)} bytes; at most {_MAX_BODY} are accepted")
        script = self._scripts.get(sub_id)
        if script is not None:
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    del self._scripts[sub_id]
            status = BEHAVIOURS[script.behaviour]
            headers = [_JSON]
            if script.retry_after is not None:
                headers.append(("retry-after", str(script.retry_after)))
            return Response(status, headers, json.dumps({"error": script.behaviour}).encode())
        message_id = secrets.token_urlsafe(12)
        accepted = Response(201, [("location", f"{self.origin}/m/{message_id}"), ("ttl", str(ttl))])
        payload = b""
        if request.body:
            try:
                payload = http_ece.decrypt(
                    request.body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                )
            except Exception as exc:  # http-ece raises its own and cryptography's errors
                # The push service cannot read the body: it accepts it, and the browser drops it.
                reason = (
                    f"the body does not decrypt with the subscription's keys: {getattr(exc, 'message', exc)}"
                )
                self.undecryptable.append(
                    Undecryptable(
                        f"{self.origin}/wp/{sub_id}", sub_id, reason, self._clock(), len(request.body)
                    )
                )
                self._note = f"dropped by the browser: {reason}"
                return accepted
        self._plaintext = bytes(payload)
        self._received[sub_id].append(
            WebPushReceived(
                sub_id,
                bytes(payload),
                ttl,
                urgency,
                topic,
                claims,
                public_key,
                "HTTP/2" if request.stream_id else "HTTP/1.1",
                {k: v for k, v in request.headers if k != "authorization"},
            )
        )
        return accepted

    def _check_vapid(self, authorization: str | None, sub: _Subscription) -> tuple[dict[str, Any], str]:
        if not authorization:
            raise _Refused(401, "Authorization: vapid t=..., k=... is required (RFC 8292)")
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, f"the Authorization scheme must be vapid (RFC 8292), not {scheme!r}")
        fields: dict[str, str] = {}
        for part in params.split(","):
            name, _, value = part.strip().partition("=")
            fields[name.strip()] = value.strip()
        token, key_text = fields.get("t"), fields.get("k")
        if not token or not key_text:
            raise _Refused(401, "the vapid Authorization needs both t=<JWT> and k=<public key>")
        try:
            raw = b64url_decode(key_text)
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise _Refused(401, "k is not a base64url P-256 public key") from None
        if sub.application_server_key is not None and raw != b64url_decode(sub.application_server_key):
            raise _Refused(
                403, "the VAPID key is not the applicationServerKey this subscription was made with"
            )
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["aud", "exp", "sub"], "verify_exp": False},
            )
        except jwt.InvalidSignatureError:
            raise _Refused(403, "the VAPID JWT signature does not verify with k") from None
        except jwt.InvalidAudienceError:
            raise _Refused(403, f"the VAPID aud must be this push service's origin {self.origin}") from None
        except jwt.PyJWTError as exc:
            raise _Refused(403, f"invalid VAPID JWT: {exc}") from None
        now = self._clock()
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp <= now:
            raise _Refused(403, "the VAPID JWT has expired")
        if exp > now + _MAX_VAPID_AHEAD + 60:  # a minute of clock skew
            raise _Refused(403, "the VAPID JWT exp is more than 24 hours ahead (RFC 8292 §2)")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.startswith(("mailto:", "https:")):
            raise _Refused(403, "the VAPID sub must be a mailto: or https: URI")
        return claims, key_text


def _ttl(value: str | None) -> int:
    if value is None:
        raise _Refused(400, "the TTL header is required (RFC 8030 §5.2)")
    if not value.strip().isdigit():
        raise _Refused(400, f"TTL must be whole seconds, got {value!r}")
    return int(value)


class WebPushSandbox(HttpsSandbox):
    """The fake push service and its control API (``/_sandbox/...``) over HTTPS on 127.0.0.1
    (HTTP/1.1 or HTTP/2)."""

    kind = "Web Push"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, directory: str | Path | None = None
    ) -> None:
        """``directory``: where the TLS material (``ca.pem``...) goes; a temporary one by default."""
        super().__init__(host=host, port=port, directory=directory)
        self.service = WebPushService()

    def routes(self) -> dict[str, Handler]:
        return {"/wp/": self.service.handle, CONTROL_PREFIX: webpush_control(self.service).handle}

    def _started(self) -> None:
        self.service.origin = self.url

    @property
    def allowed_host(self) -> str:
        """The allow-list entry for this sandbox (``127.0.0.1:<port>``)."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}"

    def new_subscription(self, *, application_server_key: str | None = None) -> dict[str, Any]:
        return self.service.new_subscription(application_server_key=application_server_key)

    def unsubscribe(self, subscription: Mapping[str, Any] | str) -> None:
        self.service.unsubscribe(subscription)

    def script(
        self,
        subscription: Mapping[str, Any] | str,
        behaviour: str,
        *,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.service.script(subscription, behaviour, times=times, retry_after=retry_after)

    def received(self, subscription: Mapping[str, Any] | str) -> list[WebPushReceived]:
        return self.service.received(subscription)

    def undecryptable(self, subscription: Mapping[str, Any] | str | None = None) -> list[Undecryptable]:
        """Pushes answered 201 whose body did not decrypt (a browser drops them): all, or one's."""
        return self.service.dropped(subscription)

    def all_received(self) -> list[WebPushReceived]:
        return self.service.all_received()

    @property
    def stats(self) -> dict[int, int]:
        return dict(self.service.stats)


def webpush_control(service: WebPushService) -> ControlApi:
    """``/_sandbox/`` of the Web Push sandbox::

    POST /_sandbox/subscriptions     {"application_server_key"?} -> 201 PushSubscription.toJSON()
    POST /_sandbox/unsubscribe       {"endpoint"}: later pushes get 410 Gone
    GET  /_sandbox/received[?endpoint=E]   {"received": [...]}: decrypted payloads
    GET  /_sandbox/stats             answers by status and refusals
    GET  /_sandbox/undecryptable[?endpoint=E]   {"undecryptable": [...]}: accepted, dropped by the browser
    POST /_sandbox/script            {"endpoint", "behaviour", "times"?, "retry_after"?}
    """

    def endpoint_of(body: dict[str, Any]) -> str:
        endpoint = json_field(body, "endpoint", str)
        if not service.knows(endpoint):
            raise BadInput("endpoint: not a subscription of this sandbox (POST /_sandbox/subscriptions)")
        return str(endpoint)

    def subscribe(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        key = json_field(body, "application_server_key", str, required=False)
        return 201, service.new_subscription(application_server_key=key)

    def unsubscribe(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        service.unsubscribe(endpoint_of(body))
        return {"unsubscribed": True}

    def received(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        endpoints = query.get("endpoint")
        records = service.received(endpoints[0]) if endpoints else service.all_received()
        return {"received": [r.to_json() for r in records]}

    def undecryptable(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        endpoints = query.get("endpoint")
        records = service.dropped(endpoints[0] if endpoints else None)
        return {"undecryptable": [u.to_json() for u in records]}

    def stats(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        return {
            "answers": {str(k): v for k, v in sorted(service.stats.items())},
            "refusals": service.refusals,
        }

    def script(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        endpoint = endpoint_of(body)
        behaviour = json_field(body, "behaviour", str)
        times = json_field(body, "times", int, required=False)
        retry_after = json_field(body, "retry_after", int, required=False)
        service.script(endpoint, behaviour, times=times, retry_after=retry_after)
        return {"scripted": {"behaviour": behaviour, "times": times, "retry_after": retry_after}}

    return ControlApi(
        {
            ("POST", "subscriptions"): subscribe,
            ("POST", "unsubscribe"): unsubscribe,
            ("GET", "received"): received,
            ("GET", "stats"): stats,
            ("GET", "undecryptable"): undecryptable,
            ("POST", "script"): script,
        }
    )
