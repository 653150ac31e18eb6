"""A fake FCM HTTP v1 endpoint, with its OAuth token endpoint, on one HTTPS port (HTTP/2 or 1.1).

It checks what FCM checks: a bearer token minted by the sandbox's token endpoint for the same
project, the message schema (exactly one of token / fid / topic / condition, known fields only, string-only
data, reserved data keys, Android options), the 4096-byte limit and ``validate_only``; and it records
what every token, topic or condition received. Tokens can be scripted to fail like real ones::

    async with FcmSandbox() as sb:
        key = sb.create_service_account(tmp_path, project_id="demo")
        sb.script("dead-token", "unregistered")
        sb.script("busy-token", "quota_exceeded", times=1, retry_after=120)
        async with FcmClient(ServiceAccount.from_file(key, ca_file=sb.ca_file),
                             base_url=sb.url, ca_file=sb.ca_file) as fcm:
            ...
        sb.received("some-token")   # [FcmReceived(message={...}, ...)]

The same port serves a control API under ``/_sandbox/`` (see :func:`fcm_control`) for tests and
tools in another process.

Behaviours: ``unregistered`` (404), ``sender_id_mismatch`` (403), ``quota_exceeded`` (429 with
Retry-After), ``unavailable`` (503), ``internal`` (500), ``invalid_token`` (400 INVALID_ARGUMENT
naming the token), ``third_party_auth_error`` (401).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fcm.target import registration_token_problem
from .https_sandbox import CONTROL_PREFIX, ControlApi, HttpsSandbox, json_field
from .oauth import OAuthTokenService, TokenGrant
from .records import InboxLog, fcm_target
from .server import Handler, Request, Response

__all__ = ["BEHAVIOURS", "FcmReceived", "FcmSandbox", "FcmService", "fcm_control"]

_JSON = ("content-type", "application/json")
_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.~%]{1,900}")
_TOKEN = re.compile(r"[A-Za-z0-9_:\-.]{1,4096}")
# A Firebase Installation ID, the target FCM now prefers to registration tokens (firebase-admin 7.7
# deprecates Message.token for Message.fid): 22 base64url characters whose first 4 bits are 0111,
# so the first is c, d, e or f (the Installations SDKs generate and check them so).
_FID = re.compile(r"[cdef][A-Za-z0-9_\-]{21}")
_TTL = re.compile(r"^\d{1,10}(\.\d{1,9})?s$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_MAX_BYTES = 4096
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

_MESSAGE_FIELDS = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "token",
        "fid",
        "topic",
        "condition",
    }
)
_NOTIFICATION_FIELDS = frozenset({"title", "body", "image"})
_ANDROID_FIELDS = frozenset(
    {"collapse_key", "priority", "ttl", "restricted_package_name", "data", "notification", "fcm_options",
     "direct_boot_ok"}
)  # fmt: skip
_ANDROID_NOTIFICATION_FIELDS = frozenset(
    {"title", "body", "icon", "color", "sound", "tag", "click_action", "body_loc_key", "body_loc_args",
     "title_loc_key", "title_loc_args", "channel_id", "ticker", "sticky", "event_time", "local_only",
     "notification_priority", "default_sound", "default_vibrate_timings", "default_light_settings",
     "vibrate_timings", "visibility", "notification_count", "light_settings", "image",
     "bypass_proxy_notification"}
)  # fmt: skip
_WEBPUSH_FIELDS = frozenset({"headers", "data", "notification", "fcm_options"})
_APNS_FIELDS = frozenset({"headers", "payload", "fcm_options", "live_activity_token"})
# Topics in a condition ("'a' in topics && ('b' in topics || 'c' in topics)"): FCM allows 5.
_CONDITION_TOPIC = re.compile(r"'[^']*'\s+in\s+topics")
_MAX_CONDITION_TOPICS = 5
_RESERVED_DATA = frozenset({"from", "notification", "message_type"})

#: behaviour -> (HTTP status, google.rpc status, FcmError errorCode, message)
BEHAVIOURS: dict[str, tuple[int, str, str, str]] = {
    "unregistered": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "sender_id_mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "quota_exceeded": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Message rate exceeded for the project."),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "invalid_token": (
        400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "third_party_auth_error": (
        401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FcmReceived:
    """One message FCM accepted (``validate_only`` ones included, flagged)."""

    project_id: str
    target: str  # the token, "topic:<name>" or "condition:<expr>"
    message: dict[str, Any]
    name: str
    validate_only: bool
    http_version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, str]:
        data = self.message.get("data", {})
        return dict(data) if isinstance(data, dict) else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "target": self.target,
            "message": self.message,
            "name": self.name,
            "validate_only": self.validate_only,
            "http_version": self.http_version,
        }


@dataclass
class _Script:
    behaviour: str
    times: int | None
    retry_after: int | None


class _Invalid(Exception):
    def __init__(self, message: str, *, field_path: str | None = None, names_token: bool = False) -> None:
        super().__init__(message)
        self.field_path = field_path
        self.names_token = names_token


class FcmService:
    """The FCM v1 ``messages:send`` handler (protocol logic only; the sandbox serves it)."""

    def __init__(self, oauth: OAuthTokenService, *, lenient: bool = False) -> None:
        self.oauth = oauth
        # lenient: any token of FCM's characters ("phone-1") is taken, for ad-hoc use and old tests
        self.lenient = lenient
        self._scripts: dict[str, _Script] = {}
        self._received: dict[str, list[FcmReceived]] = defaultdict(list)
        self._all: list[FcmReceived] = []
        self._next_id = 0
        #: Answers given, by HTTP status.
        self.stats: dict[int, int] = defaultdict(int)
        self.inbox: InboxLog | None = None  # the inbox page's log, when one is attached

    def script(
        self, target: str, behaviour: str, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        """Make ``target`` (a token, ``topic:<name>`` or ``condition:<expr>``) fail as ``behaviour``."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(sorted(BEHAVIOURS))}, got {behaviour!r}")
        self._scripts[target] = _Script(behaviour, times, retry_after)

    def unscript(self, target: str) -> None:
        self._scripts.pop(target, None)

    def reset(self) -> None:
        """Forget scripts, received messages and stats (between tests sharing one sandbox)."""
        self._scripts.clear()
        self.clear_received()
        self.stats.clear()

    def clear_received(self) -> None:
        self._received.clear()
        self._all.clear()

    def scripts(self) -> dict[str, dict[str, Any]]:
        return {t: {"behaviour": s.behaviour, "times": s.times, "retry_after": s.retry_after}
                for t, s in self._scripts.items()}  # fmt: skip

    def received(self, target: str) -> list[FcmReceived]:
        return list(self._received.get(target, ()))

    def all_received(self) -> list[FcmReceived]:
        return list(self._all)

    def handle(self, request: Request) -> Response:
        response = self._handle(request)
        self.stats[response.status] += 1
        if self.inbox is not None:
            target = fcm_target(request.body)
            self.inbox.observe(
                "fcm",
                target,
                request.method,
                request.path,
                response.status,
                request.headers,
                request.body,
                response.body,
            )
        return response

    def _handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, "NOT_FOUND", None, f"the URL {request.path} is not messages:send")
        if request.method != "POST":
            return _error(405, "INVALID_ARGUMENT", None, "messages:send takes POST")
        project_id = match.group(1)
        grant = self.oauth.check_bearer(request.header("authorization"))
        if not isinstance(grant, TokenGrant):
            return _error(401, "UNAUTHENTICATED", None, grant)
        if grant.project_id != project_id:
            return _error(
                403,
                "PERMISSION_DENIED",
                None,
                f"Permission 'cloudmessaging.messages.create' denied on resource 'projects/{project_id}'",
            )
        try:
            doc = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "INVALID_ARGUMENT", None, "Invalid JSON payload received.")
        try:
            message, validate_only, target = _check(doc, lenient=self.lenient)
        except _Invalid as exc:
            return _invalid(exc)
        script = self._scripts.get(target)
        if script is not None:
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    del self._scripts[target]
            return _scripted(script)
        self._next_id += 1
        name = f"projects/{project_id}/messages/0:{self._next_id:016d}"
        record = FcmReceived(
            project_id,
            target,
            message,
            name,
            validate_only,
            "HTTP/2" if request.stream_id else "HTTP/1.1",
            {k: v for k, v in request.headers if k != "authorization"},
        )
        self._all.append(record)
        self._received[target].append(record)
        return Response(200, [_JSON], json.dumps({"name": name}).encode())


