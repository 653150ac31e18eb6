"""The ``/_sandbox/...`` control API: drive a sandbox from another process over the same HTTP/2 port.

Every endpoint takes and returns JSON. Errors are ``{"error": "<what was wrong and what was expected>"}``
with status 400 (bad input), 404 (unknown endpoint) or 405 (wrong method).

    GET    /_sandbox/info                      environment, topics, keys (ids only), outage, scripts
    GET    /_sandbox/received[?token=HEX]      {"received": [...]} (all, or one device's)
    DELETE /_sandbox/received                  forget what was received
    GET    /_sandbox/stats                     counters
    POST   /_sandbox/script                    {"token", "behaviour", "times"?, "params"?}
    DELETE /_sandbox/script[?token=HEX]        remove scripts (all, or one device's)
    POST   /_sandbox/outage                    {"status"?: 503, "reason"?: "ServiceUnavailable"}
    DELETE /_sandbox/outage
    POST   /_sandbox/keys                      {"team_id", "key_id", "public_key": PEM, "environment"?}
    POST   /_sandbox/topics                    {"bundle_id", "team_id"}
    POST   /_sandbox/devices                   {"topic", "environment"?, "token"?} -> {"token", ...}
    GET    /_sandbox/devices                   {"devices": [{"token", "topic", "environment"}, ...]}

Over HTTP/2 or HTTP/1.1 (plain curl).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .server import Request, Response

if TYPE_CHECKING:
    from .apns_sandbox import ApnsSandbox

__all__ = ["PREFIX", "ControlApi"]

PREFIX = "/_sandbox/"
_JSON = ("content-type", "application/json")


class _BadInput(Exception):
    pass


def _answer(status: int, data: Any) -> Response:
    return Response(status, [_JSON], json.dumps(data).encode())


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise _BadInput(f"{name}: required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _BadInput(f"{name}: expected {expected}, got {value!r}")
    return value


class ControlApi:
    """Route handler for ``/_sandbox/``; it calls the public methods of :class:`ApnsSandbox`."""

    def __init__(self, sandbox: ApnsSandbox) -> None:
        self._sandbox = sandbox
        self._endpoints: dict[tuple[str, str], Callable[[dict[str, list[str]], dict[str, Any]], Response]] = {
            ("GET", "info"): self._info,
            ("GET", "received"): self._received,
            ("DELETE", "received"): self._clear_received,
            ("GET", "stats"): self._stats,
            ("POST", "script"): self._script,
            ("DELETE", "script"): self._clear_scripts,
            ("POST", "outage"): self._set_outage,
            ("DELETE", "outage"): self._clear_outage,
            ("POST", "keys"): self._register_key,
            ("POST", "topics"): self._add_topic,
            ("POST", "devices"): self._issue_device,
            ("GET", "devices"): self._devices,
        }

    def handle(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        name = parts.path[len(PREFIX) :].strip("/")
        endpoint = self._endpoints.get((request.method, name))
        if endpoint is None:
            methods = sorted(m for m, n in self._endpoints if n == name)
            if methods:
                return _answer(
                    405, {"error": f"/_sandbox/{name} takes {', '.join(methods)}, not {request.method}"}
                )
            names = sorted({n for _, n in self._endpoints})
            return _answer(
                404,
                {"error": f"unknown control endpoint {parts.path!r}; try /_sandbox/{{{','.join(names)}}}"},
            )
        try:
            body = self._json_body(request) if request.method == "POST" else {}
            return endpoint(parse_qs(parts.query), body)
        except (_BadInput, ValueError, TypeError) as exc:
            return _answer(400, {"error": str(exc)})

    @staticmethod
    def _json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise _BadInput(f"body: expected a JSON object ({exc})") from None
        if not isinstance(body, dict):
            raise _BadInput("body: expected a JSON object")
        return body

    def _info(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        return _answer(200, self._sandbox.describe())

    def _received(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        tokens = query.get("token")
        records = self._sandbox.received(tokens[0]) if tokens else self._sandbox.all_received()
        return _answer(200, {"received": [r.to_json() for r in records]})

    def _clear_received(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        self._sandbox.clear_received()
        return _answer(200, {"cleared": True})

    def _stats(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        return _answer(200, self._sandbox.stats.to_json())

    def _script(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        token = _field(body, "token", str)
        behaviour = _field(body, "behaviour", str)
        times = _field(body, "times", int, required=False)
        params = _field(body, "params", dict, required=False) or {}
        self._sandbox.script(token, behaviour, times=times, **params)
        return _answer(
            200,
            {"scripted": {"token": token.lower(), "behaviour": behaviour, "times": times, "params": params}},
        )

    def _clear_scripts(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        tokens = query.get("token")
        self._sandbox.clear_scripts(tokens[0] if tokens else None)
        return _answer(200, {"cleared": True})

    def _set_outage(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        status = _field(body, "status", int, required=False) or 503
        reason = _field(body, "reason", str, required=False) or "ServiceUnavailable"
        self._sandbox.set_outage(status, reason)
        return _answer(200, {"outage": {"status": status, "reason": reason}})

    def _clear_outage(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        self._sandbox.clear_outage()
        return _answer(200, {"outage": None})

    def _register_key(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        team_id = _field(body, "team_id", str)
        key_id = _field(body, "key_id", str)
        pem = _field(body, "public_key", str)
        environment = _field(body, "environment", str, required=False)
        try:
            public_key = serialization.load_pem_public_key(pem.encode())
        except ValueError:
            raise _BadInput("public_key: expected a PEM 'PUBLIC KEY' block of a P-256 key") from None
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise _BadInput("public_key: expected a P-256 (ES256) elliptic-curve key")
        self._sandbox.register_key(team_id, key_id, public_key, environment=environment)
        return _answer(
            200, {"registered": {"team_id": team_id, "key_id": key_id, "environment": environment}}
        )

    def _add_topic(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        bundle_id = _field(body, "bundle_id", str)
        team_id = _field(body, "team_id", str)
        self._sandbox.add_topic(bundle_id, team_id)
        return _answer(200, {"topic": {"bundle_id": bundle_id, "team_id": team_id}})

    def _issue_device(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        topic = _field(body, "topic", str)
        environment = _field(body, "environment", str, required=False)
        token = _field(body, "token", str, required=False)
        if environment is not None and environment not in ("production", "development"):
            raise _BadInput(f"environment: expected 'production' or 'development', got {environment!r}")
        device = self._sandbox.issue_device(topic, environment, token=token)
        return _answer(200, {"token": device.token, "topic": device.topic, "environment": device.environment})

    def _devices(self, query: dict[str, list[str]], body: dict[str, Any]) -> Response:
        devices = self._sandbox.devices.all()
        return _answer(
            200,
            {
                "devices": [
                    {"token": d.token, "topic": d.topic, "environment": d.environment} for d in devices
                ]
            },
        )
