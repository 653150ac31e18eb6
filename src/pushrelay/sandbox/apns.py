"""The APNs behaviour of the sandbox: validate a request as Apple does, apply device scripts, record.

:class:`ApnsService` is a route handler for :class:`~pushrelay.sandbox.server.H2Server`; it does no I/O
itself. The order of the checks (Apple does not publish one) is: path, method, outage, duplicate headers,
authentication, apns-id, device token, push type, topic, priority, expiration, collapse id, payload,
device script. The first failing check answers.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable

from cryptography import x509

from .apns_rules import (
    DEFAULT_PUSH_TYPE,
    DEVICE_PATH_PREFIX,
    MAX_COLLAPSE_ID_BYTES,
    PUSH_TYPES,
    PushTypeRule,
    Rejection,
    is_device_token,
    is_topic,
    is_uuid,
    split_topic,
)
from .devices import DeviceRegistry, token_fits_topic
from .provider_tokens import INVALID, ProviderTokens, VerifiedToken
from .records import InboxLog, ReceivedLog, _Record
from .scripting import DeviceScripts, Script
from .server import Delayed, Drop, GoAway, Reply, Request, Reset, Response
from .tls import client_certificate_environments, push_certificate_bundle

__all__ = ["SCRIPTED_ANSWERS", "ApnsService"]

log = logging.getLogger("pushrelay.sandbox.apns")

BAD_PATH = Rejection(404, "BadPath")
METHOD_NOT_ALLOWED = Rejection(405, "MethodNotAllowed")
DUPLICATE_HEADERS = Rejection(400, "DuplicateHeaders")
BAD_CERTIFICATE = Rejection(403, "BadCertificate")
BAD_CERTIFICATE_ENVIRONMENT = Rejection(403, "BadCertificateEnvironment")
BAD_MESSAGE_ID = Rejection(400, "BadMessageId")
MISSING_DEVICE_TOKEN = Rejection(400, "MissingDeviceToken")
BAD_DEVICE_TOKEN = Rejection(400, "BadDeviceToken")
INVALID_PUSH_TYPE = Rejection(400, "InvalidPushType")
MISSING_TOPIC = Rejection(400, "MissingTopic")
BAD_TOPIC = Rejection(400, "BadTopic")
TOPIC_DISALLOWED = Rejection(400, "TopicDisallowed")
DEVICE_TOKEN_NOT_FOR_TOPIC = Rejection(400, "DeviceTokenNotForTopic")
BAD_PRIORITY = Rejection(400, "BadPriority")
BAD_EXPIRATION = Rejection(400, "BadExpirationDate")
BAD_COLLAPSE_ID = Rejection(400, "BadCollapseId")
PAYLOAD_EMPTY = Rejection(400, "PayloadEmpty")
PAYLOAD_TOO_LARGE = Rejection(413, "PayloadTooLarge")

# What a scripted device answers, for the behaviours that are plain HTTP answers.
SCRIPTED_ANSWERS: dict[str, Rejection] = {
    "unregistered": Rejection(410, "Unregistered"),
    "expired_token": Rejection(410, "ExpiredToken"),
    "bad_token": BAD_DEVICE_TOKEN,
    "not_for_topic": DEVICE_TOKEN_NOT_FOR_TOPIC,
    "rate_limited": Rejection(429, "TooManyRequests"),
    "unavailable": Rejection(503, "ServiceUnavailable"),
    "internal": Rejection(500, "InternalServerError"),
    "shutdown": Rejection(503, "Shutdown"),
}

_CONTENT_TYPE = ("content-type", "application/json")
_STATE_TEAM = "apns.team"
_STATE_CERTIFICATE = "apns.certificate"


class _Reject(Exception):
    """Raised by a check: answer ``rejection``; ``detail`` explains it in the log (no secrets)."""

    def __init__(self, rejection: Rejection, detail: str) -> None:
        super().__init__(detail)
        self.rejection = rejection
        self.detail = detail


class _Valid:
    """A request that passed every check."""

    __slots__ = ("body", "collapse_id", "expiration", "priority", "push_type", "token", "topic")

    def __init__(
        self,
        token: str,
        topic: str,
        push_type: str | None,
        priority: int,
        expiration: int | None,
        collapse_id: str | None,
        body: bytes,
    ) -> None:
        self.token = token
        self.topic = topic
        self.push_type = push_type
        self.priority = priority
        self.expiration = expiration
        self.collapse_id = collapse_id
        self.body = body


class ApnsService:
    """APNs' answers for ``/3/device/<token>`` (register it as the ``"/"`` route of an H2Server)."""

    def __init__(
        self,
        *,
        environment: str,
        clock: Callable[[], float],
        max_concurrent_streams: int,
        devices: DeviceRegistry | None = None,
    ) -> None:
        self.environment = environment
        # Issued tokens; None is the lenient mode: any well-formed token is a device of every app.
        self.devices = devices
        self.clock = clock
        self.max_concurrent_streams = max_concurrent_streams
        self.tokens = ProviderTokens(clock, environment)
        self.topics: dict[str, str] = {}  # bundle id -> team id
        self.scripts = DeviceScripts()
        self.received = ReceivedLog()
        self.inbox: InboxLog | None = None  # the inbox page's log, when one is attached
        self.outage: Rejection | None = None
        self.requests = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._bodies: dict[str, bytes] = {}

    # -- the handler -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        reply = self._answer(request)
        if self.inbox is not None:
            _observe(self.inbox, request, reply)
        return reply

    def _answer(self, request: Request) -> Reply:
        self.requests += 1
        headers = dict(request.headers)
        supplied_id = headers.get("apns-id")
        apns_id = supplied_id if supplied_id is not None and is_uuid(supplied_id) else str(uuid.uuid4())
        try:
            valid = self._validate(request, headers, supplied_id)
        except _Reject as reject:
            return self._reject(request, apns_id, reject.rejection, reject.detail)
        script = self.scripts.take(valid.token)
        if script is None:
            return self._accept(request, apns_id, valid)
        return self._scripted(request, apns_id, valid, script)

    def _validate(self, request: Request, headers: dict[str, str], supplied_id: str | None) -> _Valid:
        path = request.path
        if not path.startswith(DEVICE_PATH_PREFIX):
            raise _Reject(BAD_PATH, f"path {path!r} is not {DEVICE_PATH_PREFIX}<device token>")
        if request.method != "POST":
            raise _Reject(METHOD_NOT_ALLOWED, f"method {request.method} (APNs takes POST only)")
        if self.outage is not None:
            raise _Reject(self.outage, "outage set on the sandbox")
        if len(headers) != len(request.headers):
            seen: Counter[str] = Counter(name for name, _ in request.headers)
            raise _Reject(
                DUPLICATE_HEADERS, f"repeated headers: {sorted(n for n, c in seen.items() if c > 1)}"
            )
        cert_bundle, team = self._authenticate(request, headers)
        # APNs allows one stream until a request with valid credentials came in; then many.
        request.connection.raise_max_concurrent_streams(self.max_concurrent_streams)

        if supplied_id is not None and not is_uuid(supplied_id):
            raise _Reject(BAD_MESSAGE_ID, f"apns-id {supplied_id!r} is not a UUID")
        token = path[len(DEVICE_PATH_PREFIX) :]
        if not token:
            raise _Reject(MISSING_DEVICE_TOKEN, "no device token after /3/device/")
        if not is_device_token(token):
            raise _Reject(
                BAD_DEVICE_TOKEN, f"device token of {len(token)} characters is not even-length hex ≥ 64"
            )
        device = None
        if self.devices is not None:
            device = self.devices.get(token)
            if device is None:
                raise _Reject(BAD_DEVICE_TOKEN, "device token was never issued (POST /_sandbox/devices)")
            if device.environment != self.environment:
                raise _Reject(
                    BAD_DEVICE_TOKEN,
                    f"device token of the {device.environment} environment sent to {self.environment}",
                )

        push_type = headers.get("apns-push-type")
        rule = DEFAULT_PUSH_TYPE if push_type is None else PUSH_TYPES.get(push_type)
        if rule is None:
            raise _Reject(
                INVALID_PUSH_TYPE, f"apns-push-type {push_type!r} is not one of {', '.join(PUSH_TYPES)}"
            )
        topic = self._check_topic(headers.get("apns-topic"), rule, team, cert_bundle)
        if device is not None and not token_fits_topic(device, topic):
            raise _Reject(
                DEVICE_TOKEN_NOT_FOR_TOPIC, f"device token of {device.topic!r} sent with apns-topic {topic!r}"
            )

        priority_text = headers.get("apns-priority")
        if priority_text is None:
            priority = rule.default_priority
        else:
            priority = int(priority_text) if priority_text.isascii() and priority_text.isdigit() else -1
            if priority not in rule.priorities:
                allowed = ", ".join(str(p) for p in sorted(rule.priorities, reverse=True))
                raise _Reject(
                    BAD_PRIORITY, f"apns-priority {priority_text!r} for {rule.name} (allowed: {allowed})"
                )

        expiration_text = headers.get("apns-expiration")
        expiration = None
        if expiration_text is not None:
            if not (expiration_text.isascii() and expiration_text.isdigit()):
                raise _Reject(BAD_EXPIRATION, f"apns-expiration {expiration_text!r} is not epoch seconds ≥ 0")
            expiration = int(expiration_text)

        collapse_id = headers.get("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            raise _Reject(BAD_COLLAPSE_ID, f"apns-collapse-id is {len(collapse_id.encode())} bytes (max 64)")

        body = request.body
        if not body:
            raise _Reject(PAYLOAD_EMPTY, "empty body")
        if len(body) > rule.max_payload:
            raise _Reject(
                PAYLOAD_TOO_LARGE, f"payload is {len(body)} bytes (max {rule.max_payload} for {rule.name})"
            )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        # Apple documents no reason for a body that is not a JSON object; PayloadEmpty ("no usable
        # payload") is what the sandbox answers. A missing "aps" is accepted: Wallet and MDM pushes are "{}".
        if not isinstance(payload, dict):
            raise _Reject(PAYLOAD_EMPTY, "body is not a JSON object")
        if "aps" in payload and not isinstance(payload["aps"], dict):
            raise _Reject(PAYLOAD_EMPTY, '"aps" is not a JSON object')
        return _Valid(token.lower(), topic, push_type, priority, expiration, collapse_id, body)

    def _authenticate(self, request: Request, headers: dict[str, str]) -> tuple[str | None, str | None]:
        """``(certificate bundle, None)`` for certificate auth, ``(None, team id)`` for token auth."""
        connection = request.connection
        if connection.peer_certificate is not None:
            identity = connection.state.get(_STATE_CERTIFICATE)
            if identity is None:
                identity = self._certificate_identity(connection.peer_certificate)
                connection.state[_STATE_CERTIFICATE] = identity
            if isinstance(identity, Rejection):
                raise _Reject(
                    identity, "client certificate is not an APNs push certificate for this environment"
                )
            return identity, None
        verdict = self.tokens.check(headers.get("authorization"))
        if not isinstance(verdict, VerifiedToken):
            raise _Reject(verdict, self.tokens.last_detail)
        team = connection.state.setdefault(_STATE_TEAM, verdict.team_id)
        if team != verdict.team_id:
            # APNs serves one team per connection (Pushy's mock answers the same).
            raise _Reject(INVALID, f"token of team {verdict.team_id} on a connection of team {team}")
        return None, team

    def _certificate_identity(self, certificate: x509.Certificate) -> str | Rejection:
        bundle = push_certificate_bundle(certificate)
        if bundle is None:
            return BAD_CERTIFICATE
        environments = client_certificate_environments(certificate)
        if environments and self.environment not in environments:
            return BAD_CERTIFICATE_ENVIRONMENT
        return bundle

    def _check_topic(
        self, topic: str | None, rule: PushTypeRule, team: str | None, cert_bundle: str | None
    ) -> str:
        if cert_bundle is not None:
            # A certificate names its app: without apns-topic, APNs uses the certificate's bundle id.
            topic = cert_bundle if topic is None else topic
            if not is_topic(topic):
                raise _Reject(BAD_TOPIC, f"apns-topic {topic!r} is not a bundle id")
            bundle, implied = split_topic(topic, {cert_bundle})
            if bundle != cert_bundle:
                # Pushy's mock answers BadTopic here too; Apple does not document the case.
                raise _Reject(
                    BAD_TOPIC, f"apns-topic {topic!r} is not covered by the certificate for {cert_bundle}"
                )
        else:
            if topic is None:
                raise _Reject(MISSING_TOPIC, "apns-topic is required with token authentication")
            if not is_topic(topic):
                raise _Reject(BAD_TOPIC, f"apns-topic {topic!r} is not a bundle id")
            bundle, implied = split_topic(topic, self.topics)
            owner = self.topics.get(bundle)
            if owner != team:
                why = "is not a registered app" if owner is None else "belongs to another team"
                raise _Reject(TOPIC_DISALLOWED, f"bundle {bundle!r} {why} (token of team {team})")
        if implied is not None and implied != rule.name:
            # The topic is a push-type topic (e.g. .voip) but the push type says otherwise: Apple answers
            # InvalidPushType (reported by apns2 and PyAPNs2 users).
            raise _Reject(INVALID_PUSH_TYPE, f"apns-topic {topic!r} is for {implied} pushes, not {rule.name}")
        if rule.topic_suffix and implied is None:
            # A VoIP (etc.) device token is registered for <bundle>.voip, not for the bare bundle id:
            # Apple answers DeviceTokenNotForTopic (reported by pushok and laravel-apn users).
            raise _Reject(
                DEVICE_TOKEN_NOT_FOR_TOPIC, f"{rule.name} pushes need apns-topic <bundle>{rule.topic_suffix}"
            )
        return topic

    # -- answers -----------------------------------------------------------------------------------

    def _reject(
        self,
        request: Request,
        apns_id: str,
        rejection: Rejection,
        detail: str,
        timestamp_ms: int | None = None,
    ) -> Response:
        reason = rejection.reason
        self.rejected[reason] += 1
        log.info(
            "connection %d stream %d: %d %s (%s)",
            request.connection.id,
            request.stream_id,
            rejection.status,
            reason,
            detail,
        )
        if timestamp_ms is not None:
            body = json.dumps({"reason": reason, "timestamp": timestamp_ms}, separators=(",", ":")).encode()
        else:
            cached = self._bodies.get(reason)
            if cached is None:
                cached = self._bodies[reason] = json.dumps({"reason": reason}, separators=(",", ":")).encode()
            body = cached
        return Response(rejection.status, [("apns-id", apns_id), _CONTENT_TYPE], body)

    def _accept(self, request: Request, apns_id: str, valid: _Valid) -> Response:
        self.received.add(
            _Record(
                valid.token,
                apns_id,
                valid.topic,
                valid.push_type,
                valid.priority,
                valid.expiration,
                valid.collapse_id,
                valid.body,
                tuple(item for item in request.headers if item[0] != "authorization"),
                request.connection.id,
                request.stream_id,
                self.clock(),
            )
        )
        self.accepted += 1
        if self.environment == "development":
            # The development environment also returns apns-unique-id (for Apple's delivery log).
            return Response(200, [("apns-id", apns_id), ("apns-unique-id", str(uuid.uuid4()))])
        return Response(200, [("apns-id", apns_id)])

    def _scripted(self, request: Request, apns_id: str, valid: _Valid, script: Script) -> Reply:
        behaviour = script.behaviour
        answer = SCRIPTED_ANSWERS.get(behaviour)
        if answer is not None:
            timestamp_ms = None
            if answer.status == 410:
                # When the device was last known to be invalid; "now" unless the script says otherwise.
                timestamp_ms = script.params.get("timestamp_ms", int(self.clock() * 1000))
            return self._reject(request, apns_id, answer, f"scripted {behaviour}", timestamp_ms)
        log.info("connection %d stream %d: scripted %s", request.connection.id, request.stream_id, behaviour)
        if behaviour == "delay":
            return Delayed(
                float(script.params.get("seconds", 1.0)),
                lambda: self._accept(request, apns_id, valid),
            )
        if behaviour == "reset":
            return Reset()
        if behaviour == "drop":
            return Drop()
        if behaviour == "goaway":
            debug = json.dumps({"reason": script.params.get("reason", "Shutdown")}, separators=(",", ":"))
            return GoAway(max(request.stream_id - 2, 0), debug_data=debug.encode())
        raise AssertionError(f"unhandled scripted behaviour {behaviour!r}")  # pragma: no cover


_TRANSPORT_ANSWERS = {Reset: "RST_STREAM REFUSED_STREAM", Drop: "connection dropped", GoAway: "GOAWAY"}


def _observe(inbox: InboxLog, request: Request, reply: Reply) -> None:
    """Tell the inbox what a device was sent and how the sandbox answered."""
    path = request.path
    token = path[len(DEVICE_PATH_PREFIX) :].lower() if path.startswith(DEVICE_PATH_PREFIX) else ""
    status, response, note = 0, b"", None
    if isinstance(reply, Response):
        status, response = reply.status, reply.body
    elif isinstance(reply, Delayed):
        # only "delay" scripts answer late, and always with a 200 (see _scripted)
        status, note = 200, f"answered after {reply.seconds:g} s"
    else:
        note = f"scripted: {_TRANSPORT_ANSWERS[type(reply)]}"
    inbox.observe("apns", token, request.method, path, status, request.headers, request.body, response, note)