def _check(doc: Any, *, lenient: bool = False) -> tuple[dict[str, Any], bool, str]:
    if not isinstance(doc, dict):
        raise _Invalid("Invalid JSON payload received. Expected an object.")
    unknown = set(doc) - {"message", "validate_only"}
    if unknown:
        raise _Invalid(
            f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
        )
    validate_only = doc.get("validate_only", False)
    if not isinstance(validate_only, bool):
        raise _Invalid("Invalid value at 'validate_only' (TYPE_BOOL)")
    message = doc.get("message")
    if not isinstance(message, dict):
        raise _Invalid("Invalid JSON payload received. 'message' must be an object.", field_path="message")
    _known(message, _MESSAGE_FIELDS, "message")
    targets = [k for k in ("token", "fid", "topic", "condition") if k in message]
    if len(targets) != 1:
        raise _Invalid(
            "Exactly one of message.token, message.fid, message.topic or message.condition must be given."
        )
    kind = targets[0]
    value = message[kind]
    if not isinstance(value, str) or not value:
        raise _Invalid(f"message.{kind} must be non-empty text", field_path=f"message.{kind}")
    # FCM answers INVALID_ARGUMENT for what cannot be a registration token ("phone-1", an APNs hex
    # token); any well-shaped one is accepted (only scripts make one UNREGISTERED).
    if kind == "token" and (
        not _TOKEN.fullmatch(value) or (not lenient and registration_token_problem(value) is not None)
    ):
        raise _Invalid("The registration token is not a valid FCM registration token", names_token=True)
    if kind == "fid" and not (lenient and _TOKEN.fullmatch(value)) and not _FID.fullmatch(value):
        raise _Invalid(
            "The Firebase Installation ID is not valid: 22 characters of letters, digits, - and _, "
            "starting with c, d, e or f",
            field_path="message.fid",
        )
    if kind == "condition":
        topics = len(_CONDITION_TOPIC.findall(value))
        if not topics or topics > _MAX_CONDITION_TOPICS:
            raise _Invalid(
                f"Invalid condition expression provided: {topics} topics (1 to {_MAX_CONDITION_TOPICS})",
                field_path="message.condition",
            )
    if kind == "topic":
        value = value.removeprefix("/topics/")
        if not _TOPIC.fullmatch(value):
            raise _Invalid("Invalid topic name", field_path="message.topic")
    _check_data(message.get("data"), "message.data")
    notification = message.get("notification")
    if notification is not None:
        _object(notification, "message.notification")
        _known(notification, _NOTIFICATION_FIELDS, "message.notification")
        _texts(notification, "message.notification")
    android = message.get("android")
    if android is not None:
        _check_android(android)
    webpush = message.get("webpush")
    if webpush is not None:
        _check_webpush(webpush)
    apns = message.get("apns")
    if apns is not None:
        _object(apns, "message.apns")
        _known(apns, _APNS_FIELDS, "message.apns")
        _check_data(apns.get("headers"), "message.apns.headers", reserved=False)
    counted = {k: v for k, v in message.items() if k not in ("token", "fid", "topic", "condition")}
    size = len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode())
    if size > _MAX_BYTES:
        raise _Invalid(f"Message is too big: {size} bytes, the limit is {_MAX_BYTES}", field_path="message")
    # an FID is a device address like a token (22 characters: never one of a token's 100+)
    target = value if kind in ("token", "fid") else f"{kind}:{value}"
    return message, validate_only, target


