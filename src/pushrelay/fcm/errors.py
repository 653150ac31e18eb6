"""FCM HTTP v1 answers classified into pushrelay outcomes — the table is data, with its source.

Source: Firebase, "FCM HTTP v1 API error codes" (``ErrorCode`` enum of
``google.firebase.fcm.v1.FcmError``) and "Best practices when sending FCM messages at scale"
(QUOTA_EXCEEDED: back off at least one minute), as summarised in SPEC §4.

An error body looks like::

    {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
               "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNREGISTERED"}]}}

The FCM ``errorCode`` decides when present; otherwise the google.rpc ``status``; otherwise the HTTP
status alone (a proxy's HTML error page, say).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..backoff import parse_retry_after
from ..outcome import Outcome

__all__ = [
    "ERROR_CODES",
    "MIN_QUOTA_BACKOFF",
    "RPC_STATUSES",
    "FcmError",
    "classify",
    "parse_error",
    "parse_retry_after",
]

T, R, C, P = Outcome.TOKEN_DEAD, Outcome.RETRY, Outcome.CONFIG_BROKEN, Outcome.PAYLOAD_REJECTED

#: Seconds to wait at least after QUOTA_EXCEEDED, whatever Retry-After says (Firebase guidance).
MIN_QUOTA_BACKOFF = 60.0

#: FcmError.errorCode -> outcome.
ERROR_CODES: dict[str, Outcome] = {
    "UNSPECIFIED_ERROR": R,
    # The request is malformed; the token is dead only when the error names it (see classify).
    "INVALID_ARGUMENT": P,
    "UNREGISTERED": T,  # the app was uninstalled or the token expired/was deleted
    "SENDER_ID_MISMATCH": T,  # the token belongs to another Firebase project: never deliverable here
    "QUOTA_EXCEEDED": R,  # project, device or topic rate: back off >= 60 s, honour Retry-After
    "UNAVAILABLE": R,  # FCM overloaded: retry with backoff, honour Retry-After
    "INTERNAL": R,
    "THIRD_PARTY_AUTH_ERROR": C,  # the APNs certificate / key or web push key in Firebase is wrong
}

#: google.rpc status -> outcome, when no FcmError detail says more.
RPC_STATUSES: dict[str, Outcome] = {
    "INVALID_ARGUMENT": P,
    "UNAUTHENTICATED": C,  # the OAuth access token was refused (after one refresh)
    "PERMISSION_DENIED": C,  # the service account may not send for this project
    "NOT_FOUND": C,  # no such project (a dead token always comes with UNREGISTERED)
    "RESOURCE_EXHAUSTED": R,
    "UNAVAILABLE": R,
    "INTERNAL": R,
    "DEADLINE_EXCEEDED": R,
    "ABORTED": R,
}

#: HTTP status -> outcome, when the body says nothing usable.
_BY_STATUS: dict[int, Outcome] = {400: P, 401: C, 403: C, 404: C, 413: P, 429: R}

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


@dataclass(frozen=True, slots=True)
class FcmError:
    """The parts of an FCM error body that matter for classification."""

    status: int
    rpc_status: str | None = None
    error_code: str | None = None
    message: str = ""
    names_token: bool = False

    @property
    def reason(self) -> str:
        """``"UNREGISTERED: Requested entity was not found."`` — never contains a credential."""
        label = self.error_code or self.rpc_status or f"HTTP {self.status}"
        text = self.message[:200]
        return f"{label}: {text}" if text else label


def parse_error(status: int, body: bytes) -> FcmError:
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return FcmError(status)
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return FcmError(status)
    error_code: str | None = None
    names_token = False
    for detail in err.get("details") or ():
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == _FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            error_code = detail["errorCode"]
        elif detail.get("@type") == _BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    names_token = True
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    # FCM's wording for a malformed token, for answers that carry no BadRequest detail.
    if "registration token" in str(message).lower():
        names_token = True
    rpc_status = err.get("status") if isinstance(err.get("status"), str) else None
    return FcmError(status, rpc_status, error_code, str(message), names_token)


def classify(error: FcmError, *, is_token: bool = True) -> Outcome:
    """The outcome of one FCM error answer (``is_token``: the target was a registration token)."""
    if error.error_code == "INVALID_ARGUMENT" or (
        error.error_code is None and error.rpc_status == "INVALID_ARGUMENT"
    ):
        return T if (is_token and error.names_token) else P
    if error.error_code is not None and error.error_code in ERROR_CODES:
        return ERROR_CODES[error.error_code]
    if error.rpc_status is not None and error.rpc_status in RPC_STATUSES:
        return RPC_STATUSES[error.rpc_status]
    if error.status >= 500:
        return R
    return _BY_STATUS.get(error.status, Outcome.FAILED)