def _check_android(android: Any) -> None:
    _object(android, "message.android")
    _known(android, _ANDROID_FIELDS, "message.android")
    priority = android.get("priority")
    if priority is not None and str(priority).upper() not in ("NORMAL", "HIGH"):
        raise _Invalid(
            f"Invalid value at 'message.android.priority' (enum AndroidMessagePriority), {priority!r}",
            field_path="message.android.priority",
        )
    ttl = android.get("ttl")
    if ttl is not None and (not isinstance(ttl, str) or not _TTL.match(ttl)):
        raise _Invalid(
            f"Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), {ttl!r}",
            field_path="message.android.ttl",
        )
    for key in ("collapse_key", "restricted_package_name"):
        if key in android and not isinstance(android[key], str):
            raise _Invalid(f"message.android.{key} must be text", field_path=f"message.android.{key}")
    _check_data(android.get("data"), "message.android.data")
    shown = android.get("notification")
    if shown is not None:
        _object(shown, "message.android.notification")
        _known(shown, _ANDROID_NOTIFICATION_FIELDS, "message.android.notification")
        color = shown.get("color")
        if color is not None and (not isinstance(color, str) or not _COLOR.match(color)):
            raise _Invalid("message.android.notification.color must be #rrggbb")
        count = shown.get("notification_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise _Invalid("message.android.notification.notification_count must be an integer")


def _check_webpush(webpush: Any) -> None:
    _object(webpush, "message.webpush")
    _known(webpush, _WEBPUSH_FIELDS, "message.webpush")
    _check_data(webpush.get("data"), "message.webpush.data", reserved=False)
    _check_data(webpush.get("headers"), "message.webpush.headers", reserved=False)
    options = webpush.get("fcm_options")
    if options is not None:
        _object(options, "message.webpush.fcm_options")
        _known(options, frozenset({"link", "analytics_label"}), "message.webpush.fcm_options")
        link = options.get("link")
        if link is not None and (not isinstance(link, str) or not link.lower().startswith("https://")):
            raise _Invalid(
                f"Invalid value at 'message.webpush.fcm_options.link': the link must be an HTTPS URL, "
                f"got {json.dumps(link)}",
                field_path="message.webpush.fcm_options.link",
            )


def _check_data(data: Any, where: str, *, reserved: bool = True) -> None:
    if data is None:
        return
    _object(data, where)
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            raise _Invalid(
                f"Invalid value at '{where}[{index}].value' (TYPE_STRING), {json.dumps(value)}",
                field_path=f"{where}[{index}].value",
            )
        if reserved and (key in _RESERVED_DATA or key.lower().startswith(("google", "gcm"))):
            raise _Invalid(f"Invalid data payload key: {key}", field_path=where)


def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise _Invalid(f"Invalid JSON payload received. '{where}' must be an object.", field_path=where)


def _known(obj: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise _Invalid(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': Cannot find field.",
            field_path=where,
        )


def _texts(obj: Mapping[str, Any], where: str) -> None:
    for key, value in obj.items():
        if not isinstance(value, str):
            raise _Invalid(f"Invalid value at '{where}.{key}' (TYPE_STRING)", field_path=f"{where}.{key}")


def _error(
    status: int,
    rpc_status: str,
    error_code: str | None,
    message: str,
    *,
    violations: list[dict[str, str]] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append({"@type": _FCM_ERROR, "errorCode": error_code})
    if violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations})
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return Response(status, [_JSON, *(headers or [])], json.dumps({"error": error}).encode())


def _invalid(exc: _Invalid) -> Response:
    violations = None
    if exc.names_token:
        violations = [{"field": "message.token", "description": "Invalid registration token"}]
    elif exc.field_path:
        violations = [{"field": exc.field_path, "description": str(exc)}]
    return _error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", str(exc), violations=violations)


def _scripted(script: _Script) -> Response:
    status, rpc_status, error_code, message = BEHAVIOURS[script.behaviour]
    headers = [("retry-after", str(script.retry_after))] if script.retry_after is not None else []
    violations = None
    if script.behaviour == "invalid_token":
        violations = [{"field": "message.token", "description": "Invalid registration token"}]
    return _error(status, rpc_status, error_code, message, violations=violations, headers=headers)


class FcmSandbox(HttpsSandbox):
    """FCM v1 (``/v1/projects/...``), its token endpoint (``/token``) and a control API
    (``/_sandbox/...``) over HTTPS on 127.0.0.1."""

    kind = "FCM"

    def __init__(
        self,
        *,
        token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
        directory: str | Path | None = None,
        lenient: bool = False,
    ) -> None:
        """``directory``: where the TLS material (``ca.pem``...) goes; a temporary one by default.

        ``lenient``: accept registration tokens that only FCM's characters make up ("phone-1");
        by default a token must look like one FCM issues (INVALID_ARGUMENT otherwise)."""
        super().__init__(host=host, port=port, directory=directory)
        self.oauth = OAuthTokenService(token_lifetime=token_lifetime)
        self.service = FcmService(self.oauth, lenient=lenient)

    def routes(self) -> dict[str, Handler]:
        return {
            "/v1/projects/": self.service.handle,
            "/token": self.oauth.handle,
            CONTROL_PREFIX: fcm_control(self).handle,
        }

    # -- setup --------------------------------------------------------------------------------------
    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def create_service_account(
        self, directory: str | Path, *, project_id: str = "pushrelay-sandbox", filename: str | None = None
    ) -> Path:
        """A service-account key file for ``project_id`` whose ``token_uri`` is this sandbox."""
        return self.oauth.create_service_account(
            directory, project_id=project_id, token_uri=self.token_uri, filename=filename
        )

    def script(
        self, target: str, behaviour: str, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        self.service.script(target, behaviour, times=times, retry_after=retry_after)

    def unscript(self, target: str) -> None:
        self.service.unscript(target)

    def reset(self) -> None:
        """Forget scripts, what was received and the counters; service accounts and their valid
        access tokens stay (so one sandbox can serve many tests)."""
        self.service.reset()
        self.oauth.reset_counters()

    # -- what happened --------------------------------------------------------------------------------
    def received(self, target: str) -> list[FcmReceived]:
        """Messages accepted for a token, ``topic:<name>`` or ``condition:<expr>``."""
        return self.service.received(target)

    def all_received(self) -> list[FcmReceived]:
        return self.service.all_received()

    @property
    def stats(self) -> dict[int, int]:
        return dict(self.service.stats)


def fcm_control(sandbox: FcmSandbox) -> ControlApi:
    """``/_sandbox/`` of the FCM sandbox::

    GET    /_sandbox/received[?target=T]   {"received": [...]} (all, or one token's / topic's)
    DELETE /_sandbox/received              forget what was received
    GET    /_sandbox/stats                 answers by status, token requests, refusals
    GET    /_sandbox/scripts               the scripted targets
    POST   /_sandbox/script                {"target", "behaviour", "times"?, "retry_after"?}
    DELETE /_sandbox/script[?target=T]     remove scripts (all, or one target's)
    """
    service, oauth = sandbox.service, sandbox.oauth

    def received(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        targets = query.get("target")
        records = service.received(targets[0]) if targets else service.all_received()
        return {"received": [r.to_json() for r in records]}

    def clear(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        service.clear_received()
        return {"cleared": True}

    def stats(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        return {
            "answers": {str(k): v for k, v in sorted(service.stats.items())},
            "token_requests": oauth.requests,
            "tokens_issued": oauth.issued,
            "token_refusals": list(oauth.refusals),
        }

    def script(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        target = json_field(body, "target", str)
        behaviour = json_field(body, "behaviour", str)
        times = json_field(body, "times", int, required=False)
        retry_after = json_field(body, "retry_after", int, required=False)
        service.script(target, behaviour, times=times, retry_after=retry_after)
        return {
            "scripted": {"target": target, "behaviour": behaviour, "times": times, "retry_after": retry_after}
        }

    def unscript(query: Mapping[str, list[str]], body: dict[str, Any]) -> Any:
        targets = query.get("target")
        for target in targets or list(service.scripts()):
            service.unscript(target)
        return {"cleared": True}

    return ControlApi(
        {
            ("GET", "received"): received,
            ("DELETE", "received"): clear,
            ("GET", "stats"): stats,
            ("GET", "scripts"): lambda query, body: {"scripts": service.scripts()},
            ("POST", "script"): script,
            ("DELETE", "script"): unscript,
        }
    )
